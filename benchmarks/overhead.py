"""The server's own overhead, measured with zero-latency fakes over real WebSockets in real time.

Each simulated user streams 20 ms microphone frames at real-time pace: an utterance, a silence that ends
the turn, then the next utterance, which cuts the bot off while its (slowly streaming) reply is still being
generated. Measured at the client, from event arrival times:
  end-of-turn:  input_audio_buffer.speech_stopped -> first response.output_audio.delta
  barge-in:     input_audio_buffer.speech_started -> response.done (cancelled)
The fakes take zero time (the fake LLM's first word ends a clause at once), so these are pure server
overhead plus loopback. Input frames dropped = append events sent by clients - append events the
server's sessions handled (from their close log lines).

    python benchmarks/overhead.py                       # 1 and 100 sessions, 30 s each
    python benchmarks/overhead.py --sessions 1 10 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import time

import numpy as np
import websockets
from common import machine, pct, speech, start_server

RATE_HZ = 24000
FRAME_MS = 20
REPLY = "Sure. " + " ".join(["Here is a long and thoughtful answer that keeps going for a while"] * 6) + "."


async def user(port: int, utterance: np.ndarray, seconds: float, eot: list[float], barge: list[float],
               sent_ms: list[float], start_delay: float) -> None:
    await asyncio.sleep(start_delay)  # spread the sessions' frame clocks over one frame period
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
        marks: dict[str, float] = {}

        async def read() -> None:
            async for message in ws:
                ev = json.loads(message)
                t, kind = time.perf_counter(), ev["type"]
                if kind == "input_audio_buffer.speech_stopped":
                    marks["stopped"] = t
                elif kind == "response.output_audio.delta" and "stopped" in marks:
                    eot.append((t - marks.pop("stopped")) * 1000)
                elif kind == "input_audio_buffer.speech_started":
                    marks["started"] = t
                elif kind == "response.done" and ev["response"]["status"] == "cancelled" and "started" in marks:
                    barge.append((t - marks.pop("started")) * 1000)

        reader = asyncio.create_task(read())
        silence = np.zeros(int(RATE_HZ * 0.9), dtype=np.int16)
        loop_audio = np.concatenate([utterance, silence])
        step = RATE_HZ * FRAME_MS // 1000
        frames = [base64.b64encode(loop_audio[i:i + step].astype("<i2").tobytes()).decode()
                  for i in range(0, len(loop_audio) - step + 1, step)]
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": frames[n % len(frames)]}))
            n += 1
            delay = t0 + n * FRAME_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of a microphone
        sent_ms.append(n * FRAME_MS)
        reader.cancel()


async def run(sessions: int, seconds: float, utterance: np.ndarray) -> dict[str, float]:
    proc, port, log_lines = await start_server(
        "--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off", "--fake-llm-token-ms", "60",
        "--fake-llm-reply", REPLY, "--max-sessions", str(sessions + 10),
        "--max-sessions-per-address", str(sessions + 10), "--asr-speculative-ms", "0")
    eot: list[float] = []
    barge: list[float] = []
    sent: list[float] = []
    try:
        await asyncio.gather(*(user(port, utterance, seconds, eot, barge, sent, i * FRAME_MS / 1000 / sessions)
                               for i in range(sessions)))
        for _ in range(200):  # let the server log every session's close
            if sum("closed after" in line for line in log_lines) >= sessions:
                break
            await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        await proc.wait()
    received = sum(int(m) for line in log_lines for m in re.findall(r"audio_frames_in=(\d+)", line))
    return {"sessions": sessions, "eot_n": len(eot), "eot_p50": pct(eot, 50), "eot_p99": pct(eot, 99),
            "barge_n": len(barge), "barge_p50": pct(barge, 50), "barge_p99": pct(barge, 99),
            "frames_sent": sum(sent) / FRAME_MS, "frames_dropped": sum(sent) / FRAME_MS - received}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 100], help="concurrent users per run")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    args = parser.parse_args()
    utterance = speech("Tell me something interesting about the ocean, please.", RATE_HZ)
    print(f"machine: {machine()}")
    print("| sessions | end-of-turn -> first audio p50 / p99 (n) | barge-in -> cancelled done p50 / p99 (n) "
          "| input frames dropped |")
    print("|---|---|---|---|")
    for sessions in args.sessions:
        r = asyncio.run(run(sessions, args.seconds, utterance))
        print(f"| {sessions} | {r['eot_p50']:.1f} / {r['eot_p99']:.1f} ms ({r['eot_n']}) "
              f"| {r['barge_p50']:.1f} / {r['barge_p99']:.1f} ms ({r['barge_n']}) "
              f"| {r['frames_dropped']:.0f} of {r['frames_sent']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
