"""The server over a real WebSocket, with the fake ASR/LLM/TTS test doubles and real (espeak-ng) speech."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import websockets

import s2s_server as s2s
from tests.conftest import Client, silence, speech
from tests.doubles import GatedJudge

QUESTION = "What is the weather like in Paris today?"


async def spoken_turn(client: Client, speech_dir, text: str = QUESTION, rate_hz: int = 24000) -> None:
    await client.append_audio(np.concatenate([silence(300, rate_hz), speech(text, speech_dir, rate_hz),
                                              silence(1200, rate_hz)]), rate_hz)


def audio_of(client: Client, response_id: str) -> np.ndarray:
    chunks = [base64.b64decode(e["delta"]) for e in client.events
              if e["type"] == "response.output_audio.delta" and e["response_id"] == response_id]
    return np.frombuffer(b"".join(chunks), dtype="<i2")


async def receive_audio(client: Client, at_least_ms: float, rate_hz: int = 24000) -> tuple[str, float]:
    """The next reply audio deltas, until at least `at_least_ms` of audio came: their item and its ms."""
    received_ms = 0.0
    while received_ms < at_least_ms:
        delta = await client.wait_for("response.output_audio.delta")
        received_ms += len(base64.b64decode(delta["delta"])) / 2 / rate_hz * 1000
    return delta["item_id"], received_ms


async def test_a_spoken_turn_produces_the_documented_event_sequence(make_server, speech_dir, caplog):
    caplog.set_level(logging.INFO, logger="s2s")
    h = await make_server()
    c = await h.connect()
    await spoken_turn(c, speech_dir)
    started = await c.wait_for("input_audio_buffer.speech_started")
    stopped = await c.wait_for("input_audio_buffer.speech_stopped")
    committed = await c.wait_for("input_audio_buffer.committed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 200 <= started["audio_start_ms"] < stopped["audio_end_ms"]
    done = await c.wait_for("conversation.item.input_audio_transcription.completed")
    assert done["transcript"] == "hello there"
    judgement = await c.wait_for("s2s.judgement")
    assert judgement["action"] == "reply" and judgement["item_id"] == committed["item_id"]
    created = await c.wait_for("response.created")
    assert created["response"]["metadata"]["strategy"] == "reply"
    first_audio = await c.wait_for("response.output_audio.delta")
    response_done = await c.wait_for("response.done")
    metrics = await c.wait_for("s2s.metrics")
    assert response_done["response"]["status"] == "completed"
    transcript = response_done["response"]["output"][0]["content"][0]["transcript"]
    assert transcript.startswith("You said: hello there.")
    deltas = [e for e in c.events if e["type"] == "response.output_audio.delta"]
    assert c.index(first_audio) < c.index(response_done)
    assert all(c.index(d) < c.index(response_done) for d in deltas)
    assert all(len(base64.b64decode(d["delta"])) // 2 <= 2400 for d in deltas)  # <= 100 ms at 24 kHz
    assert set(s2s.METRIC_KEYS) <= set(metrics) and metrics["voice_to_voice"] is not None
    assert metrics["endpoint"] >= 600  # the silence window that ended the turn
    assert 0 < metrics["turn_end_to_first_byte"] < metrics["voice_to_first_byte"]  # the server's share, after it
    assert c.frame_kinds == {str}  # every event came in a text frame (the server sends its UTF-8 bytes as text)
    # The log's CPU share: within the turn's wall-clock share (a window stamped from anything but the turn's
    # end, the session's start say, would take in more CPU than that).
    loop_cpu = [float(m) for m in re.findall(r"loop_cpu_ms=([\d.]+)", caplog.text)]
    assert len(loop_cpu) == 1 and 0 <= loop_cpu[0] <= metrics["turn_end_to_first_byte"] + 0.2, loop_cpu
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")  # the reply's playback ended
    states = [e["state"] for e in c.events if e["type"] == "s2s.state"]
    assert states == ["listening", "processing", "speaking", "listening"]
    seq = c.types()
    order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
             "input_audio_buffer.committed", "conversation.item.input_audio_transcription.completed",
             "s2s.judgement", "response.created", "response.output_audio_transcript.delta",
             "response.output_audio.delta", "response.output_audio.done", "response.done", "s2s.metrics"]
    assert [seq.index(t) for t in order] == sorted(seq.index(t) for t in order)


async def test_the_prefix_padding_keeps_the_first_syllable(make_server, speech_dir):
    h = await make_server(trace_dir=str(speech_dir / "traces"))
    c = await h.connect()
    voice = speech(QUESTION, speech_dir, 24000)
    await c.append_audio(np.concatenate([silence(600), voice, silence(1200)]))
    await c.wait_for("s2s.metrics")
    (turn,) = (speech_dir / "traces").glob("sess_*/turn-0001/input.wav")
    import wave
    with wave.open(str(turn)) as w:
        kept_ms = w.getnframes() / w.getframerate() * 1000
    spoken_ms = len(voice) / 24
    assert kept_ms >= spoken_ms - 60  # nothing of the speech is cut (espeak adds ~ no lead-in)


async def test_typed_input_gets_a_spoken_reply(make_server):
    h = await make_server()
    c = await h.connect()
    await c.say("Good morning", respond=False)
    added = await c.wait_for("conversation.item.added")
    assert added["item"]["role"] == "user"
    await c.send("response.create")
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert "Good morning" in done["response"]["output"][0]["content"][0]["transcript"]
    assert len(audio_of(c, done["response"]["id"])) > 0


async def test_push_to_talk_commits_by_hand(make_server, speech_dir):
    h = await make_server()
    c = await h.connect()
    updated = await c.update_session(audio={"input": {"turn_detection": None}})
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    await c.append_audio(np.concatenate([speech(QUESTION, speech_dir, 24000), silence(1500)]))
    await c.send("input_audio_buffer.commit")
    await c.wait_for("input_audio_buffer.committed")
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert "input_audio_buffer.speech_started" not in c.types()  # no VAD in push-to-talk mode
    await c.send("input_audio_buffer.commit")
    err = await c.wait_for("error")
    assert err["error"]["code"] == "input_audio_buffer_commit_empty"


@pytest.mark.parametrize("rate_hz", [16000, 24000])
async def test_both_wire_rates_work_in_and_out(make_server, speech_dir, rate_hz):
    h = await make_server()
    c = await h.connect()
    fmt = {"type": "audio/pcm", "rate": rate_hz}
    await c.update_session(audio={"input": {"format": fmt}, "output": {"format": fmt}})
    await spoken_turn(c, speech_dir, rate_hz=rate_hz)
    await c.wait_for("input_audio_buffer.speech_started")
    done = await c.wait_for("response.done")
    text = done["response"]["output"][0]["content"][0]["transcript"]
    samples = len(audio_of(c, done["response"]["id"]))
    expected = len(text.replace(" ", "")) * 0.060 * rate_hz  # the fake TTS: 60 ms per character
    assert 0.7 * expected < samples < 1.5 * expected


async def test_barge_in_cancels_the_reply_and_no_audio_follows(make_server, speech_dir):
    cancelled_streams = []

    class SlowLLM(s2s.FakeLLM):
        name = "test-slow"

        async def generate(self, messages, *, max_tokens):
            try:
                for i in range(200):
                    yield f" word{i}," if i % 3 == 2 else f" word{i}"
                    await asyncio.sleep(0.01)
            finally:
                cancelled_streams.append(time.monotonic())

    h = await make_server(llm="test-slow")
    c = await h.connect()
    await c.say("Talk to me")
    await c.wait_for("response.output_audio.delta")
    await c.append_audio(np.concatenate([speech("Stop, stop, let me talk", speech_dir), silence(1200)]))
    speech_started = await c.wait_for("input_audio_buffer.speech_started")
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    assert c.index(speech_started) < c.index(done)
    assert cancelled_streams, "the LLM stream was not closed"
    cancelled_id = done["response"]["id"]
    # The user's turn is answered next; nothing of the cancelled response arrives after its response.done.
    await c.wait_for("response.done", lambda e: e["response"]["id"] != cancelled_id)
    after = c.events[c.index(done) + 1:]
    assert not [e for e in after if e.get("response_id") == cancelled_id and e["type"].startswith("response.output")]
    # History keeps only what was sent, and far less than the 200 words the LLM would have said.
    kept = done["response"]["output"][0]["content"][0]["transcript"]
    sent = "".join(e["delta"] for e in c.events[:c.index(done)]
                   if e["type"] == "response.output_audio_transcript.delta" and e["response_id"] == cancelled_id)
    assert sent.strip().startswith(kept.strip()) and "word199" not in sent


async def test_a_cough_does_not_cancel_the_bot(make_server, speech_dir):
    h = await make_server(fake_tts_ms_per_char=200)  # long replies: plenty of playback left
    c = await h.connect()
    done = await c.turn("Hi")
    cough = speech("huh", speech_dir, 24000)[: int(24000 * 0.2)]  # 200 ms of voice < barge_in_min_speech_ms
    await c.append_audio(np.concatenate([cough, silence(900)]))
    await c.send("response.cancel")  # nothing in flight: an error, and events are processed in order
    assert (await c.wait_for("error"))["error"]["code"] == "response_cancel_not_active"  # the cough came first
    assert done and "input_audio_buffer.speech_started" not in c.types()
    assert h.session().state == s2s.State.SPEAKING


async def test_truncate_keeps_only_what_the_client_played(make_server):
    h = await make_server()
    c = await h.connect()
    done = await c.turn("Hi")
    item_id = done["response"]["output"][0]["id"]
    full = done["response"]["output"][0]["content"][0]["transcript"]
    first_clause = "You said: Hi."
    assert full.startswith(first_clause)
    clause_ms = len(first_clause) * 60  # the fake TTS speaks 60 ms per character
    await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=clause_ms)
    truncated = await c.wait_for("conversation.item.truncated")
    (assistant,) = [i for i in h.session().items if i.role == "assistant"]
    assert assistant.text == first_clause and assistant.status == "incomplete"
    assert truncated["transcript"] == first_clause  # the client learns what was heard from the server
    await c.send("conversation.item.truncate", item_id="item_nope", content_index=0, audio_end_ms=1)
    assert (await c.wait_for("error"))["error"]["code"] == "item_not_found"


async def test_response_cancel_stops_the_reply(make_server):
    h = await make_server(fake_llm_token_ms=30)
    c = await h.connect()
    await c.say("Hi")
    await c.wait_for("response.created")
    await c.send("response.cancel")
    done = await c.wait_for("response.done")
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    await c.send("response.cancel")
    assert (await c.wait_for("error"))["error"]["code"] == "response_cancel_not_active"


async def push_to_talk_commit(c: Client, speech_dir) -> None:
    """Push-to-talk (turn_detection null): a spoken question, committed; returns once it is committed."""
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.append_audio(speech(QUESTION, speech_dir, 24000))
    await c.send("input_audio_buffer.commit")
    await c.wait_for("input_audio_buffer.committed")


async def test_words_typed_while_a_spoken_turn_is_transcribed_are_answered_with_it(make_server, speech_dir):
    """The page's composer sends the item and response.create while the spoken turn's ASR runs: one reply
    answers both (the spoken turn leaves the reply to the newer words), no error, and the state settles.
    Before, response.create was refused and the spoken turn left the reply to words nothing answered: no
    response.done, `processing` for good."""
    h = await make_server(fake_asr_latency_ms=800)
    c = await h.connect()
    await push_to_talk_commit(c, speech_dir)
    await c.say("And also, what time is it?")  # the ASR is still running
    await c.wait_for("conversation.item.input_audio_transcription.completed")
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert "hello there And also, what time is it" in done["response"]["output"][0]["content"][0]["transcript"]
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    assert "error" not in c.types() and c.types().count("response.created") == 1


async def test_response_cancel_while_a_turn_is_transcribed_leaves_it_unanswered(make_server, speech_dir):
    """The Stop button during ASR: no reply starts, the state settles, and the words stay in history marked
    unanswered, as a turn met with silence. Before, the cancel was refused and the whole reply played."""
    h = await make_server(fake_asr_latency_ms=800)
    c = await h.connect()
    await push_to_talk_commit(c, speech_dir)
    await c.send("response.cancel", event_id="stop")
    await c.wait_for("conversation.item.input_audio_transcription.completed")
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    assert "response.created" not in c.types() and "error" not in c.types()
    (heard,) = [i for i in h.session().items if i.role == "user"]
    assert heard.text == "hello there" and heard.unanswered
    done = await c.turn("Are you there?")
    assert done["response"]["output"][0]["content"][0]["transcript"].startswith(
        "You said: hello there [no reply was given] Are you there")
    assert c.types().count("response.created") == 1 and "error" not in c.types()
    await c.send("response.cancel")  # nothing pending at all
    assert (await c.wait_for("error"))["error"]["code"] == "response_cancel_not_active"


async def test_response_create_after_a_push_to_talk_commit_is_answered_by_the_turns_reply(make_server, speech_dir):
    """A standard Realtime client commits, then asks: the server answers the commit itself, and that reply is
    the one asked for (its instructions hold), with no error. A second response.create for the same words is
    refused, as ever."""
    h = await make_server(fake_asr_latency_ms=300)
    c = await h.connect()
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.append_audio(speech(QUESTION, speech_dir, 24000))
    await c.send("input_audio_buffer.commit")
    await c.send("response.create", event_id="asked", response={"instructions": "Say it in French."})
    await c.send("response.create", event_id="again")
    error = await c.wait_for("error")
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "again"
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    assert c.types().count("response.created") == 1 and c.types().count("error") == 1
    assert {"role": "system", "content": "Say it in French."} in h.session().last_response.messages


@pytest.mark.parametrize(("payload", "code"), [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_event"),
    ('{"no_type": 1}', "missing_type"),
    ('{"type": "bogus.event", "event_id": "e1"}', "unknown_event"),
    ('{"type": "conversation.item.craete"}', "unknown_event"),  # misspelt: the message names the close one
    ('{"type": "input_audio_buffer.append", "audio": "%%%not base64"}', "invalid_audio"),
    ('{"type": "input_audio_buffer.append", "audio": "AA=="}', "invalid_audio"),  # 1 byte: odd length
    ('{"type": "input_audio_buffer.append"}', "invalid_event"),
    ('{"type": "session.update", "session": {"audio": {"input": {"format": {"rate": 8000}}}}}', "invalid_event"),
    ('{"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": -5}', "invalid_event"),
    ('{"type": "response.cancel"}', "response_cancel_not_active"),
    ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty"),
])
async def test_a_bad_event_gets_an_error_and_the_session_goes_on(make_server, payload, code):
    h = await make_server()
    c = await h.connect()
    await c.send_raw(payload)
    err = await c.wait_for("error")
    assert err["error"]["code"] == code, err
    if '"event_id": "e1"' in payload:
        assert err["error"]["event_id"] == "e1"
    if "craete" in payload:
        assert "did you mean 'conversation.item.create'?" in err["error"]["message"], err
    elif code == "unknown_event":
        assert "did you mean" not in err["error"]["message"], err
    assert (await c.turn("still there?"))["response"]["status"] == "completed"


async def test_binary_frames_and_oversized_audio_are_refused_with_errors(make_server):
    h = await make_server(max_append_ms=100)
    c = await h.connect()
    await c.send_raw(b"\x00\x01")
    assert (await c.wait_for("error"))["error"]["code"] == "binary_not_supported"
    await c.send("input_audio_buffer.append", audio=base64.b64encode(bytes(2 * 24000)).decode())  # 1 s
    assert (await c.wait_for("error"))["error"]["code"] == "audio_too_long"


async def test_a_reply_with_no_words_fails_with_an_error_and_the_session_goes_on(make_server):
    """An LLM that ends with nothing speakable (here only markup) would leave the user in silence with a
    "completed" reply: it is a failed one, with an error that says why."""
    h = await make_server(fake_llm_reply="{user}")  # says the user's words back: "***" is only markup
    c = await h.connect()
    done = await c.turn("***")
    assert done["response"]["status"] == "failed", done
    err = next(e for e in c.events if e["type"] == "error")
    assert err["error"]["code"] == "response_failed" and "no words" in err["error"]["message"]
    assert (await c.turn("still there?"))["response"]["status"] == "completed"


async def test_a_failing_component_fails_the_response_not_the_session(make_server):
    class FailingTTS(s2s.FakeTTS):
        name = "test-failing"
        calls = 0

        async def synthesize(self, text, *, voice=None):
            FailingTTS.calls += 1
            if FailingTTS.calls == 1:
                raise RuntimeError("synthesiser exploded")
            async for chunk in super().synthesize(text, voice=voice):
                yield chunk

    h = await make_server(tts="test-failing")
    c = await h.connect()
    for expected in ("failed", "completed"):
        done = await c.turn("Hi")
        assert done["response"]["status"] == expected
        if expected == "failed":
            (err,) = [e for e in c.events[:c.index(done)] if e["type"] == "error"]  # the error comes first
            assert err["error"]["code"] == "response_failed" and "exploded" in err["error"]["message"]
            assert done["response"]["status_details"]["reason"] == "error"


async def test_a_disconnect_mid_reply_leaves_no_task_running(make_server):
    h = await make_server(fake_llm_token_ms=20)
    c = await h.connect()
    await c.say("Hi")
    await c.wait_for("response.output_audio.delta")
    session_id = h.session().id
    await c.ws.close()
    await asyncio.wait_for(h.sessions_ended.get(), 10)  # the handler returns after awaiting its tasks
    assert not h.server.sessions
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith(session_id) and not t.done()]
    assert leftovers == []


async def test_model_work_runs_off_the_event_loop_and_stops_on_barge_in(make_server, speech_dir):
    stopped = threading.Event()
    produced = []

    class BlockingLLM(s2s.LLM):
        """A library that blocks (time.sleep per token), bridged with iterate_in_thread."""

        name = "test-blocking"

        async def generate(self, messages, *, max_tokens):
            def tokens(stop: threading.Event) -> Iterator[str]:
                try:
                    for i in range(1000):
                        if stop.is_set():
                            return
                        time.sleep(0.02)  # blocking work: must not stall the event loop
                        produced.append(i)
                        yield f" token{i}."
                finally:
                    stopped.set()

            async for token in s2s.iterate_in_thread(tokens):
                yield token

    h = await make_server(llm="test-blocking")
    c = await h.connect()
    await c.say("Hi")
    await c.wait_for("response.output_audio.delta")
    await c.append_audio(np.concatenate([speech("Wait a moment please", speech_dir), silence(900)]))
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "cancelled"
    assert await asyncio.to_thread(stopped.wait, 5), "the blocking generator kept running after the cancel"
    count = len(produced)
    assert count < 1000
    await c.wait_for("input_audio_buffer.committed")
    assert len(produced) <= count + 1  # nothing more was generated after it stopped


async def test_sessions_are_isolated(make_server, speech_dir):
    h = await make_server()
    a, b = await h.connect(), await h.connect()
    await a.send_raw("garbage")
    assert (await b.turn("Hi"))["response"]["status"] == "completed"
    assert (await a.wait_for("error"))["error"]["code"] == "invalid_json"
    assert "error" not in b.types() and "response.created" not in a.types()


async def test_a_deeply_nested_message_is_refused_and_no_session_notices(make_server):
    """JSON nested 200,000 deep (400 KB, under `max_message_bytes`) crashed the whole process with orjson 3.8.3
    (no depth limit: CVE-2024-27454); now it is an invalid_json error, and this session and another go on."""
    h = await make_server()
    a, b = await h.connect(), await h.connect()
    await a.send_raw('{"type": "session.update", "session": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert (await a.wait_for("error"))["error"]["code"] == "invalid_json"
    assert (await b.turn("Hi"))["response"]["status"] == "completed"
    assert (await a.turn("Hi"))["response"]["status"] == "completed"


async def test_the_page_and_health_check_are_served_on_the_same_port(make_server):
    import urllib.request

    h = await make_server()
    base = f"http://127.0.0.1:{h.server.port}"

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, b""

    assert await asyncio.to_thread(get, "/healthz") == (200, b"ok\n")
    index = (s2s.FRONTEND_DIR / "index.html").read_bytes()
    assert await asyncio.to_thread(get, "/") == (200, index)  # the page, from the port of /v1/realtime
    assert (await asyncio.to_thread(get, "/app.js"))[1] == (s2s.FRONTEND_DIR / "app.js").read_bytes()
    c = await h.connect()  # and the WebSocket on that same port
    assert c.events[0]["type"] == "session.created"
    assert (await asyncio.to_thread(get, "/../s2s_server.py"))[0] == 404
    assert (await asyncio.to_thread(get, "/s2s_config.py"))[0] == 404


async def test_a_foreign_browser_origin_is_refused(make_server):
    h = await make_server()
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(h.url, origin="https://evil.example")
    assert info.value.response.status_code == 403
    ok = await websockets.connect(h.url, origin=f"http://localhost:{h.server.port}")
    await ok.close()


async def test_the_official_openai_realtime_client_completes_a_turn(make_server):
    openai = pytest.importorskip("openai")
    h = await make_server()
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{h.server.port}/v1", api_key="unused")
    async with client.realtime.connect(model="s2s") as conn:
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
        await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": "Hello SDK"}]})
        await conn.response.create()
        seen, audio_bytes = [], 0
        async for event in conn:
            seen.append(event.type)
            if event.type == "response.output_audio.delta":
                audio_bytes += len(base64.b64decode(event.delta))
            if event.type == "response.done":
                assert event.response.status == "completed"
                break
    assert "session.updated" in seen and "response.created" in seen and audio_bytes > 0


async def test_a_client_that_stops_reading_is_cut_off(make_server):
    h = await make_server(send_timeout_s=1.0, fake_tts_ms_per_char=1000, outbound_queue_events=64)
    ws = await websockets.connect(h.url, max_size=None)
    ws.transport.pause_reading()  # never read again: the server's sends back up
    await ws.send('{"type": "conversation.item.create", "item": {"type": "message", "role": "user", '
                  '"content": [{"type": "input_text", "text": "' + "talk a lot " * 50 + '"}]}}')
    await ws.send('{"type": "response.create"}')
    started = time.monotonic()
    await asyncio.wait_for(h.sessions_ended.get(), 10)
    assert time.monotonic() - started < 1.0 + 3.0  # send_timeout_s, plus slack for a slow machine
    ws.transport.abort()


async def test_events_to_a_client_that_reads_are_written_at_once_without_send(make_server):
    h = await make_server(fake_tts_ms_per_char=10)  # a short reply: the socket takes all of it at once
    c = await h.connect()
    session = h.session()
    awaited: list[bytes] = []
    real_send = session.ws.send

    async def counted_send(message: bytes, **kwargs: object) -> None:
        awaited.append(message)
        await real_send(message, **kwargs)

    session.ws.send = counted_send
    done = await c.turn("Hi")
    assert done["response"]["status"] == "completed"
    assert awaited == []  # every event went through send_at_once (websockets' broadcast), none waited
    assert c.frame_kinds == {str}  # still text frames
    seq = c.types()
    assert seq.index("response.created") < seq.index("response.output_audio.delta") < seq.index("response.done")


async def test_a_write_that_fails_under_send_at_once_closes_that_connection_only(make_server, monkeypatch, caplog):
    """websockets' broadcast raises an ExceptionGroup when the transport breaks under a write: the session logs
    it and aborts that connection; another client, connected all along, is served as before."""
    caplog.set_level(logging.WARNING)
    h = await make_server(fake_tts_ms_per_char=10)
    c = await h.connect()
    broken_ws = h.session().ws
    d = await h.connect()
    real_broadcast = s2s.broadcast

    def broken_for_c(connections, message, text=None, raise_exceptions=False):
        if connections[0] is broken_ws:
            raise ExceptionGroup("skipped broadcast", [OSError("the transport broke")])
        return real_broadcast(connections, message, text=text, raise_exceptions=raise_exceptions)

    monkeypatch.setattr(s2s, "broadcast", broken_for_c)
    await c.say("Hi")
    await asyncio.wait_for(c.closed, 10)
    assert "a write to the client failed; closing the connection" in caplog.text
    assert (await d.turn("Hi"))["response"]["status"] == "completed"


async def test_reply_audio_runs_at_most_audio_lead_ms_ahead_of_real_time(make_server):
    h = await make_server(audio_lead_ms=300, fake_tts_ms_per_char=20)  # ~1.6 s of reply audio
    c = await h.connect()
    await c.turn("Hi")
    deltas = [(t, e) for t, e in zip(c.arrivals, c.events, strict=True) if e["type"] == "response.output_audio.delta"]
    t0, total_ms = deltas[0][0], 0.0
    for t, ev in deltas:
        total_ms += len(base64.b64decode(ev["delta"])) / 2 / 24
        assert total_ms <= 300 + (t - t0) * 1000 + 100 + 50  # lead + playback so far + one chunk + slack
    assert total_ms > 1000


class HeldLLM(s2s.FakeLLM):
    """The fake LLM, except that a reply to words with "wait" in them starts only once `release` is set: its
    reply stays starting (no audio yet) for as long as a test likes."""

    name = "test-held-llm"
    release: asyncio.Event

    async def generate(self, messages, *, max_tokens):
        if "wait" in messages[-1]["content"]:
            await HeldLLM.release.wait()
        async for delta in super().generate(messages, max_tokens=max_tokens):
            yield delta


def audio_leads_ms(client: Client) -> list[tuple[float, float]]:
    """(arrival, ms of reply audio received minus ms elapsed since the first chunk arrived) per audio delta:
    how far ahead of its playback the client is, at 24 kHz."""
    deltas = [(t, e) for t, e in zip(client.arrivals, client.events, strict=True)
              if e["type"] == "response.output_audio.delta"]
    received_ms, leads = 0.0, []
    for t, ev in deltas:
        received_ms += len(base64.b64decode(ev["delta"])) / 2 / 24
        leads.append((t, received_ms - (t - deltas[0][0]) * 1000))
    return leads


async def test_while_another_reply_starts_a_speaking_reply_stays_only_its_margin_ahead_then_sends_the_rest(
        make_server):
    """A burst: one reply is starting (its LLM has not answered) while another already speaks. The speaking
    one sends only what keeps the client `audio_burst_margin_ms` ahead of playback, so that the CPU goes to
    the other's first audio; once that is out, the rest goes at once (no audio_lead_ms limit here)."""
    HeldLLM.release = asyncio.Event()
    h = await make_server(llm="test-held-llm", audio_burst_margin_ms=60, audio_burst_hold_ms=10000)
    starting, speaking = await h.connect(), await h.connect()
    await starting.say("Please wait for it.")
    await starting.wait_for("response.created")
    await speaking.say("Hi")  # about 4.5 s of audio in 40 ms chunks
    for _ in range(8):  # 320 ms of audio: with the margin, the last of these comes about 220 ms after the first
        await speaking.wait_for("response.output_audio.delta")
    held = audio_leads_ms(speaking)
    # margin + the chunk itself + slack for a late first chunk on a busy runner; without the hold these 8
    # chunks come at once, up to 320 ms ahead
    assert all(lead <= 60 + 40 + 150 for _, lead in held)
    HeldLLM.release.set()
    await starting.wait_for("response.output_audio.delta")
    await speaking.wait_for("response.done")
    assert audio_leads_ms(speaking)[-1][1] > 2000  # the rest came at once, far ahead of playback
    assert [e["type"] for e in speaking.events if e["type"].startswith("response.output_audio")][-1] == \
        "response.output_audio.done"


