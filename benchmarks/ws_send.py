"""The server's CPU per event sent: websockets' `Connection.send` against the server's `send_at_once` (websockets'
public `broadcast` on the one connection, while it is open and its write buffer empty).

A websockets server sends the same small server event (a transcript delta, 220 bytes of JSON, as orjson's
bytes in a text frame) `--events` times per round, both ways in interleaved rounds, to a client in another
process that reads everything (its CPU is not counted); each figure is the server thread's CPU per event,
least and median over the rounds. The loop yields to the event loop every 16 events (so the reader's
wakeups interleave as they would in a server); a `send_at_once` that finds the buffer not empty falls back
to `send`, and the fallbacks are counted and printed.

    python benchmarks/ws_send.py
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from typing import Any

import orjson
import websockets
from common import ROOT  # noqa: F401  (puts the repository on sys.path)
from websockets.asyncio.server import serve

import s2s_server as s2s

EVENT = orjson.dumps(s2s.server_event("response.output_audio_transcript.delta", response_id=s2s.new_id("resp"),
                                      item_id=s2s.new_id("item"), output_index=0, content_index=0, delta="Sure."))


def reader(port: int) -> None:
    async def main() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
            async for _ in ws:
                pass

    asyncio.run(main())


async def measure(rounds: int, events: int) -> dict[str, list[float]]:
    """Server CPU per event (us) for each way, one figure per round; "fallbacks": `send_at_once` calls that
    found the buffer not empty and used `send` (their cost is in the `send_at_once` column)."""
    us: dict[str, list[float]] = {"send": [], "send_at_once": []}
    fallbacks = [0]
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        try:
            for _ in range(rounds):
                for how in us:
                    await asyncio.sleep(0.05)  # the client catches up: every round starts with an empty buffer
                    started = time.thread_time()
                    for i in range(events):
                        if how == "send_at_once" and s2s.GuardedConnection.send_at_once(ws, EVENT):
                            pass
                        else:
                            fallbacks[0] += how == "send_at_once"
                            await ws.send(EVENT, text=True)
                        if i % 16 == 0:
                            await asyncio.sleep(0)
                    us[how].append((time.thread_time() - started) / events * 1e6)
        finally:
            done.set()  # a handler that failed must not leave the run waiting

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        client = multiprocessing.get_context("spawn").Process(target=reader, args=(port,), daemon=True)
        client.start()
        await done.wait()
    client.kill()
    return {**us, "fallbacks": fallbacks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=2000, help="events per round and way")
    args = parser.parse_args()
    measured = asyncio.run(measure(args.rounds, args.events))
    fallbacks = measured.pop("fallbacks")[0]
    for how, values in measured.items():
        print(f"{how:>12}: {min(values):.2f} us least, {statistics.median(values):.2f} us median of server CPU per "
              f"event ({len(EVENT)} bytes; {args.rounds} rounds of {args.events}; load average "
              f"{os.getloadavg()[0]:.1f})")
    print(f"send_at_once fell back to send {fallbacks:.0f} times of {args.rounds * args.events}")


if __name__ == "__main__":
    main()
