"""Two open-clause rules side by side on the same opinions: this checkout's `open_clause` and another copy's.

    git show main:s2s_server.py > /tmp/before.py
    python benchmarks/open_clause_compare.py --before /tmp/before.py --sentences new
    python benchmarks/open_clause_compare.py --before /tmp/before.py --sentences third --sets en-hibari
    python benchmarks/open_clause_compare.py --before /tmp/before.py --hesitation-ms 700 1000 --waits 1200 1800

benchmarks/end_of_turn.py's sets and scoring (its `make_set`, `run_detector`, `scores`), its full decision only
(no sweeps), with the models asked once per pause (`--model-ms` and `--text-ms` give their times, as in
end_of_turn.py; `--cache` keeps their answers for a rerun): the transcript, the text head's and Smart Turn's
probabilities and their measured times are computed once and shared by every row, so that rows differ only by
the rule. Rows: the other copy's `open_clause` (`--before`) and this checkout's, each with the open-clause wait
(`turn_open_clause_silence_ms`) at each of `--waits` (the checkout's setting first), and without the rule
(`turn_open_clause` false). For each: hesitations up to 1 s held by kind (inside a phrase, at a clause boundary,
after a first half that reads as finished; the third set's clause boundaries), false cut-offs over every pause,
the latency of every sentence's end, and how many whole sentences ended on the open-clause rule (what holding
costs a finished turn). Then every sample whose outcome differs between the first row and the checkout's
default row, with the words the rule read, and the hesitations up to 1 s the checkout's defaults still cut.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import sys
import time
from typing import Any

import end_of_turn as E
from common import machine  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402


def load_rule(path: str) -> Any:
    """`open_clause` of another copy of s2s_server.py (imported under its own name)."""
    spec = importlib.util.spec_from_file_location("s2s_server_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--before: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module.open_clause


def outcome(sample: E.Sample, stops: list[float]) -> str:
    """What the decision did with the sample: cut or held its pause, and when the turn ended after its end."""
    after = [t for t in stops if t >= sample.end_ms]
    end = f"ended {after[0] - sample.end_ms:.0f} ms after" if after else "never ended"
    if sample.pause:
        cut = any(sample.pause[0] <= t < sample.pause[1] + E.FRAME_MS for t in stops)
        return f"{'CUT' if cut else 'held'} ({sample.pause_ms} ms pause); {end}"
    return end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="another copy of s2s_server.py whose open_clause to score")
    parser.add_argument("--sets", nargs="+", choices=list(E.SETS), default=list(E.SETS))
    parser.add_argument("--sentences", nargs="+", choices=E.PARTS, default=["new"])
    parser.add_argument("--hesitation-ms", type=int, nargs="+", default=E.PAUSES_MS)
    parser.add_argument("--waits", type=int, nargs="+", default=[],
                        help="open-clause waits (ms) to score beside the setting's (default: the setting and 1200)")
    parser.add_argument("--model-ms", type=float, help="Smart Turn's time per call, in ms, instead of the time "
                        "measured here (end_of_turn.py's --model-ms: on a shared machine the measured times move "
                        "the decisions)")
    parser.add_argument("--text-ms", type=float, help="the transcript's and the text opinion's time per pause, in ms, "
                        "instead of the time measured here (end_of_turn.py's --text-ms)")
    parser.add_argument("--cache", help="a file to keep the opinions in (pickle): read if it exists, written at the "
                        "end, so that a rerun with the same sets and times asks no model again")
    args, server_args = parser.parse_known_args()
    config = load_config([*server_args, "--port", "0"])
    S.setup_logging("WARNING")
    before, after = load_rule(args.before), S.open_clause
    waits = list(dict.fromkeys([config.turn_open_clause_silence_ms, *(args.waits or [1200])]))
    t0 = time.perf_counter()
    opinions = E.Opinions(config, text_signal=True, fixed_ms=args.model_ms, fixed_text_ms=args.text_ms)
    kept = ("cache", "words", "logprobs", "last_words", "measured")
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as f:
            for attr, value in pickle.load(f).items():
                setattr(opinions, attr, value)
    parts = tuple(p for p in E.PARTS if p in args.sentences)
    print("| set | rule | open-clause wait | group | hesitations <= 1 s held | FCR | latency mean / p90 "
          "| whole sentences ended on the open-clause rule |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    changes: list[str] = []
    misses: list[str] = []  # hesitations up to 1 s the checkout's defaults cut
    for name in args.sets:
        samples = E.make_set(name, config.audible_dbfs, args.hesitation_ms, parts)
        E.hear_frames(samples, config)
        rows = [(label, rule, {"open_clause_silence_ms": w}) for label, rule in (("before", before), ("now", after))
                for w in waits] + [("no rule", after, {"open_clause": False})]
        outcomes: dict[str, list[str]] = {}
        for label, rule, overrides in rows:
            S.open_clause = rule  # Opinions.text calls it for a pause not asked before
            for key, words in opinions.words.items():
                opinions.open[key] = rule(words, config)
            make = E.detector_factory(config, "predictive", **overrides)
            timelines: list[list[dict[str, Any]]] = [[] for _ in samples]
            stops = [E.run_detector(s, make, opinions, True, True, timeline=t)
                     for s, t in zip(samples, timelines, strict=True)]
            ended_open = sum(1 for s, t in zip(samples, timelines, strict=True) if not s.pause and
                             any(x.get("rule") == "open clause" and x["stop"] >= s.end_ms for x in t))
            wait = "-" if "open_clause" in overrides else f"{overrides['open_clause_silence_ms']} ms"
            for group, r in E.scores(samples, stops).items():
                held = f"{r.held_n} of {r.short_n} ({100 * r.held:.1f} %)" if r.pauses_n else "-"
                fcr = f"{100 * r.fcr:.1f} %" if r.pauses_n else "-"
                print(f"| {name} | {label} | {wait} | {group} | {held} | {fcr} "
                      f"| {r.latency_ms:.0f} / {r.latency_p90_ms:.0f} ms | {ended_open if group == 'all' else ''} |",
                      flush=True)
            outcomes[f"{label} {wait}"] = [outcome(s, t) for s, t in zip(samples, stops, strict=True)]
            if label == "now" and overrides.get("open_clause_silence_ms") == waits[0]:  # the checkout's defaults
                for sample, t in zip(samples, stops, strict=True):
                    if sample.pause and sample.pause_ms <= 1000 and "CUT" in outcome(sample, t):
                        keys = [k for k in opinions.words if k[0] == sample.name]
                        misses.append(f"  {sample.name} ({sample.kind}, {sample.pause_ms} ms): "
                                      f"{sample.text_before_pause!r} heard as "
                                      + "; ".join(repr(opinions.words[k]) for k in keys[:2]))
        first, default = f"before {1200 if 1200 in waits else waits[0]} ms", f"now {waits[0]} ms"
        for i, sample in enumerate(samples):
            if outcomes[first][i] != outcomes[default][i]:
                keys = [k for k in opinions.words if k[0] == sample.name]
                heard = "; ".join(f"{opinions.words[k]!r} open: {S.open_clause(opinions.words[k], config) or 'no'}"
                                  for k in keys)
                changes.append(f"  {sample.name} ({sample.kind}): {first}: {outcomes[first][i]} -> {default}: "
                               f"{outcomes[default][i]} [{heard}]")
        S.open_clause = after
    if args.cache:
        with open(args.cache, "wb") as f:
            pickle.dump({attr: getattr(opinions, attr) for attr in kept}, f)
    print(f"\nSamples whose outcome differs ({len(changes)}):", *changes, sep="\n")
    print(f"\nHesitations up to 1 s cut under this checkout's defaults ({len(misses)}):", *misses, sep="\n")
    median = sorted(opinions.measured)[len(opinions.measured) // 2]
    print(f"\n{time.perf_counter() - t0:.0f} s; Smart Turn median {median:.0f} ms a call; load average "
          f"{os.getloadavg()[0]:.1f}; {machine()}")


if __name__ == "__main__":
    main()