async def test_a_speaking_reply_holds_its_audio_for_at_most_audio_burst_hold_ms(make_server):
    """However long another reply takes to start, a speaking reply is held only in its first
    `audio_burst_hold_ms`, then sends the rest at once."""
    HeldLLM.release = asyncio.Event()  # never set: the other reply stays starting
    h = await make_server(llm="test-held-llm", audio_burst_margin_ms=60, audio_burst_hold_ms=200)
    starting, speaking = await h.connect(), await h.connect()
    await starting.say("Please wait for it.")
    await starting.wait_for("response.created")
    await speaking.turn("Hi")
    leads = audio_leads_ms(speaking)
    assert leads[-1][1] > 2000 and leads[-1][0] - leads[0][0] < 1.5  # 4.5 s of audio, out within 1.5 s


@pytest.mark.parametrize("stage", ["asr", "llm", "tts"])
async def test_a_hung_stage_fails_its_turn_after_its_deadline_and_the_next_turn_works(make_server, speech_dir, stage):
    hang = asyncio.Event()  # never set: the stage hangs until cancelled

    class HangingASR(s2s.FakeASR):
        name = "test-hang-asr"
        calls = 0

        async def transcribe(self, audio):
            HangingASR.calls += 1
            if HangingASR.calls == 1:
                await hang.wait()
            async for piece in super().transcribe(audio):
                yield piece

    class HangingLLM(s2s.FakeLLM):
        name = "test-hang-llm"
        calls = 0

        async def generate(self, messages, *, max_tokens):
            HangingLLM.calls += 1
            yield "Hmm,"
            if HangingLLM.calls == 1:
                await hang.wait()  # stalls after the first token
            async for delta in super().generate(messages, max_tokens=max_tokens):
                yield delta

    class HangingTTS(s2s.FakeTTS):
        name = "test-hang-tts"
        calls = 0

        async def synthesize(self, text, *, voice=None):
            HangingTTS.calls += 1
            if HangingTTS.calls == 1:
                await hang.wait()
            async for chunk in super().synthesize(text, voice=voice):
                yield chunk

    names = {"asr": "test-hang-asr", "llm": "test-hang-llm", "tts": "test-hang-tts"}
    # partial transcripts off: the first ASR call must be the turn's own (a hung partial is the next test's)
    h = await make_server(**{stage: names[stage]}, asr_deadline_s=0.3, llm_stall_deadline_s=0.3, tts_deadline_s=0.3,
                          asr_partial_interval_ms=0)
    c = await h.connect()
    await c.append_audio(np.concatenate([speech(QUESTION, speech_dir, 24000), silence(1200)]))
    err = await c.wait_for("error")
    assert "produced nothing for 0.3 s" in err["error"]["message"]
    if stage == "asr":
        assert err["error"]["code"] == "asr_failed" and "response.created" not in c.types()
    else:
        assert err["error"]["code"] == "response_failed"
        assert (await c.wait_for("response.done"))["response"]["status"] == "failed"
    await c.append_audio(np.concatenate([speech(QUESTION, speech_dir, 24000), silence(1200)]))
    assert (await c.wait_for("response.done", lambda e: e["response"]["status"] == "completed"))


