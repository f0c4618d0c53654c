"""Property-based tests: whatever a client sends, the server answers with `error` events or a documented
close code, logs no handler crash and leaves no task running.

Two generators, both against one real server (in a thread of its own, so hypothesis can drive it from a
plain test function):
- JSON events over a real WebSocket client: wrong types, missing and extra fields, huge numbers, deep
  nesting, base64 junk, odd-length and oversized audio, binary frames, events in any order.
- Raw WebSocket frames written to a TCP socket after a real handshake: any opcode, reserved bits, masked
  or not, fragmented or not, with honest or lying lengths.
Each case ends with a sentinel event; events are handled in order, so once its `error` arrives every
earlier message was handled. `benchmarks/fuzz.py` runs the same cases by the ten thousand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import numpy as np
import websockets
from hypothesis import HealthCheck, given, settings

import s2s_server as s2s
from s2s_config import validate_config

FUZZ_EXAMPLES = int(os.environ.get("S2S_FUZZ_EXAMPLES", "150"))  # per generator; CI runs 2 x 150

# Every code the README documents. `internal_error` is left out on purpose: it means a handler bug.
DOCUMENTED_ERROR_CODES = {
    "invalid_json", "invalid_event", "missing_type", "unknown_event", "binary_not_supported", "invalid_audio",
    "audio_too_long", "input_audio_buffer_full", "input_audio_buffer_commit_empty", "empty_message",
    "conversation_already_has_active_response", "response_cancel_not_active", "item_not_found",
    "item_not_truncatable", "invalid_audio_end_ms", "asr_failed", "response_failed", "audio_rate_exceeded",
    "audio_flood", "session_expired", "idle_timeout", "memory_unavailable", "memory_delayed", "memory_write_failed",
}
# Close codes a client may see: the server's own (1000 limits, 1008 audio flood, 1009 too big) and
# websockets' answers to broken frames (1002 protocol error, 1007 invalid UTF-8). 1011 would be a crash.
DOCUMENTED_CLOSE_CODES = {1000, 1002, 1007, 1008, 1009}
MAX_MESSAGE_BYTES = 16384  # small, so that oversized messages are cheap to make
SENTINEL = json.dumps({"type": "fuzz.sentinel", "event_id": "sentinel"})
SETTINGS = {"asr": "fake", "llm": "fake", "tts": "fake", "judge": "off", "port": 0, "audio_lead_ms": 0,
            "max_message_bytes": MAX_MESSAGE_BYTES, "max_append_ms": 100, "max_sessions_per_address": 1000,
            "fake_llm_reply": "Fine. {user}"}


# ---- the server under test, in a thread of its own --------------------------------------------------


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FuzzServer:
    """A real S2SServer with the fakes, on its own event loop in a daemon thread."""

    def __init__(self, **overrides: Any):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.thread.start()
        self.errors = _ErrorRecords()
        for name in ("s2s", "websockets"):
            logging.getLogger(name).addHandler(self.errors)
        self.server: s2s.S2SServer = self.call(self._start({**SETTINGS, **overrides}))
        self.port = self.server.port

    def call(self, coro: Any, timeout_s: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def _start(self, settings: dict[str, Any]) -> s2s.S2SServer:
        config = validate_config(settings)
        components = s2s.build_components(config)
        await s2s.load_components(components)
        server = s2s.S2SServer(config, components)
        await server.start()
        return server

    async def _settle(self) -> list[str]:
        """Wait for every connection handler to return; then name the session tasks still running."""
        handlers = set(self.server._server.handler_tasks)
        if handlers:
            await asyncio.wait(handlers, timeout=10)
        return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("sess_") and not t.done()]

    def settle(self) -> list[str]:
        return self.call(self._settle())

    def close(self) -> None:
        self.call(self.server.stop(timeout_s=5))
        for name in ("s2s", "websockets"):
            logging.getLogger(name).removeHandler(self.errors)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Outcome:
    """What a client saw: the server's messages, whether the sentinel was answered, the close code."""

    messages: list[str | bytes] = field(default_factory=list)
    sentinel_answered: bool = False
    close_code: int | None = None


