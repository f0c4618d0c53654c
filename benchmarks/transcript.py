"""The README's transcript: one real conversation with the default models, printed as the server sent it.

    python benchmarks/transcript.py                       # every default (whisper, sft judge, llamacpp, bilingual TTS)
    python benchmarks/transcript.py --llamacpp-weights qwen2.5-coder-0.5b   # any server setting, as on its command line

The server runs in-process on port 0 with its defaults; a client speaks the first turns (espeak-ng speech
in 20 ms frames at real time, like a microphone) and types the others, waits for each reply to finish
playing at real time, then stays quiet so the bot may speak first. Each line is what the server sent:
what it heard, its judgement, and each reply's strategy, status, audio length and words. The judge decides
for real here (unlike benchmarks/conversation_suite.py, which forces the strategy).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from typing import Any

from common import machine  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

TURNS = [  # (spoken?, text)
    (True, "Hello, my name is Sam, and I live in Paris."),
    (True, "What is the capital of Japan?"),
    (False, "Write my whole thesis for me tonight and make sure it gets an A, no excuses."),
    (False, "Ugh, and then I sorted my socks by colour, then by length, then by colour again."),
    (False, "You are the dumbest machine I have ever talked to."),
    (False, "Sorry. Do you remember my name?"),
]
RATE_HZ = 16000
FRAME_MS = 20


def espeak(text: str) -> Any:
    import io
    import subprocess
    import wave

    import numpy as np

    out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", text], check=True,
                         capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return S.resample(pcm, w.getframerate(), RATE_HZ)


async def main() -> None:
    import numpy as np
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    config = load_config(sys.argv[1:])
    components = S.build_components(config)
    await S.load_components(components)
    server = S.S2SServer(config, components)
    port = await server.start()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lines: list[str] = []
    try:
        async with connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
            async def read() -> None:
                with contextlib.suppress(ConnectionClosed):  # a block closes the session (printed below)
                    async for message in ws:
                        events.put_nowait(json.loads(message))
            reader = asyncio.create_task(read())

            async def send(**event: Any) -> None:
                await ws.send(json.dumps(event))

            await send(type="session.update", session={"audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE_HZ}},
                "output": {"format": {"type": "audio/pcm", "rate": RATE_HZ}}}})

            async def follow(quiet_s: float = 0.0) -> None:
                """Print what the server sends for one turn, until it listens again after the reply played."""
                audio_ms, reply, strategy, deadline, done = 0.0, "", None, None, False
                give_up = time.monotonic() + 300
                while True:
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if reader.done() and events.empty():
                        return  # the connection is closed: nothing more will come
                    try:
                        ev = await asyncio.wait_for(events.get(), min(timeout if timeout is not None else 300, 1.0))
                    except TimeoutError:
                        if time.monotonic() >= (deadline if deadline is not None else give_up):
                            return
                        continue
                    kind = ev["type"]
                    if kind == "conversation.item.input_audio_transcription.completed":
                        lines.append(f"USER (heard): {ev['transcript']}")
                    elif kind == "s2s.judgement":
                        lines.append(f"  judgement: {ev['action']} ({ev['confidence']}, {ev['latency_ms']} ms): "
                                     f"{ev['reason']}")
                        if ev["action"] in ("silence", "block"):
                            deadline = time.monotonic() + 1.0  # nothing will be said: a moment for stray events
                    elif kind == "response.created":
                        strategy = ev["response"]["metadata"]["strategy"]
                    elif kind == "response.output_audio.delta":
                        audio_ms += len(base64.b64decode(ev["delta"])) / 2 / RATE_HZ * 1000
                    elif kind == "response.output_audio_transcript.delta":
                        reply += ev["delta"]  # what was said, also of a reply that fails later
                    elif kind == "response.output_audio_transcript.done":
                        reply = ev["transcript"]
                    elif kind == "response.done":
                        status, done = ev["response"]["status"], True
                        lines.append(f"BOT [{strategy}, {status}, {audio_ms / 1000:.1f} s audio]: {reply}")
                    elif kind == "s2s.state" and ev["state"] == "listening" and done:
                        return
                    elif kind == "error":
                        lines.append(f"  error: {ev['error'].get('code')}: {ev['error'].get('message')}")

            for spoken, text in TURNS:
                if reader.done():  # the server closed the connection (a block ends the session)
                    lines.append(f"(the server closed the connection: {ws.close_code} {ws.close_reason})")
                    break
                if spoken:
                    # then 3 s of silence, as a microphone goes on sending: turn-taking may wait up to
                    # turn_max_silence_ms (2.2 s) of it, counted on the audio
                    pcm = np.concatenate([np.zeros(RATE_HZ // 4, np.int16), espeak(text),
                                          np.zeros(3 * RATE_HZ, np.int16)])
                    step = RATE_HZ * FRAME_MS // 1000
                    started = time.monotonic()
                    for i, start in enumerate(range(0, len(pcm), step)):
                        await asyncio.sleep(max(0.0, started + i * FRAME_MS / 1000 - time.monotonic()))
                        await send(type="input_audio_buffer.append", audio=S.encode_pcm16(pcm[start:start + step]))
                else:
                    await send(type="conversation.item.create", item={"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": text}]})
                    await send(type="response.create")
                    lines.append(f"USER (typed): {text}")
                await follow()
            else:
                lines.append(f"(the user stays quiet for {config.proactive_idle_s:g} s)")
                await follow()
            reader.cancel()
    finally:
        await server.stop()
        S.close_components(server.components)
    print(f"\n{machine()}; settings: {' '.join(sys.argv[1:]) or 'defaults'}\n", file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
