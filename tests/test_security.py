"""Who may connect, how many, for how long and how fast; and the clean stop. Real servers, real sockets,
and (for the start-up checks and SIGTERM) a real server process."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

import s2s_server as s2s
from s2s_config import ConfigError, validate_config
from tests.conftest import Client

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok_" + "x7Q2" * 8  # 36 printable characters
HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}


FAKE_ARGS = ("--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off")  # the test doubles


class ServerProcess:
    """`python s2s_server.py --port 0 ARGS` as its own process; its log lines are read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.lines: list[str] = []
        self.port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "s2s_server.py"), "--port", "0", *args, cwd=str(ROOT),
            env={**os.environ, **(env or {})}, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if not self.port.done() and (match := re.search(r"serving ws://\S+?:(\d+)/", line)):
                self.port.set_result(int(match.group(1)))
        if not self.port.done():
            self.port.set_exception(AssertionError("the server exited:\n" + "".join(self.lines)))

    async def wait(self, timeout_s: float = 30) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        await self._reader
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def handshake_status(port: int, path: str = "/v1/realtime", headers: tuple[str, ...] = ()) -> int:
    """Send a raw WebSocket upgrade request (any headers, repeated ones too) and return the HTTP status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", *headers]
    writer.write(("\r\n".join(request) + "\r\n\r\n").encode())
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return int(status_line.split()[1])


async def refused_status(url: str, **kwargs: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url, **kwargs)
    return info.value.response.status_code


# ---- who may connect ----------------------------------------------------------------------------------


async def test_with_a_token_the_handshake_needs_the_bearer_token_before_any_model_work(make_server):
    made = []

    class CountingVAD(s2s.WebRTCVAD):
        name = "test-counting"

        def __init__(self, config):
            super().__init__(config)
            made.append(self)

    h = await make_server(auth_token=TOKEN, vad="test-counting")
    made.clear()  # load_components makes one to warm up
    assert await refused_status(h.url) == 401
    assert await refused_status(h.url, additional_headers={"Authorization": "Bearer " + TOKEN[:-1] + "y"}) == 401
    assert await refused_status(h.url, additional_headers={"Authorization": "Basic " + TOKEN}) == 401
    assert await handshake_status(h.server.port, headers=(f"Authorization: Bearer {TOKEN}",) * 2) == 401
    assert made == [] and h.server.sessions == {}  # no session, not even a VAD, for a refused client
    c = await h.connect(additional_headers={"Authorization": f"Bearer {TOKEN}"})
    assert len(made) == 1 and c.events[0]["type"] == "session.created"


async def test_a_browser_sends_the_token_as_a_subprotocol_and_gets_realtime_back(make_server):
    h = await make_server(auth_token=TOKEN)
    key = "openai-insecure-api-key."
    ws = await websockets.connect(h.url, subprotocols=["realtime", key + TOKEN])
    assert ws.subprotocol == "realtime"  # never the one that carries the token
    await ws.close()
    assert await refused_status(h.url, subprotocols=["realtime", key + TOKEN + "x"]) == 401
    assert await refused_status(h.url, subprotocols=["realtime", key + TOKEN, key + TOKEN]) == 401
    assert await refused_status(h.url, subprotocols=["realtime"]) == 401


async def test_the_openai_sdk_authenticates_with_its_api_key(make_server):
    openai = pytest.importorskip("openai")
    h = await make_server(auth_token=TOKEN)
    base_url = f"http://127.0.0.1:{h.server.port}/v1"
    async with openai.AsyncOpenAI(base_url=base_url, api_key=TOKEN).realtime.connect(model="s2s") as conn:
        await conn.conversation.item.create(item=HELLO)
        await conn.response.create()
        async for event in conn:
            if event.type == "response.done":
                assert event.response.status == "completed"
                break
    with pytest.raises(websockets.InvalidStatus) as info:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="wrong-key-0123456789").realtime.connect(
                model="s2s") as conn:
            await conn.recv()
    assert info.value.response.status_code == 401


async def test_the_token_never_appears_in_logs_or_traces(make_server, caplog, tmp_path):
    caplog.set_level(logging.DEBUG, logger="s2s")
    caplog.set_level(logging.DEBUG, logger="websockets")  # websockets logs every request header at DEBUG
    h = await make_server(auth_token=TOKEN, trace_dir=str(tmp_path / "traces"), log_level="DEBUG")
    assert await refused_status(h.url, additional_headers={"Authorization": "Bearer " + TOKEN + "z"}) == 401
    browser = await websockets.connect(h.url, subprotocols=["realtime", "openai-insecure-api-key." + TOKEN])
    await browser.close()
    c = await h.connect(additional_headers={"Authorization": f"Bearer {TOKEN}"})
    await c.say("Hello")
    await c.wait_for("s2s.metrics")  # the trace is on disk before s2s.metrics
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "Authorization: [redacted]" in logged  # the header was logged, without its value
    assert "openai-insecure-api-key.[redacted]" in logged
    assert TOKEN[8:] not in logged
    traces = list((tmp_path / "traces").rglob("*.json"))
    assert traces and not any(TOKEN[8:] in path.read_text() for path in traces)


def test_a_short_or_spaced_token_is_refused_at_start():
    config = validate_config({})
    assert s2s.read_auth_token(config, {}) is None
    assert s2s.read_auth_token(config, {"S2S_AUTH_TOKEN": ""}) is None
    assert s2s.read_auth_token(config, {"S2S_AUTH_TOKEN": TOKEN}) == TOKEN
    for bad in ("short", "has a space in it, sixteen+", "tøken-with-non-ascii-0123"):
        with pytest.raises(ConfigError, match="16 printable"):
            s2s.read_auth_token(config, {"S2S_AUTH_TOKEN": bad})


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.3.4.5", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False), ("example.com", False),
])
def test_loopback_hosts_are_told_apart(host, loopback):
    assert s2s.is_loopback_host(host) is loopback


async def test_without_a_token_a_public_interface_needs_allow_public():
    """Refused without a token; served with --allow-public (the test doubles: the check comes before any model
    loads) or with a token (the default models: the one start of the whole process with them)."""
    refused = await ServerProcess.start("--host", "0.0.0.0", env={"S2S_AUTH_TOKEN": ""})
    assert await refused.wait() == 2
    assert "refusing to serve 0.0.0.0 without a token" in refused.log and "--allow-public" in refused.log
    for args, env in (((*FAKE_ARGS, "--allow-public"), {"S2S_AUTH_TOKEN": ""}), ((), {"S2S_AUTH_TOKEN": TOKEN})):
        server = await ServerProcess.start("--host", "0.0.0.0", *args, env=env)
        try:
            await asyncio.wait_for(server.port, 60)  # it serves (on port 0 of every interface; no traffic)
        finally:
            server.proc.terminate()
            assert await server.wait() == 0
        assert TOKEN not in server.log


async def test_a_short_token_stops_the_start_with_exit_code_2():
    server = await ServerProcess.start(env={"S2S_AUTH_TOKEN": "hunter2"})
    assert await server.wait() == 2
    assert "S2S_AUTH_TOKEN must be at least 16" in server.log and "hunter2" not in server.log


async def test_browser_origins_are_checked_against_the_allow_list(make_server, caplog):
    h = await make_server(allowed_origins=["https://app.example"])
    port = h.server.port
    ok = await websockets.connect(h.url, origin="https://app.example")
    await ok.close()
    assert await refused_status(h.url, origin="https://evil.example") == 403
    assert await refused_status(h.url, origin="https://app.example.evil.example") == 403
    assert await refused_status(h.url, origin="null") == 403
    assert await handshake_status(port, headers=("Origin: https://app.example", "Origin: https://evil.example")) == 403
    assert await handshake_status(port, headers=("Origin: http://[::1",)) == 403  # malformed: refused, no crash
    assert await handshake_status(port, path="//[") == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---- how many -----------------------------------------------------------------------------------------


async def test_over_capacity_the_handshake_gets_503_even_in_a_burst(make_server):
    h = await make_server(max_sessions=3)
    results = await asyncio.gather(*(websockets.connect(h.url) for _ in range(10)), return_exceptions=True)
    opened = [r for r in results if not isinstance(r, BaseException)]
    refused = [r.response.status_code for r in results if isinstance(r, websockets.InvalidStatus)]
    assert len(opened) == 3 and refused == [503] * 7
    await opened[0].close()
    await asyncio.wait_for(h.sessions_ended.get(), 10)
    again = await websockets.connect(h.url)  # the freed place is free again
    for ws in [again, *opened[1:]]:
        await ws.close()


async def test_sessions_per_address_are_capped_with_429(make_server):
    h = await make_server(max_sessions_per_address=2)
    first, second = await h.connect(), await h.connect()
    assert await refused_status(h.url) == 429
    await first.close()
    await asyncio.wait_for(h.sessions_ended.get(), 10)
    third = await h.connect()
    assert third.events[0]["type"] == "session.created" and second.events[0]["type"] == "session.created"


# ---- for how long -------------------------------------------------------------------------------------


async def test_a_session_ends_at_its_length_limit_with_an_error_then_close_1000(make_server):
    h = await make_server(max_session_s=0.5)
    c = await h.connect()
    started = time.monotonic()
    err = await c.wait_for("error")
    assert err["error"]["code"] == "session_expired"
    await asyncio.wait_for(c.closed, 10)
    assert c.ws.close_code == 1000 and c.ws.close_reason == "session expired"
    assert 0.4 < time.monotonic() - started < 5


async def test_an_idle_session_is_closed_and_an_active_one_is_not(make_server):
    h = await make_server(idle_timeout_s=0.6)
    active, idle = await h.connect(), await h.connect()
    for _ in range(8):  # 1.6 s of activity, one event every 0.2 s, each answered
        await active.send("response.cancel")
        assert (await active.wait_for("error"))["error"]["code"] == "response_cancel_not_active"
        await asyncio.sleep(0.2)
    assert (await idle.wait_for("error"))["error"]["code"] == "idle_timeout"
    await asyncio.wait_for(idle.closed, 10)
    assert idle.ws.close_code == 1000 and idle.ws.close_reason == "idle timeout"
    assert not active.closed.done()
    assert (await active.wait_for("error"))["error"]["code"] == "idle_timeout"  # once it stops too


async def test_a_push_to_talk_utterance_is_capped_at_max_utterance_ms(make_server):
    h = await make_server(max_utterance_ms=1000)
    c = await h.connect()
    await c.update_session(audio={"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}})
    frame = base64.b64encode(np.full(1600, 100, dtype="<i2").tobytes()).decode()  # 100 ms at 16 kHz
    for i in range(11):
        await c.send("input_audio_buffer.append", audio=frame, event_id=f"a{i}")
    err = await c.wait_for("error")
    assert err["error"]["code"] == "input_audio_buffer_full" and err["error"]["event_id"] == "a10"
    await c.send("input_audio_buffer.commit")
    assert (await c.wait_for("response.done"))["response"]["status"] == "completed"  # the first second is answered


async def test_every_reply_asks_the_llm_for_at_most_llm_max_tokens(make_server):
    asked = []

    class RecordingLLM(s2s.FakeLLM):
        name = "test-recording-budget"

        async def generate(self, messages, *, max_tokens):
            asked.append(max_tokens)
            async for delta in super().generate(messages, max_tokens=max_tokens):
                yield delta

    h = await make_server(llm="test-recording-budget", llm_max_tokens=5,
                          fake_llm_reply="one two three four five six seven")
    c = await h.connect()
    done = await c.turn("Hello")
    assert asked == [5] and done["response"]["output"][0]["content"][0]["transcript"] == "one two three four five"


# ---- how fast -----------------------------------------------------------------------------------------


def test_the_token_bucket_refills_at_its_rate_up_to_its_burst():
    now = [0.0]
    bucket = s2s.TokenBucket(rate=1000, burst=2000, clock=lambda: now[0])
    assert bucket.take(2000) and not bucket.take(1)
    now[0] = 0.5
    assert bucket.take(500) and not bucket.take(1)
    now[0] = 100.0
    assert bucket.take(2000) and not bucket.take(1)  # it never holds more than the burst
    assert bucket.spend(1000) == pytest.approx(1.0)  # throttling: one second until the level is back to 0


def test_audio_at_real_time_is_never_refused_and_a_flood_is():
    """The rule, with a fake clock: 20 ms frames at real time pass for an hour; at 10x real time the burst
    goes, then appends are refused, then refusals pass another burst (the close)."""
    config = validate_config({"max_audio_ms_per_s": 2000, "audio_burst_ms": 20000})
    now = [0.0]
    limits = s2s.ClientLimits.from_config(config)
    for bucket in (limits.audio_ms, limits.refused_audio_ms):
        bucket.clock, bucket.at = (lambda: now[0]), 0.0
    for _ in range(3600 * 50):
        now[0] += 0.020
        assert limits.audio_ms.take(20)
    accepted = refused = 0
    flood_started = now[0]
    while True:
        now[0] += 0.002  # 20 ms of audio every 2 ms: 10x real time
        if limits.audio_ms.take(20):
            accepted += 1
        elif limits.refused_audio_ms.take(20):
            refused += 1
        else:
            break
    allowance_ms = 20000 + 2000 + 2000 * (now[0] - flood_started)  # burst + one append + the sustained rate
    assert allowance_ms - 40 <= accepted * 20 <= allowance_ms  # less what a refused frame left over
    assert refused * 20 > 22000 and now[0] - flood_started < 10  # the close came within seconds


async def test_audio_much_faster_than_real_time_is_refused_then_the_client_is_closed_with_1008(make_server):
    h = await make_server(max_append_ms=100, max_audio_ms_per_s=1000, audio_burst_ms=500)
    c = await h.connect()
    frame = base64.b64encode(np.zeros(2400, dtype="<i2").tobytes()).decode()  # 100 ms at 24 kHz
    for i in range(40):  # 4 s of audio at once
        await c.send("input_audio_buffer.append", audio=frame, event_id=f"a{i}")
    err = await c.wait_for("error")
    assert err["error"]["code"] == "audio_rate_exceeded" and err["error"]["event_id"] == "a6"  # 600 ms passed
    await c.wait_for("error", lambda e: e["error"]["code"] == "audio_flood")
    await asyncio.wait_for(c.closed, 10)
    assert c.ws.close_code == 1008
    assert h.server.sessions == {} or await asyncio.wait_for(h.sessions_ended.get(), 10)


async def test_a_message_flood_is_throttled_not_dropped(make_server):
    h = await make_server(max_inbound_messages_per_s=50, inbound_burst_s=0.2)  # 10 at once, then 50 per s
    c = await h.connect()
    started = time.monotonic()
    for i in range(40):
        await c.send_raw(json.dumps({"type": "nope", "event_id": f"e{i}"}))
    last = await c.wait_for("error", lambda e: e["error"]["event_id"] == "e39")
    assert time.monotonic() - started >= (40 - 10) / 50 * 0.9
    assert [e["error"]["event_id"] for e in c.events if e["type"] == "error"] == [f"e{i}" for i in range(40)]
    assert h.session().ws.limits.throttled_s > 0 and last


async def test_a_client_that_sends_without_reading_cannot_grow_the_servers_queue(make_server):
    h = await make_server(send_timeout_s=30, outbound_queue_events=16, max_inbound_bytes_per_s=1 << 30)
    ws = await websockets.connect(h.url, max_size=None)
    ws.transport.pause_reading()
    big = secrets.token_urlsafe(15000)  # 20 kB that permessage-deflate cannot shrink
    sent = 0
    with pytest.raises(TimeoutError):  # the server stops reading, so TCP stops the client's sends
        async with asyncio.timeout(1.5):
            while sent < 5000:
                await ws.send(json.dumps({"type": "session.update", "session": {"instructions": big}}))
                sent += 1
    session = h.session()
    assert session.outbound_events.qsize() <= 2 * 16 + 2 and sent < 5000
    ws.transport.resume_reading()  # now it reads: everything it sent is answered
    async with asyncio.timeout(20):
        updated = 0
        while updated < sent:
            updated += json.loads(await ws.recv())["type"] == "session.updated"
    await ws.close()


async def test_a_client_that_stops_reading_is_cut_within_the_default_3_s(make_server):
    h = await make_server(fake_tts_ms_per_char=1000)  # send_timeout_s at its default, 3 s
    assert h.server.config.send_timeout_s == 3.0
    ws = await websockets.connect(h.url, max_size=None)
    ws.transport.pause_reading()
    session = h.session()
    unfinished: list[float] = []  # start times of the server's sends that have not completed
    real_send = session.ws.send

    async def timed_send(message: bytes, **kwargs: Any) -> None:
        started = time.monotonic()
        unfinished.append(started)
        await real_send(message, **kwargs)
        unfinished.remove(started)

    session.ws.send = timed_send
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {**HELLO, "content": [
        {"type": "input_text", "text": "talk a lot " * 100}]}}))
    await ws.send('{"type": "response.create"}')
    await asyncio.wait_for(h.sessions_ended.get(), 30)
    cut_after_s = time.monotonic() - unfinished[0]  # from the first send the client did not take
    assert 2.9 < cut_after_s < 3.0 + 0.3, cut_after_s
    print(f"a client that stopped reading was cut {cut_after_s:.2f} s after the first send it did not take")
    ws.transport.abort()


# ---- the clean stop -----------------------------------------------------------------------------------

async def test_sigterm_cancels_turns_closes_with_1012_and_exits_in_time_despite_a_stuck_client():
    server = await ServerProcess.start(
        *FAKE_ARGS, "--fake-llm-token-ms", "50", "--fake-llm-reply", "word " * 400, "--send-timeout-s", "60",
        "--max-inbound-bytes-per-s", "100000000")
    try:
        port = await asyncio.wait_for(server.port, 60)
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        talking = Client(await websockets.connect(url, max_size=None))
        await talking.say("Hello")
        await talking.wait_for("response.output_audio.delta")  # a turn is in flight
        stuck = await websockets.connect(url, max_size=None)
        stuck.transport.pause_reading()  # it never reads again, while the server has megabytes for it
        update = json.dumps({"type": "session.update", "session": {"instructions": secrets.token_urlsafe(15000)}})
        for _ in range(600):
            await stuck.send(update)
        await talking.send("response.cancel")  # events are handled in order: after this answer, the
        await talking.wait_for("response.done")  # stuck client's 600 updates were read (or are being)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(talking.closed, 15)
        assert talking.ws.close_code == 1012
        assert await server.wait(15) == 0
        took_s = time.monotonic() - started
        assert took_s < 15
        assert "shutting down: 2 sessions" in server.log and server.log.count("closed after") == 2
        assert "exiting now" not in server.log  # the clean path, not the failsafe
        stuck.transport.resume_reading()
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await stuck.recv()
        print(f"SIGTERM to exit: {took_s:.2f} s; the stuck client saw close code {stuck.close_code}")
    finally:
        server.kill()


async def test_the_stop_exits_even_when_a_component_hangs(tmp_path):
    (tmp_path / "hanging.py").write_text(
        "import time\nimport s2s_server as s2s\n\n\nclass HangingTTS(s2s.FakeTTS):\n    name = 'test-hang'\n\n"
        "    def close(self):\n        time.sleep(3600)\n", encoding="utf-8")
    server = await ServerProcess.start(*FAKE_ARGS, "--plugins", "hanging", "--tts", "test-hang",
                                       "--shutdown-timeout-s", "0.5", env={"PYTHONPATH": str(tmp_path)})
    try:
        await asyncio.wait_for(server.port, 60)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert await server.wait(15) == 1
        assert time.monotonic() - started < 0.5 + 5 + 2
        assert re.search(r"still stopping after \d+ s; exiting now", server.log)
    finally:
        server.kill()


async def test_the_stop_does_not_wait_for_a_call_that_a_components_close_left_running(tmp_path):
    """A component's close() may leave a call that serves nothing any more to end by itself (llamacpp: the read
    of a user's next prompt, `Component.left_running`): the process exits 0 once stopped, without waiting for
    it (the interpreter's exit joins every worker thread; here one that would run for an hour)."""
    (tmp_path / "leaving.py").write_text(
        "import threading\nimport time\nimport s2s_server as s2s\n\n\nclass LeavingTTS(s2s.FakeTTS):\n"
        "    name = 'test-leave'\n\n    def close(self):\n"
        "        threading.Thread(target=time.sleep, args=(3600,)).start()\n        self.left_running = True\n",
        encoding="utf-8")
    server = await ServerProcess.start(*FAKE_ARGS, "--plugins", "leaving", "--tts", "test-leave",
                                       "--shutdown-timeout-s", "0.5", env={"PYTHONPATH": str(tmp_path)})
    try:
        await asyncio.wait_for(server.port, 60)
        server.proc.send_signal(signal.SIGTERM)
        assert await server.wait(15) == 0
        assert "stopped" in server.log and "exiting now" not in server.log  # not the failsafe's exit
    finally:
        server.kill()


# ---- configuration: where the token's name and settings come from ----------------------------------------


def test_the_token_variable_is_never_read_as_a_setting_wherever_its_name_is_set(tmp_path):
    from s2s_config import load_config

    assert load_config([], {"S2S_AUTH_TOKEN": TOKEN}).auth_token_env == "S2S_AUTH_TOKEN"
    assert load_config(["--auth-token-env", "S2S_KEY"], {"S2S_KEY": TOKEN}).auth_token_env == "S2S_KEY"
    assert load_config([], {"S2S_AUTH_TOKEN_ENV": "S2S_KEY", "S2S_KEY": TOKEN}).auth_token_env == "S2S_KEY"
    settings = tmp_path / "settings.toml"
    settings.write_text('auth_token_env = "S2S_KEY"\nallowed_origins = ["https://a.example"]\n', encoding="utf-8")
    config = load_config(["--config", str(settings)], {"S2S_KEY": TOKEN})
    assert config.auth_token_env == "S2S_KEY" and TOKEN not in config.model_dump_json()
    with pytest.raises(ConfigError, match="S2S_KEY"):  # named nowhere: it is an unknown setting, as before
        load_config([], {"S2S_KEY": TOKEN})


def test_list_settings_take_json_or_commas_and_bad_files_are_named(tmp_path):
    from s2s_config import load_config

    assert load_config(["--allowed-origins", '["https://a.example"]'], {}).allowed_origins == ["https://a.example"]
    assert load_config([], {"S2S_ALLOWED_ORIGINS": "https://a.example, https://b.example"}).allowed_origins == [
        "https://a.example", "https://b.example"]
    not_a_table = tmp_path / "list.json"
    not_a_table.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a table of settings"):
        load_config(["--config", str(not_a_table)], {})
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"max_sesions": 3}', encoding="utf-8")
    with pytest.raises(ConfigError, match="Did you mean: max_sessions"):
        load_config(["--config", str(unknown)], {})