class SlowReadingLLM(s2s.FakeLLM):
    """Test double: reads a long prompt in steps of 0.2 s before its first token (llama.cpp reads 128 tokens a step,
    in 2 to 17 s on 2 busy cores), 8 steps for new words with "long" in them, and gives a sign of each step
    (`generate_reading`); for words with "hang" in them it stops giving signs after 2 steps and hangs."""

    name = "test-slow-reading"

    async def read(self, messages, signs):
        prompt = next(m["content"] for m in reversed(messages) if m["role"] == "user").splitlines()[-1]  # the newest
        for step in range(8 if "long" in prompt or "hang" in prompt else 0):
            if step == 2 and "hang" in prompt:
                await asyncio.Event().wait()  # hung: no more steps, never a token
            await asyncio.sleep(0.2)
            if signs:
                yield s2s.StillReading()

    async def generate(self, messages, *, max_tokens):
        async for _ in self.read(messages, signs=False):
            pass
        async for delta in super().generate(messages, max_tokens=max_tokens):
            yield delta

    async def generate_reading(self, messages, *, max_tokens):
        async for sign in self.read(messages, signs=True):
            yield sign
        async for delta in super().generate(messages, max_tokens=max_tokens):
            yield delta


async def test_a_long_prompt_read_in_steady_steps_is_answered_and_a_hung_read_is_still_reported(make_server):
    """A typed message of 800 estimated tokens took the default LLM longer than its 20 s first-token deadline
    just to read on 2 busy cores (21 tokens/s), so its reply failed ("the language model produced nothing for 20
    s"). Each prompt step read now starts that deadline again: a read of 1.6 s against a 0.5 s deadline is
    answered, and a read that stops making steps still fails after 0.5 s of nothing."""
    h = await make_server(llm="test-slow-reading", llm_first_token_deadline_s=0.5)
    c = await h.connect()
    assert (await c.turn("Here is a long text: " + "1234567890 " * 100))["response"]["status"] == "completed"
    assert "error" not in c.types()
    started = time.monotonic()
    done = await c.turn("This one will hang.")
    assert done["response"]["status"] == "failed" and time.monotonic() - started < 0.4 + 0.5 + 1.0
    assert "produced nothing for 0.5 s" in next(e for e in c.events if e["type"] == "error")["error"]["message"]
    assert (await c.turn("And a short one."))["response"]["status"] == "completed"