def problems(outcome: Outcome, server: FuzzServer, leftovers: list[str],
             allowed_close: set[int] = DOCUMENTED_CLOSE_CODES) -> list[str]:
    """Everything wrong with one case (empty: the server behaved)."""
    found = []
    done_responses: set[str] = set()
    for message in outcome.messages:
        try:
            event = json.loads(message)
            kind = event["type"]
        except (ValueError, TypeError, KeyError):
            found.append(f"not a JSON event: {message[:200]!r}")
            continue
        if kind == "error" and event["error"]["code"] not in DOCUMENTED_ERROR_CODES:
            found.append(f"undocumented error code: {event['error']}")
        if kind == "response.done":
            done_responses.add(event["response"]["id"])
        if kind == "response.output_audio.delta" and event["response_id"] in done_responses:
            found.append("audio after its response.done")
    if not outcome.sentinel_answered and outcome.close_code not in allowed_close:
        found.append(f"neither the sentinel's error nor a documented close code (close code {outcome.close_code})")
    if leftovers:
        found.append(f"tasks still running after the session ended: {leftovers}")
    if server.errors.records:
        found.extend(f"logged {r.levelname} {r.name}: {r.getMessage()[:300]}" for r in server.errors.records)
        server.errors.records.clear()
    return found


# ---- JSON events -------------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
JSON_VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=16)


