"""What the open-clause rule (`turn_open_clause`, s2s_server.open_clause) costs and holds on written turns.

    python benchmarks/open_clause_turns.py                  # the judge's evaluation turns (writers e, i, l)
    python benchmarks/open_clause_turns.py --show 40        # and the turns it moves, 40 a language
    python benchmarks/open_clause_turns.py --files data/realistic/train-writer-a.jsonl
    python benchmarks/open_clause_turns.py --before /tmp/before.py   # two rules, no judge (seconds, not minutes)

For each finished user turn (its utterance as speech-to-text gives it, with the turns before it): whether the
rule calls it an open clause (the agent's last turn is what it asked), and the judge's text end-of-turn
probability for it (`end_of_turn_prob`, as the server asks it). A finished turn the text head scores at least
`turn_text_threshold` ended after `turn_done_silence_ms` when Smart Turn agreed; the rule moves it to
`turn_unsure_silence_ms` (1.2 s): "moved off the short path" is that share, per language. Then the same turns
cut where a first half can read as finished (judge_sft.clause_cuts: before a preposition, a conjunction, a
relative or question word; every such cut of every turn), as written and with the trailing punctuation removed
(Whisper writes "," or "." or nothing at a pause): the share whose text the head scores finished (at least the
threshold), and of those the share the rule holds. The evaluation turns were written apart from the rule and
never tuned on; the rule's words are the language's (s2s_server's settings), not these turns'.

`--before FILE` (another copy of s2s_server.py, e.g. `git show main:s2s_server.py > /tmp/before.py`) asks no judge:
it counts, for that copy's `open_clause` and this checkout's, the finished turns called open and the clause cuts
held (as cut and with the trailing punctuation removed), and lists every turn or cut on which they differ.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import machine  # also puts the repository on sys.path

import judge_sft  # noqa: E402
import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", default=sorted(glob.glob("data/realistic/eval-*.jsonl")))
    parser.add_argument("--show", type=int, default=0, help="list up to this many moved turns a language")
    parser.add_argument("--before", help="another copy of s2s_server.py: compare its open_clause with this "
                        "checkout's on the same turns, without the judge")
    args, server_args = parser.parse_known_args()
    config = load_config([*server_args, "--port", "0"])
    root = Path(S.__file__).resolve().parent
    if args.before:
        compare_rules(args.before, args.files, root, config)
        return
    model_dir = Path(config.judge_model_dir)
    judge = judge_sft.load_judge(model_dir if model_dir.is_absolute() else root / model_dir)
    t0 = time.perf_counter()
    turns = [json.loads(line) for f in args.files for line in open(root / f if not Path(f).is_absolute() else f,
                                                                      encoding="utf-8") if line.strip()]
    threshold = config.turn_text_threshold
    stats: dict[str, dict[str, int]] = {}
    moved: dict[str, list[str]] = {}
    for turn in turns:
        lang, words = turn["lang"], turn["utterance"]
        history = [(c["role"], c["text"]) for c in turn["context"]]
        asked = next((text for role, text in reversed(history) if role in ("agent", "assistant")), "")
        context = judge_sft.judge_context(history, config.judge_context_turns)
        st = stats.setdefault(lang, dict.fromkeys(("finished", "open", "done", "moved", "cuts", "cuts done",
                                                   "cuts held", "bare cuts done", "bare cuts held"), 0))
        prob = judge.end_of_turn_prob(context, words)
        why = S.open_clause(words, config, asked)
        st["finished"] += 1
        st["open"] += why is not None
        st["done"] += prob >= threshold
        if why is not None and prob >= threshold:
            st["moved"] += 1
            moved.setdefault(lang, []).append(f"{prob:.2f} {why}: {words!r} (asked: {asked[-70:]!r})")
        ends = judge_sft.unit_ends(words)
        for k in judge_sft.clause_cuts(words, lang):
            cut = words[:ends[k]]
            bare = cut.rstrip(judge_sft._TRAILING_PUNCT + " ")
            cut_prob = judge.end_of_turn_prob(context, cut)
            st["cuts"] += 1
            if cut_prob >= threshold:
                st["cuts done"] += 1
                st["cuts held"] += S.open_clause(cut, config, asked) is not None
                st["bare cuts done"] += 1
                st["bare cuts held"] += S.open_clause(bare, config, asked) is not None
    print(f"{len(turns)} turns from {', '.join(args.files)}; turn_text_threshold {threshold}; "
          f"{time.perf_counter() - t0:.0f} s; {machine()}\n")
    print("| language | finished turns | called open | text head >= threshold | moved off the short path "
          "| clause cuts | cuts the head calls finished | of those held by the rule (as cut / punctuation removed) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for lang, st in sorted(stats.items()):
        def share(k: int, n: int) -> str:
            return f"{k} ({100 * k / max(n, 1):.1f} %)"
        print(f"| {lang} | {st['finished']} | {share(st['open'], st['finished'])} | {st['done']} "
              f"| {share(st['moved'], st['finished'])} | {st['cuts']} | {st['cuts done']} "
              f"| {share(st['cuts held'], st['cuts done'])} / {share(st['bare cuts held'], st['bare cuts done'])} |")
    for lang, lines in sorted(moved.items()):
        if args.show:
            print(f"\nMoved off the short path, {lang} (text probability, why):", *lines[:args.show], sep="\n  ")
    sys.stdout.flush()


def compare_rules(before_path: str, files: list[str], root: Path, config: Any) -> None:
    """`--before`: two `open_clause` rules on the same turns and cuts, no judge."""
    from open_clause_compare import load_rule

    before, now = load_rule(before_path), S.open_clause
    counts: dict[str, dict[str, int]] = {}
    differ = []
    for f in files:
        for line in open(root / f if not Path(f).is_absolute() else f, encoding="utf-8"):
            if not line.strip():
                continue
            turn = json.loads(line)
            lang, words = turn["lang"], turn["utterance"]
            asked = next((c["text"] for c in reversed(turn["context"]) if c["role"] in ("agent", "assistant")), "")
            st = counts.setdefault(lang, dict.fromkeys(("finished", "open before", "open now", "cuts", "held before",
                                                        "held now", "bare held before", "bare held now"), 0))
            st["finished"] += 1
            was, is_ = before(words, config, asked), now(words, config, asked)
            st["open before"] += was is not None
            st["open now"] += is_ is not None
            if (was is None) != (is_ is None):
                differ.append(f"  turn {words!r}: {was} -> {is_}")
            ends = judge_sft.unit_ends(words)
            for k in judge_sft.clause_cuts(words, lang):
                cut = words[:ends[k]]
                st["cuts"] += 1
                for text, prefix in ((cut, "held"), (cut.rstrip(judge_sft._TRAILING_PUNCT + " "), "bare held")):
                    was, is_ = before(text, config, asked), now(text, config, asked)
                    st[f"{prefix} before"] += was is not None
                    st[f"{prefix} now"] += is_ is not None
                    if (was is None) != (is_ is None):
                        differ.append(f"  cut {text[-90:]!r}: {was} -> {is_}")
    print(f"{', '.join(files)}; {before_path} (before) against this checkout (now); {machine()}\n")
    print("| language | finished turns | called open, before / now | clause cuts | held, before / now "
          "| held with the punctuation removed, before / now |")
    print("|---|---:|---:|---:|---:|---:|")
    for lang, st in sorted(counts.items()):
        print(f"| {lang} | {st['finished']} | {st['open before']} / {st['open now']} | {st['cuts']} "
              f"| {st['held before']} / {st['held now']} | {st['bare held before']} / {st['bare held now']} |")
    print(f"\nWhere they differ ({len(differ)}):", *differ, sep="\n")


if __name__ == "__main__":
    main()