async def test_a_partial_transcript_in_flight_is_cancelled_when_the_user_stops_and_never_holds_up_the_turn(
        make_server, speech_dir):
    """Partial transcripts run by default while the user speaks, one at a time. One that hangs must not
    delay the turn: the pause that ends the speech cancels it, and the turn's own transcript answers."""
    assert s2s.Config().asr_partial_interval_ms > 0  # on by default
    hang, cancelled = asyncio.Event(), asyncio.Event()

    class HangingPartialASR(s2s.FakeASR):
        name = "test-hang-partial-asr"
        calls = 0

        async def transcribe(self, audio):
            HangingPartialASR.calls += 1
            if HangingPartialASR.calls == 1:  # the first partial, at asr_partial_interval_ms of speech
                try:
                    await hang.wait()  # never set: only cancelling ends it
                finally:
                    cancelled.set()
            async for piece in super().transcribe(audio):
                yield piece

    h = await make_server(asr="test-hang-partial-asr", asr_partial_interval_ms=500)
    c = await h.connect()
    await c.append_audio(np.concatenate([speech(QUESTION, speech_dir, 24000), silence(1200)]))
    done = await c.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    assert cancelled.is_set()  # the hung partial was cancelled, not left to run beside the turn's ASR
    assert HangingPartialASR.calls >= 2 and "error" not in c.types()


