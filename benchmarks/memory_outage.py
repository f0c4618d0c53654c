"""What a user meets when PostgreSQL goes away mid-conversation: the events a client sees, with times.

A real server process (zero-latency fakes, `--judge off`) on a throwaway PostgreSQL cluster
(tests/services.py: initdb in a temporary folder; needs Debian's postgresql). The client types a turn,
the database is frozen (SIGSTOP to every PostgreSQL process) or stopped (`pg_ctl stop -m fast`), the
client types another turn, and after 3 s the database comes back.

    python benchmarks/memory_outage.py freeze
    python benchmarks/memory_outage.py stop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time

import websockets
from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))  # tests/services.py starts the throwaway cluster
from services import PostgresCluster, ServerProcess, postgres_bin_dir  # noqa: E402

SHOWN = {"session.updated", "s2s.judgement", "response.done", "s2s.item.stored", "error", "s2s.blocked"}


async def run(mode: str) -> None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is needed: apt-get install postgresql")
    cluster = PostgresCluster(bin_dir).init()
    server = ServerProcess(ROOT, ["--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off",
                                  "--audio-lead-ms", "0", "--fake-tts-ms-per-char", "1",
                                  "--memory-url", cluster.new_database(), "--data-dir", tempfile.mkdtemp()])
    try:
        await server.start()
        started = time.monotonic()

        def say(line: str) -> None:
            print(f"{(time.monotonic() - started) * 1000:7.0f} ms  {line}", flush=True)

        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/realtime") as ws:
            async def read() -> None:
                async for message in ws:
                    e = json.loads(message)
                    if e["type"] in SHOWN:
                        detail = (e.get("error", {}).get("code") or e.get("role") or e.get("action")
                                  or e.get("response", {}).get("status") or "")
                        say(f"{e['type']:18} {detail} {e.get('error', {}).get('message', '')[:100]}")

            async def typed(text: str) -> None:
                say(f"--- the user types: {text}")
                await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
                await ws.send(json.dumps({"type": "response.create"}))

            reader = asyncio.create_task(read())
            await ws.send(json.dumps({"type": "session.update", "session": {"s2s": {"user_id": "ann"}}}))
            await asyncio.sleep(0.3)
            await typed("My name is Ann.")
            await asyncio.sleep(0.5)
            cluster.freeze() if mode == "freeze" else cluster.stop()
            say(f"--- database {'frozen (SIGSTOP)' if mode == 'freeze' else 'stopped (pg_ctl stop -m fast)'}")
            await typed("I live in Paris.")
            await asyncio.sleep(3)
            cluster.thaw() if mode == "freeze" else cluster.start()
            say("--- database back")
            await asyncio.sleep(5)
            reader.cancel()
    finally:
        await server.stop()
        cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["freeze", "stop"])
    args = parser.parse_args()
    print(f"machine: {machine()}; database {args.mode}")
    asyncio.run(run(args.mode))


if __name__ == "__main__":
    main()
