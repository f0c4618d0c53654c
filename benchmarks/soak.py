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
import os
import re
import time
from pathlib import Path

import numpy as np
from common import (
    FRAME_MS,
    RATE_HZ,
    Totals,
    fake_server_args,
    frames_handled,
    machine,
    mic_frames,
    pct,
    realtime_user,
    speech,
    start_server,
    wait_for_closes,
)


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


async def soak(sessions: int, minutes: float, utterance: np.ndarray) -> None:
    proc, port, log_lines = await start_server(*fake_server_args(sessions))
    frames = mic_frames(utterance)
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
        await asyncio.gather(*(realtime_user(port, frames, seconds, totals, i * FRAME_MS / 1000 / sessions)
                               for i in range(sessions)))
        await wait_for_closes(log_lines, sessions)
    finally:
        watcher.cancel()
        rss_end = rss_kib(proc.pid)
        proc.terminate()
        await proc.wait()
    received = frames_handled(log_lines)
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