@pytest.mark.parametrize("mark", ["", ".", "-"])
@pytest.mark.parametrize("speculative", [False, True])
async def test_after_partial_transcripts_the_turns_own_transcript_still_appends_its_words(
        make_server, speech_dir, mark, speculative):
    """What the turn's transcript adds to the partial transcripts' deltas is sent as one more delta, so the
    deltas joined are the whole transcript: without a speculative transcript (turn_taking silence,
    asr_speculative_ms 0: the turn's own transcript, made after the speech; they stopped at the last partial's
    words) and with one; and when each transcript ends in a full stop, as Whisper writes them (a partial's
    closing mark is held back: "one two." and then "one two three." would otherwise stop at "one two.")."""
    words = "one two three four five six seven eight nine ten".split()

    class GrowingASR(s2s.FakeASR):  # a word per half second of audio, as a transcript grows while one speaks
        name = "test-growing-asr"

        async def transcribe(self, audio):
            n = max(1, min(len(words), len(audio) // (s2s.SAMPLE_RATE_HZ // 2)))
            yield " ".join(words[:n]) + mark

    turn_taking = {"turn_taking": "silence", "asr_speculative_ms": 0} if not speculative else {}
    h = await make_server(asr="test-growing-asr", asr_partial_interval_ms=500, **turn_taking)
    c = await h.connect()
    await c.append_audio(np.concatenate([speech(QUESTION, speech_dir, 24000), silence(1200)]))
    done = await c.wait_for("conversation.item.input_audio_transcription.completed")
    deltas = [e["delta"] for e in c.events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    committed = c.types().index("input_audio_buffer.committed")
    assert any(e["type"].endswith("transcription.delta") for e in c.events[:committed])  # partials were shown
    assert "".join(deltas) == done["transcript"] and len(done["transcript"].split()) > 2, (deltas, done)


async def test_a_sessions_history_in_memory_is_bounded(make_server):
    h = await make_server(session_max_items=10)
    c = await h.connect()
    for n in range(8):  # 16 items: a user and an assistant item per turn
        await c.turn(f"turn {n}")
    items = h.session().items
    assert len(items) == 10 and items[-2].text == "turn 7"  # the newest kept, the oldest dropped


async def test_a_turns_memory_write_starts_after_its_replys_first_audio(make_server):
    """The user's item is written (and acknowledged, s2s.item.stored) only once the reply to it has sent its
    first audio: in a burst of turns the writes would delay the replies (FirstAudioGate). The voice takes
    300 ms to start, far longer than the write."""
    h = await make_server(fake_tts_latency_ms=300)
    c = await h.connect()
    await c.say("My name is Ana.")
    added = await c.wait_for("conversation.item.added", lambda e: e["item"]["role"] == "user")
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == added["item"]["id"])
    kinds = [e["type"] for e in c.events]
    stored = next(i for i, e in enumerate(c.events) if e["type"] == "s2s.item.stored")
    assert "response.output_audio.delta" in kinds[:stored]


async def test_memory_writes_wait_for_every_reply_starting_but_no_longer_than_the_hold():
    gate = s2s.FirstAudioGate(hold_s=0.2)
    ran: list[str] = []
    gate.after(lambda: ran.append("idle"))  # nothing starting: at once
    gate.begin()
    gate.begin()
    gate.after(lambda: ran.append("a"))
    gate.after(lambda: ran.append("b"))
    gate.end()
    assert ran == ["idle"]  # one reply is still starting
    gate.end()
    assert ran == ["idle", "a", "b"]  # in the order they came
    gate.begin()  # a reply that never sends audio (it is cut off) holds the writes for hold_s at most
    done = asyncio.Event()
    gate.after(done.set)
    await asyncio.wait_for(done.wait(), 2)


async def test_a_client_that_vanishes_mid_reply_leaves_what_it_had_played_in_memory(make_server):
    """The connection drops (no close frame) while a reply plays: the reply is kept in memory as a cut one, the
    words the client had played by then, so the user's next session does not find their words unanswered."""
    h = await make_server(fake_llm_token_ms=40, audio_lead_ms=500, fake_tts_ms_per_char=20)
    c = await h.connect(user_id="alex")
    await c.say("My name is Alex and I live in Paris.")
    sent_ms = 0.0
    while sent_ms < 1200:  # sent 500 ms ahead of real time: at least 700 ms of it played
        sent_ms += len(base64.b64decode((await c.wait_for("response.output_audio.delta"))["delta"])) / 48
    c.ws.transport.abort()
    await asyncio.wait_for(h.sessions_ended.get(), 10)  # memory runs on one thread, in order: the session's first
    earlier = (await h.server.memory.load_user("alex", 10)).earlier
    assert [e["role"] for e in earlier] == ["user", "assistant"], earlier
    assert earlier[1]["text"] and "Paris" not in earlier[1]["text"]  # the fake LLM repeats the words: cut before


async def test_a_session_update_that_resends_turn_detection_unchanged_keeps_the_speech_in_progress(make_server,
                                                                                                  speech_dir):
    """SDKs resend the whole session, turn_detection included, with every update: one that changes nothing the
    detector reads does not restart it, so the utterance in progress stays one turn."""
    h = await make_server()
    c = await h.connect()
    await c.update_session(audio={"input": {"format": {"type": "audio/pcm", "rate": 16000}}})
    words = speech("what is the capital of France", speech_dir)
    half = len(words) // 2
    await c.append_audio(words[:half], 16000)
    started = await c.wait_for("input_audio_buffer.speech_started")
    await c.update_session(instructions="Be brief.", audio={"input": {"turn_detection": {"type": "server_vad"}}})
    await c.append_audio(np.concatenate([words[half:], silence(1500)]), 16000)
    committed = await c.wait_for("input_audio_buffer.committed")
    assert committed["item_id"] == started["item_id"]
    assert c.types().count("input_audio_buffer.speech_started") == 1
    # A change the detector reads restarts it: the speech in progress is dropped, and the client is told which
    await c.append_audio(words[:half], 16000)
    started = await c.wait_for("input_audio_buffer.speech_started")
    since = len(c.events)
    await c.update_session(audio={"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 900}}})
    cleared = [e for e in c.events[since:] if e["type"] == "input_audio_buffer.cleared"]  # before session.updated
    assert [e["item_id"] for e in cleared] == [started["item_id"]]



async def test_a_truncate_ends_the_reply_and_its_playback_where_the_client_stopped_playing(make_server):
    """A truncate of the reply still being written cancels it there: its response.done keeps the truncated words,
    not the whole reply; a truncate of a reply still playing (after its response.done) ends its playback, so the
    bot listens at once instead of when its own estimate of the playback runs out."""
    h = await make_server(fake_llm_token_ms=40, audio_lead_ms=500)
    c = await h.connect()
    await c.say("Tell me about the sea.")
    item_id, _ = await receive_audio(c, 300)  # (a client cannot have played more than it got: an error)
    await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=300)
    done = await c.wait_for("response.done")
    truncated = await c.wait_for("conversation.item.truncated")
    assert done["response"]["status"] == "cancelled" and truncated["transcript"] != "You said: Tell me about the sea."
    (assistant,) = [i for i in h.session().items if i.role == "assistant"] or [None]
    assert assistant is None or assistant.text == truncated["transcript"]
    played = await c.turn("And the mountains?")  # the whole reply sent, 500 ms ahead of what was played
    await c.send("conversation.item.truncate", item_id=played["response"]["output"][0]["id"], content_index=0,
                 audio_end_ms=200)
    await c.wait_for("conversation.item.truncated")
    assert h.session().playback_remaining_ms() == 0 and h.session().state == s2s.State.LISTENING


class UnfinishedLLM(s2s.FakeLLM):
    """The fake LLM, except that a reply to words or instructions that trail off ("...") stops after its first
    sentence and goes on writing, silently, until it is cancelled (or `llm_stall_deadline_s`, 10 s, fails it): a
    reply still being written, for as long as a test needs one."""

    name = "test-unfinished"

    async def generate(self, messages, *, max_tokens):
        last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        trails_off = last_user.endswith("...") or messages[-1]["content"].endswith("...")  # (instructions: last)
        async for word in super().generate(messages, max_tokens=max_tokens):
            yield word
            if trails_off and word.endswith("."):
                await asyncio.Event().wait()


def stores_of(client: Client, item_id: str) -> int:
    """How many writes of this item memory acknowledged (s2s.item.stored)."""
    return sum(1 for e in client.events if e["type"] == "s2s.item.stored" and e["item_id"] == item_id)


@pytest.mark.parametrize("token_ms", [0, 100])  # the server's estimate of what played has no words yet / has some
async def test_a_truncate_of_the_reply_being_written_cuts_and_stores_it_once(make_server, token_ms):
    """The client truncates the reply still being written where it stopped playing: the reply ends there, and the
    words heard are what its response.done says, what the LLM's history shows and what memory stores, written
    once. Before, the reply was stored as the server's estimate of the playback had it, then written over with the
    truncate's words (two writes), or, when the estimate had no words yet, never stored at all."""
    h = await make_server(llm="test-unfinished", fake_llm_token_ms=token_ms)  # 100: the clauses 400 ms apart
    c = await h.connect(user_id="ana")
    await c.say("Tell me a story...")
    spoken_ms = 60 * len("You said:" + "Tell me a story.")  # the fake TTS: 60 ms per character of each clause
    item_id, received_ms = await receive_audio(c, spoken_ms)
    assert received_ms == spoken_ms  # all its audio so far: the LLM writes on, silently
    await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=spoken_ms)
    done = await c.wait_for("response.done")
    heard = (await c.wait_for("conversation.item.truncated"))["transcript"]
    assert heard == "You said: Tell me a story."  # all the client had played, far ahead of the server's estimate
    assert done["response"]["status_details"]["reason"] == "client_truncated"
    assert done["response"]["output"][0]["content"][0]["transcript"] == heard
    assert h.session().llm_history() == [{"role": "user", "content": "Tell me a story..."},
                                         {"role": "assistant", "content": heard}]
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == item_id)
    await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=spoken_ms)  # again
    assert (await c.wait_for("conversation.item.truncated"))["transcript"] == heard  # (the estimate is far behind)
    thanks = await c.turn("Thanks")  # memory writes land in order: each of the first reply's came before
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == thanks["response"]["output"][0]["id"])
    assert stores_of(c, item_id) == 1
    earlier = (await h.server.memory.load_user("ana", 10)).earlier
    assert [(e["role"], e["text"]) for e in earlier][:3] == [("user", "Tell me a story..."), ("assistant", heard),
                                                             ("user", "Thanks")]


