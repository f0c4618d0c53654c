"""The paper's model table (Table 1): every backend selected by name, exercised as far as this machine allows.

What runs for real here, and what does not:
- hf-whisper and transformers: the real transformers code path (from_pretrained, processor or chat template,
  generate in a thread, TextIteratorStreamer, the StoppingCriteria that reads `stop`) on tiny RANDOM models
  built from a config in this file and saved to a temporary folder. Their text is nonsense; what is tested
  is that it streams, reaches the session, and stops at once on cancel. No download happens.
- openai-asr, openai-tts, funasr-ws: the real clients (openai.AsyncOpenAI, websockets) against real local
  servers started here that speak each protocol (multipart /v1/audio/transcriptions with JSON and SSE
  answers, chunked 24 kHz PCM from /v1/audio/speech, FunASR's WebSocket messages).
- paraformer (funasr), cosyvoice, f5-tts, melotts: their libraries and weights cannot be installed or fetched
  here. Our adapters run against stand-ins for the library objects, injected as modules under the
  libraries' own import names, that follow each library's documented call signatures and output shapes
  and rates (funasr: [{"key", "text"}] per generate, streaming with cache/is_final/chunk_size; CosyVoice 2:
  a generator of {"tts_speech": tensor (1, n)} at 24 kHz; F5TTS.infer -> (wav, 24000, spectrogram); MeloTTS:
  tts_to_file(output_path=None) -> float audio at hps.data.sampling_rate 44.1 kHz). So our import path,
  call arguments, resampling, chunking and stopping are tested; the models' real outputs, speed, and any
  drift of the libraries from their documentation are not. `test_real_*` run the real models when their
  weights are named in MODEL_TABLE_* environment variables and the library imports; otherwise they are
  skipped with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.parser
import email.policy
import http.server
import importlib.util
import json
import os
import sys
import threading
import time
import types
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

import s2s_server as s2s
from s2s_config import validate_config
from tests.conftest import ESPEAK_MANDARIN, Client, silence, speech

ROOT = Path(__file__).resolve().parent.parent
STOP_WITHIN_S = 1.0  # a cancelled generation's thread must be gone this soon (a token takes ~11 ms here)


def config(**settings: Any) -> Any:
    return validate_config({"asr": "fake", "llm": "fake", "tts": "fake", "judge": "off", **settings})


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


def tone(seconds: float, rate_hz: int, freq_hz: float = 220.0) -> np.ndarray:
    """A float tone in [-0.5, 0.5]: what a TTS model returns."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def assert_16k_int16(chunks: list[np.ndarray], seconds: float) -> None:
    """int16 chunks that add up to `seconds` of audio at 16 kHz (within the resampler's edges)."""
    assert chunks and all(c.dtype == np.int16 and c.ndim == 1 and len(c) for c in chunks)
    total = sum(len(c) for c in chunks)
    assert abs(total - seconds * 16000) <= 0.02 * 16000, total


def generation_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


async def wait_gone(name: str, within_s: float = STOP_WITHIN_S) -> float:
    started = time.monotonic()
    while generation_threads(name):
        assert time.monotonic() - started < within_s, f"{name} still running {within_s} s after cancel"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