def test_a_misspelt_option_exits_2_with_a_suggestion(capsys):
    from s2s_config import main_config

    with pytest.raises(SystemExit) as info:
        main_config(["--max-sesions", "3"])
    assert info.value.code == 2 and "did you mean: --max-sessions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main_config(["--max-sessions", "0"])
    assert info.value.code == 2 and "max_sessions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # a prefix of a real option is not taken for it
        main_config(["--max-session", "3"])
    assert info.value.code == 2 and "did you mean: --max-sessions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # nothing close: no suggestion (the shared "--" alone is not close)
        main_config(["--bogus"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "did you mean" not in err
    assert len(err.splitlines()) == 2 and "--help` lists every option" in err  # not 150 lines of usage first


def test_a_port_already_taken_exits_1_with_a_message(tmp_path, capsys):
    import socket

    import s2s_server

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    logger = logging.getLogger("s2s")  # main() sets up the server's logging: put it back for the next tests
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        with pytest.raises(SystemExit) as info:
            s2s_server.main(["--port", str(port), "--asr", "fake", "--llm", "fake", "--tts",
                             "fake", "--judge", "off", "--vad", "webrtc", "--turn-taking", "silence",
                             "--data-dir", str(tmp_path)])
    finally:
        taken.close()
        logger.handlers[:], logger.level, logger.propagate = saved
    assert info.value.code == 1 and f"s2s: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_settings_file_that_is_missing_or_not_toml_exits_2_with_its_name(tmp_path, capsys):
    from s2s_config import main_config

    broken = tmp_path / "broken.toml"
    broken.write_text("llm_max_tokens = \n", encoding="utf-8")
    for path in (tmp_path / "missing.toml", broken):
        with pytest.raises(SystemExit) as info:
            main_config(["--config", str(path)])
        assert info.value.code == 2 and str(path) in capsys.readouterr().err