async def test_a_truncate_of_an_older_reply_still_playing_drops_the_replies_queued_behind_it(make_server):
    """A reply plays; a second one, asked for meanwhile, is queued behind it on the client. The client stops
    playback during the first and truncates it there: the first keeps the words played, and the second, never
    played, is cut to nothing heard (its own conversation.item.truncated at 0 ms) in history and in memory, where
    the LLM sees it as the reply it had to say, as after a barge-in. Playback is over: the bot listens. Before,
    the truncate was refused (item_not_truncatable: only the newest reply) and both replies stayed whole. A client
    that then truncates the second too (the page truncates each item it dropped) changes nothing more."""
    h = await make_server(fake_tts_ms_per_char=200)  # the first reply plays for 14 s: the second comes well before
    c = await h.connect(user_id="ana")
    first = (await c.turn("Hi"))["response"]["output"][0]
    await c.send("response.create")  # (a typed turn would cut the first reply: the page stops it first)
    second = (await c.wait_for("response.done"))["response"]["output"][0]
    session = h.session()
    assert session.last_response.follows is not None  # queued behind the first, which still plays
    first_clause = "You said: Hi."
    await c.send("conversation.item.truncate", item_id=first["id"], content_index=0,
                 audio_end_ms=200 * len("You said:" + "Hi."))  # 200 ms per character of each clause
    cut, dropped = await c.wait_for("conversation.item.truncated"), await c.wait_for("conversation.item.truncated")
    assert (cut["item_id"], cut["transcript"]) == (first["id"], first_clause)
    assert (dropped["item_id"], dropped["audio_end_ms"], dropped["transcript"]) == (second["id"], 0, "")
    assert session.state == s2s.State.LISTENING and session.playback_remaining_ms() == 0
    said = second["content"][0]["transcript"]
    assert [(i.role, i.text, i.unheard) for i in session.items] == [
        ("user", "Hi", ""), ("assistant", first_clause, ""), ("assistant", "", said)]
    assert [m["content"] for m in session.llm_history()] == ["Hi", f"{first_clause}\n{said}"]  # (one message)
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == second["id"] and stores_of(c, second["id"]) == 2)
    earlier = (await h.server.memory.load_user("ana", 10)).earlier
    assert [(e["role"], e["text"]) for e in earlier] == [("user", "Hi"), ("assistant", first_clause),
                                                         ("assistant", "")]
    await c.send("conversation.item.truncate", item_id=second["id"], content_index=0, audio_end_ms=0)
    again = await c.wait_for("conversation.item.truncated")
    assert (again["item_id"], again["transcript"]) == (second["id"], "") and session.items[-1].unheard == said
    assert "error" not in c.types()


async def test_a_reply_in_flight_queued_behind_a_truncated_one_is_cancelled(make_server):
    """The reply still being written while the one before it plays is cancelled when the client truncates that
    one (response.done, client_truncated): the client stopped playback before it, so no more of it is wanted."""
    h = await make_server(llm="test-unfinished", fake_tts_ms_per_char=200)
    c = await h.connect()
    first = (await c.turn("Hi"))["response"]["output"][0]
    await c.send("response.create", response={"instructions": "Tell a story..."})
    item_id, _ = await receive_audio(c, 200)
    assert item_id != first["id"] and h.session().response is not None  # being written, queued behind the first
    await c.send("conversation.item.truncate", item_id=first["id"], content_index=0, audio_end_ms=1000)
    done = await c.wait_for("response.done")
    assert (done["response"]["status"], done["response"]["status_details"]["reason"]) == ("cancelled",
                                                                                           "client_truncated")
    assert done["response"]["output"][0]["content"][0]["transcript"] == ""
    truncated = [await c.wait_for("conversation.item.truncated") for _ in range(2)]
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncated] == [(first["id"], 1000), (item_id, 0)]
    assert [i.role for i in h.session().items] == ["user", "assistant"]  # (nothing of it heard: no item)
    done = await c.turn("Thanks")
    assert done["response"]["status"] == "completed"