# ---- tiny random transformers models, built from configs (no download) --------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyz"
WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|translate|>",
                    "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Whisper with random weights, a 37-token byte-level BPE vocabulary and Whisper's special
    tokens, saved as a model folder with its processor, as a real checkpoint would be."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    vocab = {ch: i for i, ch in enumerate(LETTERS)}
    vocab["Ġ"] = len(vocab)
    for ch in LETTERS[:10]:
        vocab["Ġ" + ch] = len(vocab)
    tokenizer = tf.WhisperTokenizer(vocab=dict(vocab), merges=[("Ġ", ch) for ch in LETTERS[:10]])
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS})
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in WHISPER_SPECIALS}
    processor = tf.WhisperProcessor(feature_extractor=tf.WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer)
    eot = ids["<|endoftext|>"]
    model_config = tf.WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=64, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"])
    torch.manual_seed(0)
    model = tf.WhisperForConditionalGeneration(model_config).eval()
    # Whisper's generation settings as a multilingual checkpoint ships them; every special token is
    # suppressed so that the random decoder writes letters (and never ends before max_new_tokens).
    model.generation_config = tf.GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=eot, pad_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True, max_length=64,
        lang_to_id={"<|en|>": ids["<|en|>"], "<|zh|>": ids["<|zh|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        suppress_tokens=sorted(ids.values()))
    folder = tmp_path_factory.mktemp("tiny-whisper")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}<assistant> {% endif %}")
WORDS = ("hello there the weather is fine today in paris and we talk about it more later or now "
         "what you said was good tell me").split()


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer Llama with random weights and a word-level tokenizer with a chat template, saved as a
    model folder. Its generation config has no end token, so it writes until max_new_tokens."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<system>", "<user>", "<assistant>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                           eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=16384, bos_token_id=1, eos_token_id=2, pad_token_id=3)).eval()
    model.generation_config = tf.GenerationConfig(bos_token_id=1, pad_token_id=3, eos_token_id=None,
                                                  suppress_tokens=list(range(len(specials))))
    folder = tmp_path_factory.mktemp("tiny-llm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


async def test_hf_whisper_transcribes_through_transformers_and_streams(tiny_whisper_dir, speech_dir):
    asr = s2s.REGISTRY["asr"]["hf-whisper"](config(hf_whisper_model=str(tiny_whisper_dir),
                                                 hf_whisper_max_new_tokens=12, asr_language="en"))
    await asyncio.to_thread(asr.load)
    pieces = await collect(asr.transcribe(speech("hello there", speech_dir, 16000)))
    text = "".join(pieces)
    assert len(pieces) >= 2  # streamed word by word, not one answer at the end
    assert text and text == text.lstrip() and set(text) <= set(LETTERS + " ")
    assert not generation_threads("s2s-hf-whisper-generate")


async def test_hf_whisper_refuses_a_hub_id_that_is_not_cached_when_downloads_are_off():
    asr = s2s.REGISTRY["asr"]["hf-whisper"](config(hf_whisper_model="example-org/not-a-cached-whisper"))
    with pytest.raises(s2s.ComponentMissing, match="--model-download"):
        await asyncio.to_thread(asr.load)


async def test_transformers_llm_streams_tokens_from_the_chat_template(tiny_llm_dir):
    llm = s2s.REGISTRY["llm"]["transformers"](config(hf_llm_model=str(tiny_llm_dir), hf_llm_temperature=0))
    await asyncio.to_thread(llm.load)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    pieces = await collect(llm.generate(messages, max_tokens=12))
    words = "".join(pieces).split()
    assert len(pieces) >= 6 and len(words) == 12  # one word per token, streamed as they come
    assert set(words) <= set(WORDS)
    assert pieces == await collect(llm.generate(messages, max_tokens=12))  # greedy: the same again


async def test_transformers_llm_continues_a_trailing_assistant_message(tiny_llm_dir):
    """A reply's words so far as the last message (a resumed reply) are continued, not answered anew: greedy,
    the continuation is the rest of the reply the same messages get whole."""
    llm = s2s.REGISTRY["llm"]["transformers"](config(hf_llm_model=str(tiny_llm_dir), hf_llm_temperature=0))
    await asyncio.to_thread(llm.load)
    assert llm.continues_assistant
    messages = [{"role": "user", "content": "tell me about paris"}]
    whole = "".join(await collect(llm.generate(messages, max_tokens=10))).split()
    cut = [*messages, {"role": "assistant", "content": " ".join(whole[:4])}]
    rest = "".join(await collect(llm.generate(cut, max_tokens=6))).split()
    assert rest == whole[4:]


async def test_transformers_llm_generation_thread_ends_at_once_on_cancel(tiny_llm_dir):
    llm = s2s.REGISTRY["llm"]["transformers"](config(hf_llm_model=str(tiny_llm_dir), hf_llm_temperature=0))
    await asyncio.to_thread(llm.load)
    stream = llm.generate([{"role": "user", "content": "tell me"}], max_tokens=8000)  # 90 s or more to finish
    pieces = [await anext(stream) for _ in range(3)]
    assert generation_threads("s2s-transformers-generate")
    await stream.aclose()  # what a barge-in does (the session's aclosing)
    await wait_gone("s2s-transformers-generate")
    assert len(pieces) == 3
    # the model is free again at once: a new reply starts without waiting for the old one
    assert len(await collect(llm.generate([{"role": "user", "content": "hello"}], max_tokens=4))) >= 1


async def test_transformers_llm_cancel_in_the_server_task_stops_generation(tiny_llm_dir):
    """The same through asyncio cancellation of the consuming task, as Session cancels a response."""
    llm = s2s.REGISTRY["llm"]["transformers"](config(hf_llm_model=str(tiny_llm_dir)))
    await asyncio.to_thread(llm.load)
    first = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(llm.generate([{"role": "user", "content": "hi"}], max_tokens=8000)) as s:
            async for _ in s:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 20)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await wait_gone("s2s-transformers-generate")


async def test_transformers_llm_needs_a_chat_template(tiny_llm_dir, tmp_path):
    import shutil

    folder = tmp_path / "no-template"
    shutil.copytree(tiny_llm_dir, folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    for extra in folder.glob("chat_template.*"):
        extra.unlink()
    llm = s2s.REGISTRY["llm"]["transformers"](config(hf_llm_model=str(folder)))
    with pytest.raises(s2s.ComponentMissing, match="chat template"):
        await asyncio.to_thread(llm.load)


# ---- real local servers for the API backends ------------------------------------------------------------


class APIServer:
    """A stdlib HTTP server on 127.0.0.1:0 that speaks the two OpenAI audio endpoints and records requests."""

    def __init__(self, transcript: str = "hello there", speech_pcm24k: bytes = b""):
        self.transcript = transcript
        self.speech_pcm24k = speech_pcm24k
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()  # the second half of the speech waits for this (streaming check)
        self.released_by_client = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.endswith("/audio/transcriptions"):
                    outer._transcriptions(self, body)
                elif self.path.endswith("/audio/speech"):
                    outer._speech(self, json.loads(body))
                else:
                    self.send_error(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _transcriptions(self, h: Any, body: bytes) -> None:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        form = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                for part in message.iter_parts()}
        self.requests.append(("transcriptions", form))
        if form.get("stream") == b"true":
            words = self.transcript.split(" ")
            events = [{"type": "transcript.text.delta", "delta": " " + word} for word in words]
            events.append({"type": "transcript.text.done", "text": self.transcript})
            payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
        else:
            payload = json.dumps({"text": " " + self.transcript}).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _speech(self, h: Any, request: dict[str, Any]) -> None:
        self.requests.append(("speech", request))
        h.send_response(200)
        h.send_header("Content-Type", "audio/pcm")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        data, half = self.speech_pcm24k, len(self.speech_pcm24k) // 2 + 1  # odd: chunks end inside a sample
        waited = False
        for i, start in enumerate(range(0, len(data), 4801)):
            if start >= half and i and not waited:  # hold the second half until the client has audio
                self.released_by_client = self.release.is_set() or self.release.wait(5)
                waited = True
            piece = data[start:start + 4801]
            h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api_server() -> Iterator[APIServer]:
    pcm = (tone(1.0, 24000) * 32767).astype("<i2").tobytes()  # 1 s at 24 kHz, what "pcm" means
    server = APIServer(speech_pcm24k=pcm)
    yield server
    server.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_asr_posts_a_16k_wav_and_reads_the_transcript(api_server, speech_dir, stream):
    asr = s2s.REGISTRY["asr"]["openai-asr"](config(openai_asr_base_url=api_server.base_url, asr_language="en",
                                                 openai_asr_model="whisper-large-v3", openai_asr_stream=stream))
    await asyncio.to_thread(asr.load)
    audio = speech("hello there", speech_dir, 16000)
    pieces = await collect(asr.transcribe(audio))
    assert "".join(pieces) == "hello there"
    assert len(pieces) == (2 if stream else 1)
    (kind, form), = api_server.requests
    assert kind == "transcriptions" and form["model"] == b"whisper-large-v3" and form["language"] == b"en"
    with wave.open(__import__("io").BytesIO(form["file"])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert np.array_equal(np.frombuffer(w.readframes(w.getnframes()), "<i2"), audio)


async def test_openai_tts_streams_24k_pcm_resampled_to_16k(api_server):
    tts = s2s.REGISTRY["tts"]["openai-tts"](config(openai_tts_base_url=api_server.base_url,
                                                 openai_tts_model="tts-1", openai_tts_voice="nova"))
    await asyncio.to_thread(tts.load)
    chunks = []
    async for chunk in tts.synthesize("Hello there."):
        chunks.append(chunk)
        api_server.release.set()  # the server sends the second half only after our first chunk arrived
    assert api_server.released_by_client  # so the first audio came while the response was still streaming
    assert_16k_int16(chunks, 1.0)
    (kind, request), = api_server.requests
    assert kind == "speech" and request["response_format"] == "pcm"
    assert request["voice"] == "nova" and request["input"] == "Hello there." and request["model"] == "tts-1"
    # the tone survives: its dominant frequency is still 220 Hz at the new rate
    audio = np.concatenate(chunks).astype(np.float32)
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio) - 220) < 3


async def test_openai_tts_uses_the_sessions_voice_when_given(api_server):
    tts = s2s.REGISTRY["tts"]["openai-tts"](config(openai_tts_base_url=api_server.base_url))
    await asyncio.to_thread(tts.load)
    api_server.release.set()
    await collect(tts.synthesize("Hi.", voice="shimmer"))
    assert api_server.requests[0][1]["voice"] == "shimmer"


# ---- FunASR runtime WebSocket protocol ---------------------------------------------------------------


class FunASRServer:
    """Speaks FunASR's WebSocket protocol (runtime/docs/websocket_protocol.md) like the C++ runtime: a JSON
    start message, binary PCM16 frames, {"is_speaking": false}; results {"mode", "text", "is_final"}, the
    last one with is_final true. Online pieces go out every `online_every` frames."""

    def __init__(self, online_every: int = 5):
        self.online_every = online_every
        self.start: dict[str, Any] = {}
        self.frames: list[bytes] = []
        self.ended = False

    async def handle(self, ws: Any) -> None:
        self.start = json.loads(await ws.recv())
        mode = self.start["mode"]
        pieces = iter(["你好", "，世界", "。"])
        async for message in ws:
            if isinstance(message, bytes):
                self.frames.append(message)
                if mode in ("online", "2pass") and len(self.frames) % self.online_every == 0:
                    text = next(pieces, "")
                    await ws.send(json.dumps({"mode": "2pass-online" if mode == "2pass" else "online",
                                              "text": text, "wav_name": self.start["wav_name"], "is_final": False}))
                continue
            if json.loads(message).get("is_speaking") is False:
                self.ended = True
                final_mode = {"offline": "offline", "online": "online", "2pass": "2pass-offline"}[mode]
                text = "你好，世界。" if mode != "online" else "".join(pieces)
                await ws.send(json.dumps({"mode": final_mode, "text": text, "wav_name": self.start["wav_name"],
                                          "is_final": True, "timestamp": "[[100,200]]"}))


@pytest.fixture
async def funasr_server() -> AsyncIterator[tuple[FunASRServer, str]]:
    fake = FunASRServer()
    async with websockets.serve(fake.handle, "127.0.0.1", 0, subprotocols=["binary"]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}"


@pytest.mark.parametrize("mode", ["offline", "online", "2pass"])
async def test_funasr_ws_speaks_the_runtime_protocol(funasr_server, mode):
    fake, url = funasr_server
    asr = s2s.REGISTRY["asr"]["funasr-ws"](config(funasr_ws_url=url, funasr_ws_mode=mode,
                                                funasr_ws_hotwords='{"阿里巴巴": 20}'))
    await asyncio.to_thread(asr.load)
    audio = (tone(1.0, 16000) * 20000).astype(np.int16)
    pieces = await collect(asr.transcribe(audio))
    assert "".join(pieces) == "你好，世界。"
    assert len(pieces) == (3 if mode == "online" else 1)  # online streams; 2pass yields only corrections
    assert fake.start == {"mode": mode, "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": "s2s",
                          "wav_format": "pcm", "audio_fs": 16000, "is_speaking": True,
                          "hotwords": '{"阿里巴巴": 20}', "itn": True}
    assert {len(f) for f in fake.frames[:-1]} == {1920}  # 60 ms of PCM16 at 16 kHz per frame
    assert b"".join(fake.frames) == audio.astype("<i2").tobytes() and fake.ended


async def test_funasr_ws_gives_up_after_its_timeout_when_no_final_result_comes():
    async def silent(ws: Any) -> None:
        async for _ in ws:
            pass

    async with websockets.serve(silent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        asr = s2s.REGISTRY["asr"]["funasr-ws"](config(funasr_ws_url=f"ws://127.0.0.1:{port}", funasr_ws_timeout_s=0.3))
        started = time.monotonic()
        assert await collect(asr.transcribe(np.zeros(1600, np.int16))) == []
        assert time.monotonic() - started < 2


# ---- stand-ins for libraries that cannot run here (documented shapes and rates) -------------------------


def install_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> types.ModuleType:
    """Register a stand-in module (and its parents) under a library's own import name."""
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent not in sys.modules or not isinstance(sys.modules[parent], types.ModuleType):
            monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, name, module)
    return module


class FunASRAutoModel:
    """funasr.AutoModel as documented: generate(input=float32 16 kHz, ...) -> [{"key", "text"}]; a streaming
    model decodes one stride per call, keeping state in the caller's `cache` dict."""

    instances: list[FunASRAutoModel] = []

    def __init__(self, model: str, **kwargs: Any):
        self.model, self.kwargs, self.calls = model, kwargs, []
        FunASRAutoModel.instances.append(self)

    def generate(self, input: Any, **kwargs: Any) -> list[dict[str, Any]]:  # noqa: A002 - funasr's name
        assert isinstance(input, np.ndarray) and input.dtype == np.float32 and np.abs(input).max() <= 1.0
        self.calls.append({"samples": len(input), **{k: v for k, v in kwargs.items() if k != "cache"}})
        if "cache" in kwargs:  # streaming: one character per 600 ms stride, the cache counts strides
            kwargs["cache"]["strides"] = kwargs["cache"].get("strides", 0) + 1
            return [{"key": "rand_key_1", "text": "你好世界"[kwargs["cache"]["strides"] - 1:][:1]}]
        return [{"key": "rand_key_2", "text": "欢迎大家来体验达摩院推出的语音识别模型", "timestamp": [[0, 100]]}]


@pytest.fixture
def funasr_stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    FunASRAutoModel.instances = []
    install_module(monkeypatch, "funasr", AutoModel=FunASRAutoModel)
    folder = tmp_path / "paraformer-zh"
    folder.mkdir()
    return folder


async def test_paraformer_offline_passes_float_audio_and_joins_the_results_text(funasr_stand_in):
    asr = s2s.REGISTRY["asr"]["paraformer"](config(paraformer_model=str(funasr_stand_in), model_device="cpu",
                                                 paraformer_hotword="魔搭"))
    await asyncio.to_thread(asr.load)
    (model,) = FunASRAutoModel.instances
    assert model.model == str(funasr_stand_in) and model.kwargs["device"] == "cpu"
    assert model.kwargs["disable_update"] is True
    pieces = await collect(asr.transcribe(np.full(32000, 16000, np.int16)))
    assert pieces == ["欢迎大家来体验达摩院推出的语音识别模型"]
    assert model.calls == [{"samples": 32000, "batch_size_s": 300, "hotword": "魔搭", "disable_pbar": True}]


async def test_paraformer_streaming_feeds_600ms_strides_and_yields_each_ones_text(funasr_stand_in):
    asr = s2s.REGISTRY["asr"]["paraformer"](config(paraformer_streaming_model=str(funasr_stand_in)))
    await asyncio.to_thread(asr.load)
    pieces = await collect(asr.transcribe(np.zeros(int(16000 * 2.1), np.int16)))  # 2.1 s: four strides
    assert pieces == ["你", "好", "世", "界"]
    calls = FunASRAutoModel.instances[0].calls
    assert [c["samples"] for c in calls] == [9600, 9600, 9600, 4800]
    assert [c["is_final"] for c in calls] == [False, False, False, True]
    assert all(c["chunk_size"] == [0, 10, 5] and c["encoder_chunk_look_back"] == 4 for c in calls)


async def test_paraformer_will_not_fetch_a_model_name_when_downloads_are_off(funasr_stand_in):
    asr = s2s.REGISTRY["asr"]["paraformer"](config(paraformer_model="paraformer-zh"))
    with pytest.raises(s2s.ComponentMissing, match="--model-download"):
        await asyncio.to_thread(asr.load)
    assert not FunASRAutoModel.instances


class CosyVoice2StandIn:
    """CosyVoice2 as cosyvoice/cli/cosyvoice.py defines it: sample_rate 24000; inference_sft and
    inference_zero_shot(stream=True) yield {"tts_speech": float tensor (1, n)} chunk by chunk."""

    made: list[CosyVoice2StandIn] = []

    def __init__(self, model_dir: str, load_jit: bool = False, load_trt: bool = False, fp16: bool = False):
        import torch

        self.torch, self.model_dir, self.fp16 = torch, model_dir, fp16
        self.sample_rate = 24000
        self.calls: list[tuple[Any, ...]] = []
        self.closed = threading.Event()
        self.chunks_made = 0

    def list_available_spks(self) -> list[str]:
        return ["中文女", "英文男"]

    def _stream(self) -> Iterator[dict[str, Any]]:
        try:
            for _ in range(5):  # 5 chunks of 0.2 s audio, each taking the model 0.1 s to make
                time.sleep(0.1)
                self.chunks_made += 1
                yield {"tts_speech": self.torch.from_numpy(tone(0.2, 24000)).unsqueeze(0)}
        finally:
            self.closed.set()

    def inference_sft(self, tts_text: str, spk_id: str, stream: bool = False, speed: float = 1.0) -> Iterator[Any]:
        self.calls.append(("sft", tts_text, spk_id, stream))
        return self._stream()

    def inference_zero_shot(self, tts_text: str, prompt_text: str, prompt_speech_16k: Any, zero_shot_spk_id: str = "",
                            stream: bool = False, speed: float = 1.0) -> Iterator[Any]:
        self.calls.append(("zero_shot", tts_text, prompt_text, tuple(prompt_speech_16k.shape), stream))
        return self._stream()


@pytest.fixture
def cosyvoice_stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    pytest.importorskip("torch")
    made: list[CosyVoice2StandIn] = []

    class Recorded(CosyVoice2StandIn):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            made.append(self)

    def load_wav(path: str, rate_hz: int) -> Any:  # cosyvoice.utils.file_utils.load_wav: tensor (1, n)
        import torch

        with wave.open(path) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        return torch.from_numpy(s2s.resample(pcm, w.getframerate(), rate_hz).astype(np.float32) / 32768).unsqueeze(0)

    install_module(monkeypatch, "cosyvoice.cli.cosyvoice", CosyVoice2=Recorded)
    install_module(monkeypatch, "cosyvoice.utils.file_utils", load_wav=load_wav)
    folder = tmp_path / "CosyVoice2-0.5B"
    folder.mkdir()
    CosyVoice2StandIn.made = made
    return folder


async def test_cosyvoice_streams_each_chunk_resampled_from_24k(cosyvoice_stand_in):
    tts = s2s.REGISTRY["tts"]["cosyvoice"](config(cosyvoice_model_dir=str(cosyvoice_stand_in),
                                                cosyvoice_speaker="英文男"))
    await asyncio.to_thread(tts.load)
    chunks = await collect(tts.synthesize("Hello there."))
    assert len(chunks) >= 5  # one per model chunk (the resampler's tail may add one)
    assert_16k_int16(chunks, 1.0)
    model = CosyVoice2StandIn.made[0]
    assert model.calls == [("sft", "Hello there.", "英文男", True)] and model.fp16 is False


async def test_cosyvoice_clones_the_reference_voice_and_stops_between_chunks(cosyvoice_stand_in, speech_dir,
                                                                          tmp_path):
    ref = tmp_path / "ref.wav"
    ref.write_bytes(s2s.pcm16_to_wav(speech("hello", speech_dir, 22050), 22050))
    tts = s2s.REGISTRY["tts"]["cosyvoice"](config(cosyvoice_model_dir=str(cosyvoice_stand_in),
                                                cosyvoice_ref_audio=str(ref), cosyvoice_ref_text="hello"))
    await asyncio.to_thread(tts.load)
    stream = tts.synthesize("A longer reply.")
    await anext(stream)
    await stream.aclose()  # barge-in
    model = CosyVoice2StandIn.made[0]
    assert await asyncio.to_thread(model.closed.wait, 2)  # CosyVoice's generator was closed, not drained
    assert model.chunks_made < 5
    kind, text, prompt_text, shape, streamed = model.calls[0]
    assert (kind, text, prompt_text, streamed) == ("zero_shot", "A longer reply.", "hello", True)
    assert shape[0] == 1 and abs(shape[1] - len(speech("hello", speech_dir, 16000))) <= 16  # 16 kHz prompt


class F5TTSStandIn:
    """f5_tts.api.F5TTS as documented: infer(ref_file, ref_text, gen_text, ...) -> (wav float, 24000, spect);
    it iterates `progress.tqdm(text_batches)` while it works."""

    made: list[F5TTSStandIn] = []

    def __init__(self, model: str = "F5TTS_v1_Base", ckpt_file: str = "", vocab_file: str = "",
                 ode_method: str = "euler", use_ema: bool = True, vocoder_local_path: str | None = None,
                 device: str | None = None, hf_cache_dir: str | None = None):
        self.args = {"model": model, "ckpt_file": ckpt_file, "vocoder_local_path": vocoder_local_path,
                     "device": device}
        self.infers: list[dict[str, Any]] = []
        F5TTSStandIn.made.append(self)

    def infer(self, ref_file: str, ref_text: str, gen_text: str, show_info: Any = print, progress: Any = None,
              nfe_step: int = 32, speed: float = 1.0, seed: int | None = None, **kwargs: Any) -> tuple[Any, int, Any]:
        self.infers.append({"ref_file": ref_file, "ref_text": ref_text, "gen_text": gen_text, "nfe_step": nfe_step,
                            "seed": seed})
        batches = list(progress.tqdm([gen_text[:10], gen_text[10:]]))
        return np.concatenate([tone(0.75, 24000) for _ in batches]), 24000, np.zeros((100, 10))


async def test_f5_tts_synthesises_each_clause_with_the_reference_voice(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    F5TTSStandIn.made = []
    install_module(monkeypatch, "f5_tts.api", F5TTS=F5TTSStandIn)
    ckpt = tmp_path / "model_1250000.safetensors"
    ckpt.write_bytes(b"")
    tts = s2s.REGISTRY["tts"]["f5-tts"](config(f5_ckpt_file=str(ckpt), f5_vocoder_dir=str(tmp_path),
                                             f5_ref_audio="/voices/me.wav", f5_ref_text="This is me.",
                                             f5_nfe_step=16, model_device="cpu"))
    await asyncio.to_thread(tts.load)
    chunks = await collect(tts.synthesize("Hello there, friend."))
    assert_16k_int16(chunks, 1.5)
    (model,) = F5TTSStandIn.made
    assert model.args == {"model": "F5TTS_v1_Base", "ckpt_file": str(ckpt), "vocoder_local_path": str(tmp_path),
                          "device": "cpu"}
    assert model.infers == [{"ref_file": "/voices/me.wav", "ref_text": "This is me.",
                             "gen_text": "Hello there, friend.", "nfe_step": 16, "seed": 0}]


async def test_f5_tts_will_not_fetch_weights_when_downloads_are_off(monkeypatch):
    pytest.importorskip("torch")
    install_module(monkeypatch, "f5_tts.api", F5TTS=F5TTSStandIn)
    with pytest.raises(s2s.ComponentMissing, match="--f5-ckpt-file"):
        await asyncio.to_thread(s2s.REGISTRY["tts"]["f5-tts"](config()).load)


class HParams:
    """MeloTTS's HParams: keys() and item access, not a dict."""

    def __init__(self, values: dict[str, int]):
        self._values = values

    def keys(self) -> Any:
        return self._values.keys()

    def __getitem__(self, key: str) -> int:
        return self._values[key]


class MeloStandIn:
    """melo.api.TTS as melo/api.py defines it: hps.data.spk2id and sampling_rate (44100);
    split_sentences_into_pieces; tts_to_file(output_path=None) returns float audio."""

    made: list[MeloStandIn] = []

    def __init__(self, language: str, device: str = "auto", use_hf: bool = True, config_path: str | None = None,
                 ckpt_path: str | None = None):
        self.args = {"language": language, "device": device, "config_path": config_path, "ckpt_path": ckpt_path}
        self.language = "ZH_MIX_EN" if language == "ZH" else language.split("_")[0]
        self.hps = types.SimpleNamespace(data=types.SimpleNamespace(spk2id=HParams({"EN-US": 0, "EN-BR": 1}),
                                                                    sampling_rate=44100))
        self.spoken: list[tuple[str, int]] = []
        MeloStandIn.made.append(self)

    @staticmethod
    def split_sentences_into_pieces(text: str, language: str, quiet: bool = False) -> list[str]:
        return [s.strip() + "." for s in text.split(".") if s.strip()]

    def tts_to_file(self, text: str, speaker_id: int, output_path: str | None = None, speed: float = 1.0,
                    quiet: bool = False, **kwargs: Any) -> Any:
        assert output_path is None
        time.sleep(0.05)  # a model takes time per sentence
        self.spoken.append((text, speaker_id))
        return tone(0.5, 44100)


async def test_melotts_yields_each_sentence_as_it_is_synthesised(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    MeloStandIn.made = []
    install_module(monkeypatch, "melo.api", TTS=MeloStandIn)
    tts = s2s.REGISTRY["tts"]["melotts"](config(melotts_model_dir=str(tmp_path), melotts_speaker="EN-BR",
                                              model_device="cpu"))
    await asyncio.to_thread(tts.load)
    chunks = await collect(tts.synthesize("Hello there. How are you. Fine."))
    assert len(chunks) == 3
    assert_16k_int16(chunks, 1.5)
    (model,) = MeloStandIn.made
    assert model.args == {"language": "EN", "device": "cpu", "config_path": str(tmp_path / "config.json"),
                          "ckpt_path": str(tmp_path / "checkpoint.pth")}
    assert model.spoken == [("Hello there.", 1), ("How are you.", 1), ("Fine.", 1)]
    stream = tts.synthesize("One. Two. Three. Four.", voice="EN-US")  # a session's voice, if it is a speaker
    await anext(stream)
    await stream.aclose()
    for thread in [t for t in threading.enumerate() if t.name == "s2s-melotts"]:
        await asyncio.to_thread(thread.join, 5)  # the synthesis thread ends...
    assert model.spoken[3] == ("One.", 0) and len(model.spoken) < 7  # ...between sentences, not after all


async def test_melotts_rejects_an_unknown_speaker_at_load(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    install_module(monkeypatch, "melo.api", TTS=MeloStandIn)
    tts = s2s.REGISTRY["tts"]["melotts"](config(melotts_model_dir=str(tmp_path), melotts_speaker="EN-XX"))
    with pytest.raises(s2s.ComponentMissing, match="EN-US, EN-BR"):
        await asyncio.to_thread(tts.load)


# ---- a missing library stops start-up with the install command ---------------------------------------------

MISSING = [
    ("asr", "hf-whisper", ["transformers"], "pip install -r extras/asr.txt"),
    ("asr", "openai-asr", ["openai"], "pip install -r extras/asr.txt"),
    ("asr", "paraformer", ["funasr"], "pip install -r extras/asr-paraformer.txt"),
    ("llm", "transformers", ["transformers"], "pip install -r extras/llm.txt"),
    ("tts", "openai-tts", ["openai"], "pip install -r extras/tts.txt"),
    ("tts", "cosyvoice", ["cosyvoice", "cosyvoice.cli.cosyvoice"], "pip install -r extras/tts-cosyvoice.txt"),
    ("tts", "f5-tts", ["f5_tts", "f5_tts.api"], "pip install -r extras/tts-f5.txt"),
    ("tts", "melotts", ["melo", "melo.api"], "pip install -r extras/tts-melotts.txt && python -m unidic download"),
]


@pytest.mark.parametrize(("family", "name", "modules", "command"), MISSING, ids=[m[1] for m in MISSING])
async def test_a_missing_library_fails_load_with_the_install_command(monkeypatch, family, name, modules, command):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like to `import`
    component = s2s.REGISTRY[family][name](config())
    with pytest.raises(s2s.ComponentMissing) as missing:
        await asyncio.to_thread(component.load)
    assert command in str(missing.value)
    assert (ROOT / command.split()[3]).is_file()  # the requirements file it names exists


async def test_the_server_exits_with_the_install_command_when_a_library_is_missing(tmp_path):
    blocker = tmp_path / "sitecustomize.py"  # makes `import funasr` fail in the child, as if not installed
    blocker.write_text("import sys\nsys.modules['funasr'] = None\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "s2s_server.py"), "--port", "0", "--asr", "paraformer", "--llm", "fake",
        "--tts", "fake", cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(tmp_path)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "pip install -r extras/asr-paraformer.txt" in stderr.decode()


# ---- every backend selected by name through the real server -------------------------------------------------


async def push_to_talk(client: Client, pcm16_24k: np.ndarray) -> dict[str, Any]:
    await client.update_session(audio={"input": {"turn_detection": None}})
    await client.append_audio(pcm16_24k)
    await client.send("input_audio_buffer.commit")
    return await client.wait_for("conversation.item.input_audio_transcription.completed")


def reply_audio(client: Client, response_id: str) -> np.ndarray:
    chunks = [base64.b64decode(e["delta"]) for e in client.events
              if e["type"] == "response.output_audio.delta" and e["response_id"] == response_id]
    return np.frombuffer(b"".join(chunks), dtype="<i2")


async def test_server_runs_hf_whisper_transformers_and_openai_tts(make_server, tiny_whisper_dir, tiny_llm_dir,
                                                                   api_server, speech_dir):
    api_server.release.set()
    h = await make_server(asr="hf-whisper", hf_whisper_model=str(tiny_whisper_dir), hf_whisper_max_new_tokens=8,
                          llm="transformers", hf_llm_model=str(tiny_llm_dir), llm_max_tokens=10,
                          tts="openai-tts", openai_tts_base_url=api_server.base_url)
    c = await h.connect()
    completed = await push_to_talk(c, np.concatenate([speech("hello there", speech_dir, 24000), silence(300, 24000)]))
    assert completed["transcript"] and set(completed["transcript"]) <= set(LETTERS + " ")
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert set(done["response"]["output"][0]["content"][0]["transcript"].split()) <= set(WORDS)
    assert len(reply_audio(c, done["response"]["id"])) > 0
    assert any(kind == "speech" for kind, _ in api_server.requests)


async def test_server_runs_openai_asr_and_melotts(make_server, api_server, monkeypatch, tmp_path, speech_dir):
    pytest.importorskip("torch")
    install_module(monkeypatch, "melo.api", TTS=MeloStandIn)
    h = await make_server(asr="openai-asr", openai_asr_base_url=api_server.base_url, tts="melotts",
                          melotts_model_dir=str(tmp_path), fake_llm_reply="Nice. Tell me more.")
    c = await h.connect()
    completed = await push_to_talk(c, speech("hello there", speech_dir, 24000))
    assert completed["transcript"] == "hello there"
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert len(reply_audio(c, done["response"]["id"])) >= 23000  # two sentences of 0.5 s at 24 kHz


async def test_server_runs_funasr_ws_and_cosyvoice(make_server, funasr_server, cosyvoice_stand_in, speech_dir):
    _, url = funasr_server
    h = await make_server(asr="funasr-ws", funasr_ws_url=url, tts="cosyvoice",
                          cosyvoice_model_dir=str(cosyvoice_stand_in), fake_llm_reply="好的。")
    c = await h.connect()
    completed = await push_to_talk(c, speech("hello there", speech_dir, 24000))
    assert completed["transcript"] == "你好，世界。"
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed" and len(reply_audio(c, done["response"]["id"])) > 0


async def test_server_runs_paraformer_and_f5_tts(make_server, funasr_stand_in, monkeypatch, tmp_path, speech_dir):
    pytest.importorskip("torch")
    install_module(monkeypatch, "f5_tts.api", F5TTS=F5TTSStandIn)
    h = await make_server(asr="paraformer", paraformer_model=str(funasr_stand_in), tts="f5-tts",
                          f5_ckpt_file=str(tmp_path / "model.safetensors"), f5_vocoder_dir=str(tmp_path),
                          f5_ref_audio=str(tmp_path / "me.wav"), f5_ref_text="me", fake_llm_reply="Sure.")
    c = await h.connect()
    completed = await push_to_talk(c, speech("hello there", speech_dir, 24000))
    assert completed["transcript"] == "欢迎大家来体验达摩院推出的语音识别模型"
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed" and len(reply_audio(c, done["response"]["id"])) > 0


# ---- the real models, when their weights are here (skipped otherwise, with the reason) -------------------


def real_model(env: str, module: str) -> str:
    """The weights named by environment variable `env`, when `module` imports; else skip saying why."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module} is not installed here (see docs/model_table.md)")
    where = os.environ.get(env, "")
    if not where or not Path(where).expanduser().exists():
        pytest.skip(f"no weights here: set {env} to run this with the real model")
    return where


@pytest.mark.models
async def test_real_paraformer_transcribes_chinese_speech(speech_dir):
    folder = real_model("MODEL_TABLE_PARAFORMER_DIR", "funasr")
    asr = s2s.REGISTRY["asr"]["paraformer"](config(paraformer_model=folder))
    await asyncio.to_thread(asr.load)
    text = "".join(await collect(asr.transcribe(speech("今天天气很好", speech_dir, 16000, voice=ESPEAK_MANDARIN))))
    assert "天气" in text


@pytest.mark.models
async def test_real_cosyvoice_streams_speech():
    folder = real_model("MODEL_TABLE_COSYVOICE_DIR", "cosyvoice")
    ref, ref_text = os.environ.get("MODEL_TABLE_COSYVOICE_REF", ""), os.environ.get("MODEL_TABLE_COSYVOICE_TEXT", "")
    tts = s2s.REGISTRY["tts"]["cosyvoice"](config(cosyvoice_model_dir=folder, cosyvoice_ref_audio=ref,
                                                cosyvoice_ref_text=ref_text))
    await asyncio.to_thread(tts.load)
    chunks = await collect(tts.synthesize("你好，很高兴认识你。"))
    assert len(chunks) > 1 and sum(len(c) for c in chunks) > 8000


@pytest.mark.models
async def test_real_f5_tts_speaks_a_clause():
    ckpt = real_model("MODEL_TABLE_F5_CKPT", "f5_tts")
    vocoder = os.environ.get("MODEL_TABLE_F5_VOCODER", "")
    tts = s2s.REGISTRY["tts"]["f5-tts"](config(f5_ckpt_file=ckpt, f5_vocoder_dir=vocoder, model_download=not vocoder))
    await asyncio.to_thread(tts.load)
    chunks = await collect(tts.synthesize("Hello there."))
    assert sum(len(c) for c in chunks) > 8000


@pytest.mark.models
async def test_real_melotts_speaks_a_sentence():
    folder = real_model("MODEL_TABLE_MELOTTS_DIR", "melo")
    tts = s2s.REGISTRY["tts"]["melotts"](config(melotts_model_dir=folder))
    await asyncio.to_thread(tts.load)
    chunks = await collect(tts.synthesize("Hello there. How are you?"))
    assert len(chunks) == 2 and sum(len(c) for c in chunks) > 8000


@pytest.mark.models
async def test_real_hf_whisper_recognises_english_speech(speech_dir):
    model = real_model("MODEL_TABLE_HF_WHISPER", "transformers")
    asr = s2s.REGISTRY["asr"]["hf-whisper"](config(hf_whisper_model=model, asr_language="en"))
    await asyncio.to_thread(asr.load)
    text = "".join(await collect(asr.transcribe(speech("What is the weather like today?", speech_dir, 16000))))
    assert "weather" in text.lower()


@pytest.mark.models
async def test_real_transformers_llm_answers(tmp_path):
    model = real_model("MODEL_TABLE_HF_LLM", "transformers")
    llm = s2s.REGISTRY["llm"]["transformers"](config(hf_llm_model=model, hf_llm_temperature=0))
    await asyncio.to_thread(llm.load)
    text = "".join(await collect(llm.generate([{"role": "user", "content": "What is 2 + 2? Answer with a digit."}],
                                              max_tokens=10)))
    assert "4" in text
