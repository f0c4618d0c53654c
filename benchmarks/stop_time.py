"""How long a server takes to stop (SIGTERM to the process's exit) while the LLM reads a returning user's
next prompt (`llm_prime_return`: the read at a session's end, which only serves the user's next session).

A server process (`s2s_server.py --port 0`, every default plus the options given, memory in a fresh
temporary `data_dir`, `--log-level debug`) hears a named user type one turn; the client closes, and
`--after` seconds later (the read of the user's next prompt is under way: it takes seconds on 2 cores) the
server gets SIGTERM. Each run prints the time from SIGTERM to the exit, the exit code, and from the server's
log: SIGTERM to "stopped", and whether the read had ended before the signal (then it measured nothing).

    python benchmarks/stop_time.py --runs 3
    python benchmarks/stop_time.py --runs 3 -- --llm-prime-return false
    python benchmarks/stop_time.py --runs 3 --compare /work/main/s2s_server.py   # each run: that file, then this

`--compare FILE`: each run stops a server of FILE (another checkout: "before") and then one of this checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path

import websockets
from common import machine, start_server

STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def stamp(line: str) -> float:
    """The unix time of a log line (logging's asctime, local time, to the millisecond)."""
    return datetime.strptime(STAMP.search(line).group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


async def one_run(after_s: float, server_args: list[str], script: Path | None = None) -> dict:
    data = tempfile.mkdtemp(prefix="s2s-stop-")
    proc, port, lines = await start_server("--data-dir", data, "--log-level", "DEBUG", *server_args, script=script)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
            async def until(kind: str) -> None:
                async for message in ws:
                    if json.loads(message)["type"] == kind:
                        return

            await until("session.created")
            await ws.send(json.dumps({"type": "session.update", "session": {"s2s": {"user_id": "sam"}}}))
            await until("session.updated")
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "My name is Sam and I live in Lisbon."}]}}))
            await ws.send(json.dumps({"type": "response.create"}))
            await asyncio.wait_for(until("response.done"), 300)
        await asyncio.sleep(after_s)
        read_done_before = any("primed a user's prompt" in line for line in lines)
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        exited = time.time()
        await proc._s2s_drain  # type: ignore[attr-defined]  # the last lines
        stopped = [stamp(line) for line in lines if line.rstrip().endswith(" stopped")]
        return {"exit_ms": (exited - sent) * 1000, "code": code,
                "stopped_ms": (stopped[0] - sent) * 1000 if stopped else float("nan"),
                "read_done_before": read_done_before,
                "after": [line.rstrip()[:200] for line in lines if STAMP.search(line) and stamp(line) >= sent - 3]}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run(args: argparse.Namespace) -> None:
    print(machine())
    scripts = [("before", args.compare), ("after", None)] if args.compare else [("", None)]
    for n in range(args.runs):
        for label, script in scripts:
            load = os.getloadavg()[0]
            r = await one_run(args.after, args.server_args, script)
            print(f"run {n + 1}{' ' + label if label else ''}: SIGTERM to exit {r['exit_ms']:6.0f} ms (code "
                  f"{r['code']}), to 'stopped' {r['stopped_ms']:6.0f} ms; the read had "
                  f"{'ended' if r['read_done_before'] else 'not ended'} before the signal; load {load:.1f}", flush=True)
            if args.verbose:
                for line in r["after"]:
                    print("   ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--after", type=float, default=1.0, help="seconds from the client's close to SIGTERM")
    parser.add_argument("--compare", type=Path, help="another checkout's s2s_server.py, run first in each run")
    parser.add_argument("--verbose", action="store_true", help="print the server's log lines after the signal")
    parser.add_argument("server_args", nargs="*", help="after --: options for s2s_server.py")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