async def test_a_truncate_that_names_no_reply_audio_it_may_cut_gets_a_clear_error(make_server):
    """A truncate of a user item, of an unknown item, past the audio sent, or of a reply played whole before the
    newest one started, gets an error naming why; the items stay as they were and the session goes on."""
    h = await make_server(fake_tts_ms_per_char=5)  # replies play in a few hundred ms
    c = await h.connect()
    old = (await c.turn("Hi"))["response"]["output"][0]
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")  # played whole
    new = (await c.turn("Bye"))["response"]["output"][0]
    user = next(i for i in h.session().items if i.role == "user")
    sent_ms = len(audio_of(c, h.session().last_response.id)) / 24
    for item_id, end_ms, code in [(user.id, 0, "item_not_truncatable"), ("item_nope", 0, "item_not_found"),
                                  (new["id"], int(sent_ms) + 50, "invalid_audio_end_ms"),
                                  (old["id"], 0, "item_not_truncatable")]:
        await c.send("conversation.item.truncate", event_id=code, item_id=item_id, content_index=0,
                     audio_end_ms=end_ms)
        error = (await c.wait_for("error"))["error"]
        assert (error["code"], error["event_id"]) == (code, code) and item_id in error["message"], error
    assert [i.text for i in h.session().items if i.role == "assistant"] == [
        old["content"][0]["transcript"], new["content"][0]["transcript"]]
    await c.send("conversation.item.truncate", item_id=new["id"], content_index=0, audio_end_ms=int(sent_ms))
    assert (await c.wait_for("conversation.item.truncated"))["transcript"] == new["content"][0]["transcript"]


async def test_a_reply_to_the_first_user_in_flight_at_a_rename_is_stored_as_theirs(make_server):
    """alice asks; while her reply is written, the client names the user bob (the page's User id setting). The
    reply, which repeats her words, was stored under bob and shown to his next session as his earlier
    conversation: it is alice's (`_item_owner`)."""
    import json

    h = await make_server(fake_llm_token_ms=30)
    alice = await h.connect(user_id="alice")
    await alice.say("My name is Alice and I live in Berlin.")
    await alice.wait_for("response.output_audio.delta")
    await alice.sign_in("bob")
    done = await alice.wait_for("response.done")
    assert "Berlin" in done["response"]["output"][0]["content"][0]["transcript"]
    await alice.wait_for("s2s.item.stored", lambda e: e["role"] == "assistant")
    bob = await h.server.memory.load_user("bob", 10)
    assert "Berlin" not in json.dumps(bob.earlier) and "Alice" not in json.dumps(bob.earlier), bob.earlier
    alice_memory = await h.server.memory.load_user("alice", 10)
    assert "Berlin" in json.dumps(alice_memory.earlier)


async def test_the_first_users_turn_transcribed_at_a_rename_gives_the_second_user_no_facts(make_server):
    """alice's spoken turn is transcribed when the client names the user bob: it was remembered, and its facts
    learnt, as bob's ("name: Alice" in bob's memory)."""
    h = await make_server(fake_asr_latency_ms=800, fake_asr_text="My name is Alice and I live in Berlin.")
    c = await h.connect(user_id="alice")
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.append_audio(np.full(24000, 1000, dtype=np.int16))
    await c.send("input_audio_buffer.commit")
    await c.wait_for("input_audio_buffer.committed")
    await c.sign_in("bob")
    await c.wait_for("response.done")
    facts = h.session().user_memory.fact_lines()
    assert not any("Berlin" in f or "Alice" in f for f in facts), facts


async def test_a_looped_transcript_reaches_the_llm_and_memory_said_once(make_server):
    """An ASR that loops a short request (Whisper base's "Wait, I have a question." three times and cut off, as
    heard over a reply) gives the transcript, the LLM and memory the request said once: the loop made the LLM
    answer "I'm sorry, but I can't assist with that." (review, 2026-12-04)."""
    looped = "Wait, I have a question. Wait, I have a question. Wait, I have a question. Wait, I"
    h = await make_server(fake_asr_text=looped, fake_llm_reply="{user}")  # their words back, closing mark dropped
    c = await h.connect(user_id="alice")
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.append_audio(np.full(24000, 1000, dtype=np.int16))
    await c.send("input_audio_buffer.commit")
    transcribed = await c.wait_for("conversation.item.input_audio_transcription.completed")
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == transcribed["item_id"])
    done = await c.wait_for("response.done")
    assert transcribed["transcript"] == "Wait, I have a question."
    assert done["response"]["output"][0]["content"][0]["transcript"] == "Wait, I have a question"
    earlier = (await h.server.memory.load_user("alice", 10)).earlier
    assert "Wait, I have a question." in str(earlier) and looped not in str(earlier), earlier


