"""Whisper's encoder window (`whisper_window_s`): time and word error rate per window, side by side in one run.

    python benchmarks/asr_window.py                    # windows 5, 10 and 30 s (30: Whisper exactly)
    python benchmarks/asr_window.py --windows 5 10     # any of 5..30

The server pads each utterance to max(utterance + 1 s, `whisper_window_s`) instead of Whisper's fixed 30 s
(section 5, WhisperASR). This benchmark speaks a fixed set of everyday English sentences with espeak-ng
(American voice, 140 words per minute, as the model tests do), recognises each one with the server's own
WhisperASR at each window, and prints the median and p90 time of one recognition and the word error rate
(substitutions + deletions + insertions over the reference words, after lower-casing and dropping
punctuation). Same clips, same process, one window after the other, so the rows compare.
"""

from __future__ import annotations

import argparse
import re
import statistics
import threading
import time

import numpy as np
from common import machine, pct  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import config_model  # noqa: E402

SENTENCES = [
    "What is the capital of France?", "How many legs does a spider have?", "Tell me a joke about cats.",
    "I think pineapple on pizza is a terrible idea.", "Can you recommend a good book for a long flight?",
    "My brother works as a pilot and he travels a lot.", "Why do leaves change color in autumn?",
    "What should I cook for dinner tonight?", "I went hiking yesterday and the view was amazing.",
    "Give me one tip for sleeping better.", "What is the tallest animal in the world?",
    "Could you explain how a rainbow forms?", "I am learning to play the guitar this year.",
    "Please remind me what we talked about earlier.", "The weather has been really strange this week.",
    "Do you know any good exercises for a sore back?", "Stop talking for a second, I need to think.",
    "My name is Sam and I live in Paris.", "How long does it take to boil an egg?",
    "I don't really like horror movies, they scare me.", "Which planet is closest to the sun?",
    "Can you help me plan a birthday party for my daughter?", "Honestly, I think that idea is brilliant.",
    "What time does the train to London leave tomorrow morning?",
]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, deletions, insertions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def speak(text: str) -> np.ndarray:
    import io
    import subprocess
    import wave

    out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", text], check=True,
                         capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return S.resample(pcm, w.getframerate(), S.SAMPLE_RATE_HZ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, nargs="+", default=[5, 10, 30], help="windows in seconds (5..30)")
    args = parser.parse_args()
    config = config_model()
    clips = [speak(text) for text in SENTENCES]
    rows = []
    for window in args.windows:
        asr = S.WhisperASR(config(whisper_window_s=window))
        asr.load()
        times, errors, total = [], 0, 0
        for clip, text in zip(clips, SENTENCES, strict=True):
            started = time.perf_counter()
            heard = "".join(piece for piece, *_scores in asr._recognise(clip, threading.Event()))
            times.append((time.perf_counter() - started) * 1000)
            errors += edit_distance(words(text), words(heard))
            total += len(words(text))
        asr.close()
        rows.append((window, statistics.median(times), pct(times, 90), errors, total))
    seconds = [len(c) / S.SAMPLE_RATE_HZ for c in clips]
    print(f"\n{machine()}; {len(clips)} espeak-ng sentences, {min(seconds):.1f} to {max(seconds):.1f} s")
    print("\n| whisper_window_s | one recognition, median / p90 (ms) | word error rate |")
    print("|---:|---:|---:|")
    for window, median, p90, errors, total in rows:
        print(f"| {window} | {median:.0f} / {p90:.0f} | {100 * errors / total:.1f} % ({errors} of {total} words) |")


if __name__ == "__main__":
    main()
