"""Soak: N concurrent real-time sessions with the fakes for D minutes, on one server process.

Each simulated user streams 20 ms microphone frames at real-time pace (as in benchmarks/overhead.py): an
utterance, a silence that ends the turn, then the next utterance, which cuts the bot off while its slowly
streaming reply is still being generated. Printed at the end:
  overhead:        end-of-turn (speech_stopped -> first reply audio) and barge-in (speech_started ->
                   cancelled response.done) p50 / p99, at the client, over the whole run
  frames dropped:  appends sent - appends the server handled (its sessions' close lines), plus appends
                   refused with an error (there should be none: real time is within every limit)
  errors:          every `error` event the clients saw, by code
  memory:          the server's resident set (VmRSS) after the first minute and at the end, and the growth
Every 30 s a progress line shows the RSS and the turns so far. The soak loads both cores of a small
machine: the header prints the load average before it starts, so a busy machine is visible.

    python benchmarks/soak.py                      # 100 sessions for 10 minutes
    python benchmarks/soak.py --sessions 20 --minutes 1
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import websockets
from common import machine, pct, speech, start_server

RATE_HZ = 24000
FRAME_MS = 20
REPLY = "Sure. " + " ".join(["Here is a long and thoughtful answer that keeps going for a while"] * 6) + "."


class Totals:
    def __init__(self) -> None:
        self.eot: list[float] = []
        self.barge: list[float] = []
        self.frames_sent = 0
        self.errors: Counter[str] = Counter()


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


async def user(port: int, frames: list[str], seconds: float, totals: Totals, start_delay: float) -> None:
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
                    totals.eot.append((t - marks.pop("stopped")) * 1000)
                elif kind == "input_audio_buffer.speech_started":
                    marks["started"] = t
                elif kind == "response.done" and ev["response"]["status"] == "cancelled" and "started" in marks:
                    totals.barge.append((t - marks.pop("started")) * 1000)
                elif kind == "error":
                    totals.errors[ev["error"]["code"]] += 1

        reader = asyncio.create_task(read())
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": frames[n % len(frames)]}))
            n += 1
            delay = t0 + n * FRAME_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of a microphone
        totals.frames_sent += n
        reader.cancel()


async def soak(sessions: int, minutes: float, utterance: np.ndarray) -> None:
    proc, port, log_lines = await start_server(
        "--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off", "--fake-llm-token-ms", "60",
        "--fake-llm-reply", REPLY, "--max-sessions", str(sessions + 10), "--max-sessions-per-address",
        str(sessions + 10), "--asr-speculative-ms", "0")
    loop_audio = np.concatenate([utterance, np.zeros(int(RATE_HZ * 0.9), dtype=np.int16)])
    step = RATE_HZ * FRAME_MS // 1000
    frames = [base64.b64encode(loop_audio[i:i + step].astype("<i2").tobytes()).decode()
              for i in range(0, len(loop_audio) - step + 1, step)]
    totals = Totals()
    seconds = minutes * 60
    rss_start = rss_kib(proc.pid)
    samples: list[tuple[float, int]] = []

    async def watch() -> None:
        started = time.perf_counter()
        while True:
            await asyncio.sleep(10)
            elapsed = time.perf_counter() - started
            samples.append((elapsed, rss_kib(proc.pid)))
            if len(samples) % 3 == 0:
                print(f"  {elapsed:4.0f} s: rss {samples[-1][1] / 1024:.1f} MiB, turns {len(totals.eot)}, "
                      f"barge-ins {len(totals.barge)}, errors {sum(totals.errors.values())}", flush=True)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(user(port, frames, seconds, totals, i * FRAME_MS / 1000 / sessions)
                               for i in range(sessions)))
        for _ in range(200):  # let the server log every session's close
            if sum("closed after" in line for line in log_lines) >= sessions:
                break
            await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
        rss_end = rss_kib(proc.pid)
        proc.terminate()
        await proc.wait()
    received = sum(int(m) for line in log_lines for m in re.findall(r"audio_frames_in=(\d+)", line))
    refused = totals.errors["audio_rate_exceeded"]
    warm = next((rss for t, rss in samples if t >= 60), samples[0][1] if samples else rss_start)
    print(f"overhead: end-of-turn -> first audio p50 {pct(totals.eot, 50):.1f} ms, p99 {pct(totals.eot, 99):.1f} ms "
          f"({len(totals.eot)} turns); barge-in -> cancelled done p50 {pct(totals.barge, 50):.1f} ms, "
          f"p99 {pct(totals.barge, 99):.1f} ms ({len(totals.barge)})")
    print(f"frames dropped: {totals.frames_sent - received + refused} of {totals.frames_sent} "
          f"(not handled {totals.frames_sent - received}, refused {refused})")
    print(f"errors seen by clients: {dict(totals.errors) or 'none'}")
    print(f"memory: rss at start {rss_start / 1024:.1f} MiB, after the first minute {warm / 1024:.1f} MiB, "
          f"at the end {rss_end / 1024:.1f} MiB: growth {100 * (rss_end - warm) / warm:+.1f} % "
          f"(max {max((r for _, r in samples), default=rss_end) / 1024:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    utterance = speech("Tell me something interesting about the ocean, please.", RATE_HZ)
    load = os.getloadavg()
    print(f"machine: {machine()}")
    print(f"load average before the soak: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({'other work was running' if load[0] > 0.5 else 'idle'})")
    print(f"{args.sessions} sessions, real time, fakes, {args.minutes:g} min")
    asyncio.run(soak(args.sessions, args.minutes, utterance))


if __name__ == "__main__":
    main()