async def test_the_state_says_processing_while_a_turn_said_over_a_reply_is_transcribed_after_it_played(make_server):
    """interrupt_response false: the user pushes to talk while the reply still plays, which talks on. Their turn
    is committed and transcribed; `_user_turn` leaves the state at `speaking` (the bot talks on), and when the
    playback ends `_playback_finished` moves it to `listening` while the turn is still being transcribed and
    judged: the client shows "listening" (and the idle timer is armed) although a reply is on its way."""
    h = await make_server(fake_asr_latency_ms=1500, fake_tts_ms_per_char=15)
    c = await h.connect()
    await c.update_session(audio={"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}})
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.turn("Hi")  # about 1.2 s of audio, all sent at once: it plays on
    await c.append_audio(np.full(12000, 1000, dtype=np.int16))
    await c.send("input_audio_buffer.commit")
    committed = await c.wait_for("input_audio_buffer.committed")
    transcribed = await c.wait_for("conversation.item.input_audio_transcription.completed")
    await c.wait_for("response.done")
    between = c.events[c.index(committed):c.index(transcribed)]
    states = [e["state"] for e in between if e["type"] == "s2s.state"]
    assert "listening" not in states, states


async def test_voice_to_voice_counts_the_wait_for_the_reply_still_playing_before_it(make_server):
    """A reply asked for while the one before still plays (response.create right after response.done) is
    heard after that one ends: the client plays what it gets in order. Its voice_to_voice is the time to that
    first audible sound, not to its first byte, which was sent while the other reply still played."""
    h = await make_server(fake_tts_ms_per_char=40)
    c = await h.connect()
    first = await c.turn("Hi")  # about 3 s of audio, sent ahead of its playback
    said_at = time.monotonic()
    audio_ms = 40 * len(first["response"]["output"][0]["content"][0]["transcript"])
    first_audio_at = next(c.arrivals[i] for i, e in enumerate(c.events) if e["type"] == "response.output_audio.delta")
    await c.send("response.create")  # (typed words would cut the reply that plays: a barge-in)
    metrics = await c.wait_for("s2s.metrics", lambda e: e["response_id"] != first["response"]["id"])
    still_playing_ms = audio_ms - 1000 * (said_at - first_audio_at)
    assert still_playing_ms > 1000, still_playing_ms  # the test's premise: the first reply still played
    assert metrics["voice_to_first_byte"] < 500, metrics  # its first byte went at once
    assert metrics["voice_to_voice"] >= still_playing_ms - 300, (metrics, still_playing_ms)


async def test_response_cancel_stops_a_turn_waiting_behind_the_reply_too(make_server):
    """interrupt_response false: the user spoke over the reply (their turn waits for its response.done), then
    pressed Stop. Nothing speaks next: the turn waiting behind the reply is left unanswered, as a turn the Stop
    button caught before its reply started is (its words stay in history, marked unanswered). Before, the
    cancelled reply's response.done let the waiting turn start its own reply at once."""
    h = await make_server(fake_llm_token_ms=100)  # about 2 s of generation: the reply is in flight
    c = await h.connect()
    await c.update_session(audio={"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}})
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.say("Hi")
    await c.wait_for("response.created")
    await c.append_audio(np.full(12000, 1000, dtype=np.int16))  # pressed to talk: the bot talks on
    await c.send("input_audio_buffer.commit")
    await c.wait_for("conversation.item.input_audio_transcription.completed")  # it waits for the reply now
    waiting = h.session()._turn_task
    assert waiting is not None and not waiting.done() and h.session().response is not None
    await c.send("response.cancel")
    done = await c.wait_for("response.done")
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    await asyncio.wait_for(waiting, 10)  # the waiting turn is carried out (a reply it starts is under way)
    session = h.session()
    assert session.response is None and session.last_response.id == done["response"]["id"]
    assert session.state == s2s.State.LISTENING
    spoken = session.items[-1]
    assert spoken.role == "user" and spoken.text == "hello there" and spoken.unanswered


async def test_a_turn_judged_while_the_user_speaks_again_leaves_the_reply_to_the_newer_turn(make_server, speech_dir):
    """The user goes on talking while their turn is judged: no reply starts over them; the newer turn answers
    both, as when they go on talking during the turn's transcription."""
    GatedJudge.judging, GatedJudge.gate = asyncio.Event(), asyncio.Event()
    h = await make_server(judge="test-gated-judge")
    c = await h.connect()
    await spoken_turn(c, speech_dir)
    first = await c.wait_for("input_audio_buffer.committed")
    await GatedJudge.judging.wait()
    GatedJudge.judging.clear()
    await c.append_audio(speech("And one more thing", speech_dir, 24000))  # no silence after: still talking
    await c.wait_for("input_audio_buffer.speech_started")
    GatedJudge.gate.set()
    await c.wait_for("s2s.judgement", lambda e: e["item_id"] == first["item_id"])
    await c.append_audio(silence(1200))
    second = await c.wait_for("input_audio_buffer.committed")
    done = await c.wait_for("response.done")
    assert c.types().count("response.created") == 1 and c.index(second) < c.index(done), c.types()
    assert done["response"]["output"][0]["content"][0]["transcript"].startswith("You said: hello there hello there.")


@pytest.mark.parametrize("during", ["transcription", "judgement", "no response.create"])
async def test_a_turn_the_client_leaves_during_is_still_stored(make_server, during):
    """The client goes away while its last turn is transcribed or judged, or after typing words it never asked
    a reply to: no one is there to answer, but the user said those words, and memory keeps them, as it keeps a
    reply cut off by the client's leaving."""
    GatedJudge.judging, GatedJudge.gate = asyncio.Event(), asyncio.Event()
    h = await make_server(judge="test-gated-judge", fake_asr_latency_ms=300 if during == "transcription" else 0)
    c = await h.connect(user_id="ana")
    if during == "no response.create":
        await c.say("hello there", respond=False)
        await c.wait_for("conversation.item.added")
    else:
        await c.update_session(audio={"input": {"turn_detection": None}})
        await c.append_audio(np.full(12000, 1000, dtype=np.int16))
        await c.send("input_audio_buffer.commit")
        await c.wait_for("input_audio_buffer.committed")
    if during == "judgement":
        await GatedJudge.judging.wait()
    await c.ws.close()
    await asyncio.wait_for(h.sessions_ended.get(), 10)
    await asyncio.gather(*h.server.memory._writes.values(), return_exceptions=True)
    earlier = (await h.server.memory.load_user("ana", 10)).earlier
    assert [(e["role"], e["text"]) for e in earlier] == [("user", "hello there")], earlier


async def test_a_server_that_stops_does_not_wait_for_a_turn_being_transcribed(make_server):
    """The server stops while a turn is transcribed: the turn is cancelled, as every task of a session is, and
    the session ends at once; only a client that leaves gets its last words transcribed to the end."""
    h = await make_server(fake_asr_latency_ms=30000)
    c = await h.connect()
    await c.update_session(audio={"input": {"turn_detection": None}})
    await c.append_audio(np.full(12000, 1000, dtype=np.int16))
    await c.send("input_audio_buffer.commit")
    await c.wait_for("input_audio_buffer.committed")
    started = time.monotonic()
    await h.server.stop(timeout_s=5)
    assert time.monotonic() - started < 3 and not h.sessions_ended.empty()


class HoldingLLM(s2s.FakeLLM):
    """Test double: says one clause, then holds its stream open until it is closed (recorded)."""

    name = "test-server-holding"
    closed: list[list[dict[str, str]]] = []

    async def generate(self, messages, *, max_tokens):
        try:
            yield "Okay, here it is."
            await asyncio.Event().wait()
        finally:
            HoldingLLM.closed.append(messages)


async def test_the_reply_generated_ahead_for_a_turn_the_stop_button_leaves_unanswered_is_dropped(make_server,
                                                                                                  speech_dir):
    """interrupt_response false: the user speaks over the reply and pauses; their reply is generated ahead during
    the silence (`llm_ahead`), and the turn waits for the reply playing. The Stop button cuts that reply and leaves
    the turn unanswered: the reply generated ahead for it is cancelled too, not left generating a reply no one
    will hear (it held the LLM until the user's next pause)."""
    HoldingLLM.closed.clear()
    h = await make_server(llm="test-server-holding")
    c = await h.connect()
    await c.update_session(audio={"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}})
    await c.say("Hi")
    await c.wait_for("response.output_audio.delta")  # the reply's LLM holds: it is in flight
    await c.append_audio(np.concatenate([silence(300), speech(QUESTION, speech_dir, 24000)]))
    await c.append_audio(silence(1200), realtime=True)  # a live silence: the transcript comes within it
    await c.wait_for("input_audio_buffer.committed")
    session = h.session()
    foresight, waiting = session._foresight, session._turn_task
    assert foresight is not None and foresight.ahead is not None and foresight.ahead.task is not None
    await c.send("response.cancel")
    await c.wait_for("response.done")
    await asyncio.wait_for(waiting, 10)
    assert session.items[-1].unanswered
    done, _ = await asyncio.wait({foresight.ahead.task}, timeout=5)
    assert done and foresight.ahead.messages in HoldingLLM.closed


class DeafToShortSoundsASR(s2s.FakeASR):
    """Test double: the fake ASR's words for speech, nothing for a sound under a second (a cough, a "hm")."""

    name = "test-server-deaf-to-short-sounds"

    async def transcribe(self, audio):
        if len(audio) >= s2s.ms_to_samples(1000):
            async for piece in super().transcribe(audio):
                yield piece


@pytest.mark.parametrize("during", ["transcription", "judgement"])
async def test_a_cough_after_a_turn_does_not_leave_it_unanswered(make_server, speech_dir, during):
    """A short sound the VAD takes for speech (a cough) starts while the user's turn is still transcribed or
    judged: the turn leaves its reply to the newer one, which is no words at all. The turn is answered all the
    same, once the sound turns out to be nothing."""
    GatedJudge.judging, GatedJudge.gate = asyncio.Event(), asyncio.Event()
    h = await make_server(asr="test-server-deaf-to-short-sounds", judge="test-gated-judge",
                          fake_asr_latency_ms=800 if during == "transcription" else 0)
    c = await h.connect()
    await spoken_turn(c, speech_dir)
    first = await c.wait_for("input_audio_buffer.committed")
    if during == "judgement":
        await GatedJudge.judging.wait()
        GatedJudge.judging.clear()
    await c.append_audio(speech("huh", speech_dir, 24000)[:int(24000 * 0.35)])  # the cough: still "speaking"
    await c.wait_for("input_audio_buffer.speech_started", lambda e: e["item_id"] != first["item_id"])
    if during == "judgement":
        GatedJudge.gate.set()
        await c.wait_for("s2s.judgement", lambda e: e["item_id"] == first["item_id"])
    else:
        await c.wait_for("conversation.item.input_audio_transcription.completed",
                         lambda e: e["item_id"] == first["item_id"])
    GatedJudge.gate.set()
    await c.append_audio(silence(1200))
    await c.wait_for("input_audio_buffer.committed")  # the cough's turn: no words
    done = await c.wait_for("response.done")
    assert done["response"]["output"][0]["content"][0]["transcript"].startswith("You said: hello there.")


async def test_a_trace_is_readable_by_the_servers_user_only(make_server, tmp_path):
    """`trace_dir` keeps the user's voice and words: its folders are made 0700 and its files 0600 (under the usual
    umask 022 they were 0755 and 0644, readable by every local user)."""
    traces = tmp_path / "traces"
    h = await make_server(trace_dir=str(traces))
    c = await h.connect()
    await c.turn("Hello")
    await c.wait_for("s2s.metrics")  # sent once the turn's trace is on disk
    made = [traces, *traces.rglob("*")]
    assert any(p.name == "turn.json" for p in made)
    assert {oct(p.stat().st_mode & 0o777) for p in made if p.is_dir()} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in made if p.is_file()} == {"0o600"}
