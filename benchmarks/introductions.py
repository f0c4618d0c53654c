"""A new user introduces themselves: is the reply what a person would say back (a greeting, a word about what
they said), or are their facts read back to them ("Your name is Lena.") or taken as the bot's own ("I'm Lena")?

    python benchmarks/introductions.py                      # the default LLM (the 1.5B), seed 1, EN and ZH
    python benchmarks/introductions.py --lang zh --seed 1 2
    python benchmarks/introductions.py --compare off        # also without the introduction's guidance

Each introduction is the first turn of a new user's only session, typed, through the real server in-process
(port 0, a real WebSocket client), with the conversation suite's test doubles for the judge (always "reply"),
ASR, VAD and TTS (benchmarks/conversation_suite.py): the LLM's words are what is measured. A reply fails
when it reads the user's name or facts back to them ("Your name is Lena.", "You call yourself Sam, and you live
in Paris.", "Carlos works as a teacher.", "你好，小明，你住在上海。"), claims them as its own ("I'm Lena", "我叫丽娜"),
or is not in the user's language.
The rule cannot tell a greeting from a reply that merely avoids those phrases: every reply is printed, read them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402
from benchmarks.conversation_suite import Conversation, Step, in_language, lower, parse_settings, run_suite  # noqa: E402

# (user's words, what the bot must not claim as its own, their facts as the bot would read them back to them)
INTRODUCTIONS = {
    "en": [
        ("Hi, I'm Lena and I work as a nurse.", ["I'm Lena", "I am Lena", "I work as a nurse", "I'm a nurse"],
         ["you are lena", "you're lena", "lena is", "lena works", "you work as", "you are a nurse",
          "you're a nurse"]),
        ("Hello, my name is Sam, and I live in Paris.", ["I'm Sam", "my name is Sam", "I live in Paris"],
         ["you are sam", "you're sam", "sam is", "sam lives", "you live in paris"]),
        ("Hey there, I'm Omar. I'm a chef in Madrid.", ["I'm Omar", "I'm a chef", "I am a chef"],
         ["you are omar", "you're omar", "omar is", "you are a chef", "you're a chef"]),
        ("Hi! My name is Priya and I'm 29 years old.", ["I'm Priya", "my name is Priya", "I'm 29"],
         ["you are priya", "you're priya", "priya is", "you are 29", "you're 29"]),
        ("Hello, I'm called Jonas. I live in Oslo and I like jazz.", ["I'm Jonas", "I'm called Jonas",
                                                                      "I live in Oslo"],
         ["you are jonas", "you're jonas", "jonas is", "you live in oslo", "you like jazz"]),
        ("Hi, this is Mei. I just moved to Toronto.", ["I'm Mei", "this is Mei", "I just moved"],
         ["you are mei", "you're mei", "mei is", "you just moved", "you moved to toronto"]),
        ("My name is Carlos and I work as a teacher.", ["I'm Carlos", "my name is Carlos", "I'm a teacher",
                                                        "I work as a teacher"],
         ["you are carlos", "you're carlos", "carlos is", "carlos works", "you work as", "you are a teacher",
          "you're a teacher"]),
        ("Hello there, I'm Aiko. I love hiking.", ["I'm Aiko", "I am Aiko"],
         ["you are aiko", "you're aiko", "aiko is", "aiko loves", "you love hiking"]),
    ],
    "zh": [
        ("你好，我叫丽娜，我是一名护士。", ["我叫丽娜", "我是丽娜", "我是一名护士", "我是护士"],
         ["你是丽娜", "丽娜是", "你是一名护士", "你是护士"]),
        ("你好，我叫小明，我住在上海。", ["我叫小明", "我是小明", "我住在上海"], ["你是小明", "小明住", "你住在上海"]),
        ("嗨，我是浩然，我在广州当厨师。", ["我叫浩然", "我是浩然", "我在广州当厨师", "我是厨师"],
         ["你是浩然", "浩然是", "你在广州当厨师", "你是厨师", "你是一名厨师"]),
        ("你好，我的名字是王芳，我今年二十九岁。", ["我叫王芳", "我是王芳", "我的名字是王芳"],
         ["你是王芳", "王芳是", "你今年二十九岁", "你今年29岁"]),
        ("你好，我叫李雷，我住在北京，我喜欢打篮球。", ["我叫李雷", "我是李雷", "我住在北京"],
         ["你是李雷", "你住在北京", "李雷住"]),
        ("大家好，我叫小月，我刚搬到成都。", ["我叫小月", "我是小月", "我刚搬到成都"], ["你是小月", "你刚搬到成都"]),
        ("我叫陈刚，我是一名老师。", ["我叫陈刚", "我是陈刚", "我是一名老师", "我是老师"],
         ["你是陈刚", "陈刚是", "你是一名老师", "你是老师"]),
        ("你好呀，我是美美，我喜欢爬山。", ["我叫美美", "我是美美"], ["你是美美", "美美是", "你喜欢爬山"]),
    ],
}
TOLD_BACK = ["your name is", "you call yourself", "you called yourself", "你叫", "你的名字是", "你的名字叫"]

# "off": no guidance for an introduction's reply (`introduction_prompt`), as before 2026-12-02 06:45: the system
# prompt's "Your name is ..." example was said back. A system prompt to try: --set system_prompt="..."
VARIANTS = {"now": {}, "off": {"introduction_prompt": "", "introduction_prompt_zh": ""}}


def verdict(lang: str, text: str, claims: list[str], theirs: list[str]) -> str:
    """"ok", or what is wrong with the reply."""
    said = lower(text)
    if any(phrase in said for phrase in TOLD_BACK + theirs):
        return "reads their facts back"
    if any(lower(phrase) in said for phrase in claims):
        return "claims their facts"
    if not in_language(type("R", (), {"lang": lang, "text": text})()):  # type: ignore[arg-type]
        return "wrong language"
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", choices=("en", "zh"), nargs="+", default=["en", "zh"])
    parser.add_argument("--seed", type=int, nargs="+", default=[1])
    parser.add_argument("--compare", choices=sorted(VARIANTS), nargs="*", default=[],
                        help="run these variants too (off: no introduction guidance, as before), interleaved per seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting, for the run of the current code (\"now\")")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    conversations, claims = [], {}
    for lang in args.lang:
        for n, (said, own, theirs) in enumerate(INTRODUCTIONS[lang]):
            conversations.append(Conversation(f"{lang}-intro-{n}", lang, f"intro-{lang}-{n}",
                                              [[Step("memory", say=said)]]))
            claims[said] = (own, theirs)
    variants = ["now", *[v for v in args.compare if v != "now"]]
    totals: dict[str, list[int]] = {v: [0, 0] for v in variants}
    for seed in args.seed:
        for variant in variants:
            settings = {"llamacpp_seed": seed, **VARIANTS[variant], **(parse_settings(args.set) if variant == "now"
                                                                       else {})}
            replies, info = asyncio.run(run_suite(conversations, settings, log=lambda _: None))
            print(f"\n==== {variant}, seed {seed} ({info['seconds']} s)")
            for r in replies:
                result = verdict(r.lang, r.text, *claims[r.user])
                totals[variant][0] += result == "ok"
                totals[variant][1] += 1
                print(f"  [{result}] {r.user} -> {r.text}")
    print(f"\nintroductions on {machine()}, seeds {args.seed}, languages {args.lang}")
    for variant, (ok, total) in totals.items():
        print(f"  {variant}: {ok} of {total} answered without their facts told back or claimed")


if __name__ == "__main__":
    main()