def either(realistic: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value at all (a wrong type)."""
    return st.one_of(realistic, realistic, realistic, JSON_VALUES)


def pcm_b64(n_bytes: int, seed: int) -> str:
    return base64.b64encode(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()).decode()


AUDIO = st.one_of(
    st.builds(pcm_b64, st.integers(0, 1200).map(lambda n: 2 * n), st.integers(0, 1000)),  # valid, up to 25 ms
    st.builds(pcm_b64, st.integers(0, 600).map(lambda n: 2 * n + 1), st.integers(0, 1000)),  # odd length
    st.just(pcm_b64(2 * 24000, 1)),  # 1 s: a message over max_message_bytes (close 1009)
    st.just(pcm_b64(2 * 4800, 2)),  # 200 ms at 24 kHz: over max_append_ms (audio_too_long)
    st.text(max_size=64),  # junk (mostly not base64)
    st.text(alphabet="ABCDabcd0123+/=", max_size=64),  # base64 alphabet, wrong padding
    JSON_VALUES,
)
FORMAT = st.fixed_dictionaries({}, optional={"type": either(st.just("audio/pcm")),
                                             "rate": either(st.sampled_from([16000, 24000, 8000, 0, -1, 10**20]))})
TURN_DETECTION = st.none() | st.fixed_dictionaries({}, optional={
    "type": either(st.sampled_from(["server_vad", "semantic_vad", "bogus"])),
    "silence_duration_ms": either(st.integers(-10, 10**6)), "prefix_padding_ms": either(st.integers(-10, 10**6)),
    "threshold": either(st.floats(-1, 2)), "interrupt_response": either(st.booleans()),
    "create_response": either(st.booleans())})
SESSION = st.fixed_dictionaries({}, optional={
    "instructions": either(st.text(max_size=100)),
    "audio": either(st.fixed_dictionaries({}, optional={
        "input": either(st.fixed_dictionaries({}, optional={"format": either(FORMAT),
                                                             "turn_detection": either(TURN_DETECTION)})),
        "output": either(st.fixed_dictionaries({}, optional={"format": either(FORMAT),
                                                              "voice": either(st.text(max_size=20))}))})),
    "s2s": either(st.fixed_dictionaries({}, optional={
        "user_id": either(st.text(max_size=20)), "proactive": either(st.booleans()),
        "strategies": either(st.lists(st.sampled_from([*s2s.switchable_strategies(), "proactive",
                                                       "bogus"]), max_size=4))})),
    "tools": JSON_VALUES})
CONTENT = st.lists(either(st.fixed_dictionaries({"type": either(st.just("input_text")),
                                                 "text": either(st.text(max_size=60))})), max_size=3)
ITEM = st.fixed_dictionaries({}, optional={"type": either(st.just("message")),
                                           "role": either(st.sampled_from(["user", "assistant", "system"])),
                                           "content": either(CONTENT)})
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "session.update": {"session": either(SESSION)},
    "input_audio_buffer.append": {"audio": AUDIO},
    "input_audio_buffer.commit": {},
    "input_audio_buffer.clear": {},
    "conversation.item.create": {"item": either(ITEM)},
    "response.create": {"response": either(st.fixed_dictionaries({}, optional={
        "instructions": either(st.text(max_size=60))}))},
    "response.cancel": {"response_id": either(st.text(max_size=20))},
    "conversation.item.truncate": {"item_id": either(st.text(max_size=30)),
                                   "content_index": either(st.integers(-2, 2)),
                                   "audio_end_ms": either(st.integers(-(2**70), 2**70))},
}


@st.composite
def client_event(draw: Callable[..., Any]) -> str:
    kind = draw(st.sampled_from(sorted(FIELDS)) | st.sampled_from(["", "bogus", "session.created", "error"])
                | st.text(max_size=30))
    fields = FIELDS.get(kind, {})
    event: dict[str, Any] = {"type": kind} if draw(st.integers(0, 9)) else {}  # sometimes no type at all
    event.update(draw(st.fixed_dictionaries({}, optional=fields)))
    if draw(st.booleans()):
        event["event_id"] = draw(either(st.text(max_size=30)))
    if draw(st.integers(0, 4)) == 0:
        event.update(draw(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=3)))  # extra fields
    if draw(st.integers(0, 9)) == 0 and event:
        event[draw(st.sampled_from(sorted(event)))] = draw(JSON_VALUES)  # a wrong type where it hurts
    return json.dumps(event, allow_nan=True)


def deep(depth: int) -> str:
    return '{"type": "session.update", "session": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


MESSAGE = st.one_of(
    client_event(), client_event(), client_event(), client_event(), client_event(), client_event(),
    st.integers(1, 5000).map(deep),  # deep nesting (past the JSON parser's recursion limit at the top)
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),
    st.text(max_size=80),  # not JSON
    st.binary(max_size=80),  # a binary frame
    st.integers(1, 3).map(lambda n: '{"type": "session.update", "x": "' + "y" * MAX_MESSAGE_BYTES * n + '"}'),
)


async def _json_case(port: int, messages: list[str | bytes]) -> Outcome:
    outcome = Outcome()
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
        answered = asyncio.Event()

        async def read() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):  # 1009 and such end it with an error
                async for message in ws:
                    outcome.messages.append(message)
                    if '"sentinel"' in message and '"unknown_event"' in message:
                        answered.set()

        reader = asyncio.create_task(read())
        answer = asyncio.create_task(answered.wait())
        try:
            for message in [*messages, SENTINEL]:
                await ws.send(message)
            async with asyncio.timeout(10):
                await asyncio.wait([reader, answer], return_when=asyncio.FIRST_COMPLETED)
        except websockets.ConnectionClosed:
            pass
        answer.cancel()
        outcome.sentinel_answered = answered.is_set()
        await ws.close()
        await asyncio.wait([reader], timeout=10)
        outcome.close_code = ws.close_code if not answered.is_set() else None
    return outcome


def json_case(server: FuzzServer, messages: list[str | bytes]) -> list[str]:
    outcome = asyncio.run(_json_case(server.port, messages))
    return problems(outcome, server, server.settle())


# ---- raw frames ----------------------------------------------------------------------------------------


@st.composite
def raw_frame(draw: Callable[..., Any]) -> bytes:
    """One WebSocket frame, honest or not: any opcode and reserved bits, masked or not, any length field."""
    fin = draw(st.booleans() | st.just(True))
    rsv = draw(st.sampled_from([0, 0, 0, 1, 2, 4, 7]))
    opcode = draw(st.sampled_from([0x1, 0x1, 0x1, 0x2, 0x0, 0x8, 0x9, 0xA]) | st.integers(0, 15))
    payload = draw(st.one_of(client_event().map(str.encode), st.binary(max_size=150),
                             st.builds(struct.pack, st.just("!H"), st.integers(0, 65535)),  # close codes
                             st.binary(min_size=126, max_size=400)))
    masked = draw(st.integers(0, 9)) > 0
    length = len(payload)
    if draw(st.integers(0, 5)) == 0:  # a lying length: shorter, longer or absurd
        length = draw(st.integers(0, 2**16) | st.integers(0, 2**63 - 1))
    form = draw(st.sampled_from(["minimal", "minimal", "16", "64"]))
    if form == "minimal":
        form = "7" if length < 126 else "16" if length < 2**16 else "64"
    if form == "7" and length > 125 or form == "16" and length >= 2**16:
        form = "64"
    header = bytes([(fin << 7) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if form == "7":
        header += bytes([mask_bit | length])
    elif form == "16":
        header += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        header += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if masked:
        key = draw(st.binary(min_size=4, max_size=4))
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        header += key
    return header + payload


def masked_text_frame(text: str) -> bytes:
    data = text.encode()
    key = b"\x01\x02\x03\x04"
    return bytes([0x81, 0x80 | len(data)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def parse_server_frames(data: bytes) -> tuple[list[str | bytes], int | None]:
    """Unmasked frames from the server: the text/binary payloads, and the close code if a close came."""
    messages: list[str | bytes] = []
    i = 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = struct.unpack("!H", data[i:i + 2])[0], i + 2
        elif length == 127:
            length, i = struct.unpack("!Q", data[i:i + 8])[0], i + 8
        payload, i = data[i:i + length], i + length
        if opcode == 0x8:
            return messages, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        if opcode == 0x1:
            messages.append(payload.decode())
        elif opcode == 0x2:
            messages.append(payload)
    return messages, None


async def _frames_case(port: int, frames: list[bytes]) -> Outcome:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    for frame in [*frames, masked_text_frame(SENTINEL)]:
        writer.write(frame)
    writer.write_eof()  # then nothing more: a lying length must not leave the server waiting forever
    data = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                data += chunk
    writer.close()
    messages, close_code = parse_server_frames(data)
    answered = any(isinstance(m, str) and '"sentinel"' in m and '"unknown_event"' in m for m in messages)
    return Outcome(messages, answered, close_code if close_code is not None else 1006)


def client_close_codes(frames: list[bytes]) -> set[int]:
    """Codes of the close frames the client sent (a server echoes the client's close, RFC 6455 sec. 5.5.1)."""
    codes = set()
    for frame in frames:
        if len(frame) < 2 or frame[0] & 0x0F != 0x8 or not frame[1] & 0x80:
            continue
        length, start = frame[1] & 0x7F, 2
        if length == 126:  # a 16- or 64-bit length, even for 2 bytes (a non-minimal form websockets accepts)
            length, start = (struct.unpack("!H", frame[2:4])[0], 4) if len(frame) >= 4 else (-1, 4)
        elif length == 127:
            length, start = (struct.unpack("!Q", frame[2:10])[0], 10) if len(frame) >= 10 else (-1, 10)
        key, payload = frame[start:start + 4], frame[start + 4:]
        if 2 <= length <= 125 and len(key) == 4 and len(payload) == length:
            codes.add(struct.unpack("!H", bytes(b ^ key[i % 4] for i, b in enumerate(payload[:2])))[0])
    return codes


def frames_case(server: FuzzServer, frames: list[bytes]) -> list[str]:
    """As json_case. The server may also echo the client's own close (its code, or 1005 for none), or drop
    a stream that ends mid-frame (a lying length swallowed the sentinel) without a close frame (1006)."""
    outcome = asyncio.run(_frames_case(server.port, frames))
    allowed = DOCUMENTED_CLOSE_CODES | {1005, 1006} | client_close_codes(frames)
    return problems(outcome, server, server.settle(), allowed)


# ---- the properties, a few hundred cases in CI -------------------------------------------------------------

FUZZ_SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_any_json_events_get_errors_or_a_documented_close_and_no_crash():
    server = FuzzServer()
    try:
        @FUZZ_SETTINGS
        @given(st.lists(MESSAGE, min_size=1, max_size=8))
        def events_are_handled(messages: list[str | bytes]) -> None:
            assert json_case(server, messages) == []

        events_are_handled()
        healthy = json_case(server, [json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "still fine?"}]}})])
        assert healthy == []
    finally:
        server.close()


def test_any_raw_frames_get_errors_or_a_documented_close_and_no_crash():
    server = FuzzServer()
    try:
        @FUZZ_SETTINGS
        @given(st.lists(raw_frame(), min_size=1, max_size=5))
        def frames_are_handled(frames: list[bytes]) -> None:
            assert frames_case(server, frames) == []

        frames_are_handled()
    finally:
        server.close()
