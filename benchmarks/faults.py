"""Fault containment under load: 50 concurrent sessions on one server process, one of them faulty.

Every user streams 1 s of push-to-talk audio at real time (20 ms frames, 16 kHz), commits, and waits for
the reply; turn latency is measured at the client from the commit to the first reply audio. The faulty
session's ASR, LLM or TTS raises, hangs past its deadline (2 s here), runs slowly or dies mid-stream
(tests/faulty.py), on every other turn; the turns between show that it recovers. Printed per scenario:
the 49 healthy sessions' latency p50/p99 against the fault-free runs (one before, one after: their
difference is the noise), and what the faulty session saw.

    python benchmarks/faults.py                  # 50 sessions, 10 s per scenario, 14 scenarios (~3 min)
    python benchmarks/faults.py --sessions 20 --seconds 5 --faults llm-hang tts-die
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
import websockets
from common import ROOT, machine, pct, start_server

from tests import faulty

FRAME_MS = 20
PTT_16K = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None},
                     "output": {"format": {"type": "audio/pcm", "rate": 16000}}}}
DEADLINE_S = "2"


@dataclass
class Seen:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    recovered: int = 0  # completed turns of the faulty session after one of its faults


def frames(marker: np.ndarray | None) -> list[str]:
    audio = np.full(16000, 100, dtype=np.int16)  # 1 s at 16 kHz
    if marker is not None:
        audio[:len(marker)] = marker
    step = 16000 * FRAME_MS // 1000
    return [base64.b64encode(audio[i:i + step].astype("<i2").tobytes()).decode() for i in range(0, len(audio), step)]


async def user(port: int, seconds: float, fault: str | None, seen: Seen, start_delay: float) -> None:
    """One session taking turns for `seconds`; `fault` ("stage-kind") on every other turn."""
    await asyncio.sleep(start_delay)
    stage, kind = fault.split("-") if fault else (None, None)
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
        events: asyncio.Queue[dict] = asyncio.Queue()

        async def read() -> None:
            async for message in ws:
                events.put_nowait(json.loads(message))

        reader = asyncio.create_task(read())
        await ws.send(json.dumps({"type": "session.update", "session": PTT_16K}))
        plain, marked = frames(None), frames(faulty.asr_marker(kind) if stage == "asr" else None)
        t_end = time.perf_counter() + seconds
        turn = 0
        while time.perf_counter() < t_end:
            faulty_turn = fault is not None and turn % 2 == 0
            if stage in ("llm", "tts"):
                instructions = f"Be brief. FAULT-{stage}-{kind}" if faulty_turn else "Be brief."
                await ws.send(json.dumps({"type": "session.update", "session": {"instructions": instructions}}))
            t0 = time.perf_counter()
            for n, frame in enumerate(marked if faulty_turn and stage == "asr" else plain):
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": frame}))
                delay = t0 + (n + 1) * FRAME_MS / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # a microphone's pace
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            committed_at, first_audio = time.perf_counter(), None
            while True:  # until this turn ends: response.done, or an ASR failure (no response then)
                ev = await asyncio.wait_for(events.get(), 30)
                if ev["type"] == "response.output_audio.delta" and first_audio is None:
                    first_audio = (time.perf_counter() - committed_at) * 1000
                elif ev["type"] == "error":
                    seen.errors.append(ev["error"]["code"])
                    if ev["error"]["code"] == "asr_failed":
                        seen.statuses.append("asr_failed")
                        break
                elif ev["type"] == "response.done":
                    status = ev["response"]["status"]
                    seen.statuses.append(status)
                    if fault and not faulty_turn and status == "completed" and turn > 0:
                        seen.recovered += 1
                    break
            if first_audio is not None and not faulty_turn:
                seen.latencies_ms.append(first_audio)
            turn += 1
        reader.cancel()


async def scenario(port: int, sessions: int, seconds: float, fault: str | None) -> tuple[Seen, Seen]:
    healthy, bad = Seen(), Seen()
    await asyncio.gather(*(user(port, seconds, fault if i == 0 else None, bad if i == 0 else healthy,
                                i * FRAME_MS / 1000 / sessions) for i in range(sessions)))
    return healthy, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each scenario")
    parser.add_argument("--faults", nargs="+",
                        default=[f"{stage}-{kind}" for stage in ("asr", "llm", "tts") for kind in faulty.FAULTS])
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(ROOT)  # the server process imports the plugin tests.faulty

    async def run_all() -> None:
        proc, port, _ = await start_server(
            "--plugins", "tests.faulty", "--asr", "faulty", "--llm", "faulty", "--tts", "faulty", "--judge", "off",
            "--asr-deadline-s", DEADLINE_S, "--llm-first-token-deadline-s", DEADLINE_S,
            "--llm-stall-deadline-s", DEADLINE_S, "--tts-deadline-s", DEADLINE_S, "--fake-llm-reply", "Sure. {user}.",
            "--max-sessions-per-address", str(args.sessions + 10))
        try:
            print(f"machine: {machine()}")
            print(f"{args.sessions} sessions, {args.seconds:g} s per scenario; turn latency = commit -> first reply "
                  "audio, at the client; deadlines 2 s")
            print("| scenario | healthy p50 / p99 ms (turns) | faulty session: statuses | errors | recovered turns |")
            print("|---|---|---|---|---|")
            for fault in [None, *args.faults, None]:
                healthy, bad = await scenario(port, args.sessions, args.seconds, fault)
                statuses = {s: bad.statuses.count(s) for s in sorted(set(bad.statuses))}
                errors = {e: bad.errors.count(e) for e in sorted(set(bad.errors))}
                print(f"| {fault or 'no fault'} | {pct(healthy.latencies_ms, 50):.1f} / "
                      f"{pct(healthy.latencies_ms, 99):.1f} ({len(healthy.latencies_ms)}) | "
                      f"{statuses if fault else '-'} | {errors if fault else '-'} | {bad.recovered if fault else '-'} |"
                      + ("" if not healthy.errors else f" healthy sessions saw errors: {healthy.errors}"), flush=True)
        finally:
            proc.terminate()
            await proc.wait()

    asyncio.run(run_all())


if __name__ == "__main__":
    main()
