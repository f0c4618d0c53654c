"""A returning user's first turn: how long until the first sound when the LLM must first read their memory.

    python benchmarks/returning_user.py                   # the default models, a server process of its own
    python benchmarks/returning_user.py --delays 0 3      # the first question at once, and 3 s after naming the user
    python benchmarks/returning_user.py --llm-prime-return false --llamacpp-keep-prompts false   # as before both
    python benchmarks/returning_user.py --newcomer 1 --delays 0 --no-restart   # a new user arrives during the read

A server (`s2s_server.py --port 0`, every default plus the options given, memory in a fresh temporary
`data_dir`) hears one conversation typed by a user, which ends. The user comes back `--pause` seconds later
(the server reads their next prompt when a session ends, `llm_prime_return`), to
the same server process, and again after the server was restarted (stopped with SIGTERM and started on the
same `data_dir`: what llama.cpp read is gone, unless it was kept on disk, `llamacpp_keep_prompts`). For each
delay in turn, a new connection names the user (`session.update` with `user_id`: the server loads their
memory and primes the LLM with it) and, after the delay (0: at once, as a typed client; a few seconds: as a
spoken first sentence would take), types "Do you remember my name?"; the next session comes `--pause`
seconds after it ended. Each row gives the time from the question to the first reply audio byte and, from
the server's `s2s.metrics`, the wait for the prime (`llm_prime_wait`) and the prompt tokens the reply's own
call read (`llm_prompt_tokens`). Each turn is sent once the bot is listening again (`s2s.state`), so no reply
is cut. The server's log lines about primes of kept prompts are printed after the table.

`--newcomer S`: S seconds after the user's first session ended (while the server reads their next prompt), a
new user (anonymous: nothing to read at their session's end) connects and types NEWCOMER_QUESTION; their first
audio byte is a row of its own, before the returning user's. `--no-restart`: only the same server. Each row
gives the load average (1 minute) when its question was sent.

    python benchmarks/returning_user.py --talk-on 6 --first-session-only --judge off --proactive false

The first session's turns get a table of their own: each turn's first audio byte and the prompt tokens its
reply read. The user states facts in its first two turns (name and city, then job); `--talk-on N` adds the
first N of TALK_ON after them (more questions, two of them about the user), so the turns after a told
fact show whether the note that tells it keeps llama.cpp's cached prefix (in the code before docs/replies.md's
"Where the note of told facts sits" it moved to just before each new turn, and each reply read the last exchange
again). `--first-session-only`: no
returning sessions, no restart. With `--judge off` every turn gets a plain reply (a turn the judge met with
silence would leave the table waiting), and with `--proactive false` the bot does not speak first between
turns (under load it did, and its words joined the turn's reply); on a loaded CPU add
`--llm-first-token-deadline-s 120`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

import websockets
from common import machine, start_server

FIRST_SESSION = ["Hi, my name is Alex and I live in Lyon.", "I work as a beekeeper.",
                 "What is the capital of Japan?", "Tell me a short joke about bees."]
QUESTION = "Do you remember my name?"
NEWCOMER_QUESTION = "What is the capital of France?"
TALK_ON = ["How many legs does a spider have?", "What should I cook tonight?", "Name a good book for a rainy day.",
           "Do you remember my name?", "What do I do for a living?", "What is two plus two?"]


async def next_event(ws: Any, kind: str, timeout_s: float = 120.0, **match: Any) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if event["type"] == "error":
            raise RuntimeError(f"server error: {event['error']}")
        if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
            return event


async def typed_turn(ws: Any, text: str) -> dict:
    """Type `text`, wait until the reply has played (or failed) and the bot listens again; the turn's measures."""
    sent, load = time.monotonic(), os.getloadavg()[0]
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
    await ws.send(json.dumps({"type": "response.create"}))
    first_audio, words, metrics, failed = None, "", {}, ""
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 120))
        kind = event["type"]
        if kind == "error" and event["error"].get("code") == "response_failed":
            failed = event["error"]["message"]  # a row of its own (before: the LLM's 20 s deadline, under load)
        elif kind == "error":
            raise RuntimeError(f"server error: {event['error']}")
        if kind == "response.output_audio.delta" and first_audio is None:
            first_audio = (time.monotonic() - sent) * 1000
        elif kind == "response.output_audio_transcript.delta":
            words += event["delta"]
        elif kind == "s2s.metrics":
            metrics = event
            if failed:  # the row ends here (a reply that comes later is another response: speaking first)
                return {"first_audio_ms": None, "words": f"(failed: {failed})", "load": load, **metrics}
        elif kind == "s2s.state" and event.get("state") == "listening" and metrics:
            return {"first_audio_ms": first_audio, "words": words, "load": load, **metrics}


async def session(port: int, user: str | None) -> Any:
    """A new connection, as `user` (None: anonymous)."""
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None)
    await next_event(ws, "session.created")
    if user is None:
        return ws
    await ws.send(json.dumps({"type": "session.update", "session": {"s2s": {"user_id": user}}}))
    await next_event(ws, "session.updated")
    return ws


async def returning(port: int, delays: list[float], pause_s: float, where: str) -> list[tuple[str, float, dict]]:
    """One returning session per delay, each `pause_s` after the previous session ended."""
    rows = []
    for delay in delays:
        await asyncio.sleep(pause_s)
        ws = await session(port, "returning-alex")
        await asyncio.sleep(delay)
        turn = await typed_turn(ws, QUESTION)
        await ws.close()
        rows.append((where, delay, turn))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 3.0], metavar="S",
                        help="seconds between naming the user and the question, one returning session each")
    parser.add_argument("--pause", type=float, default=30.0, metavar="S",
                        help="seconds between a session's end and the user's next session (default 30)")
    parser.add_argument("--newcomer", type=float, default=None, metavar="S",
                        help="a new user connects S seconds after the first session ends and types one turn")
    parser.add_argument("--no-restart", action="store_true", help="leave out the sessions after a restart")
    parser.add_argument("--talk-on", type=int, default=0, metavar="N",
                        help=f"the first session goes on with the first N of TALK_ON (0 to {len(TALK_ON)})")
    parser.add_argument("--first-session-only", action="store_true",
                        help="only the first session's table: no returning sessions, no restart")
    args, server_args = parser.parse_known_args()
    if min(args.delays) < 0 or args.pause < 0 or (args.newcomer or 0) < 0:
        parser.error("--delays, --pause, --newcomer: 0 or more seconds")
    if not 0 <= args.talk_on <= len(TALK_ON):
        parser.error(f"--talk-on: 0 to {len(TALK_ON)}")
    first_session = FIRST_SESSION + TALK_ON[:args.talk_on]
    rows, first_rows, logs = [], [], []
    with tempfile.TemporaryDirectory(prefix="s2s-returning-") as data_dir:
        proc, port, log = await start_server("--data-dir", data_dir, *server_args)
        try:
            ws = await session(port, "returning-alex")
            for text in first_session:
                first_rows.append((text, await typed_turn(ws, text)))
                print(f"first session, turn {len(first_rows)}: {first_rows[-1][1].get('first_audio_ms')} ms, "
                      f"{first_rows[-1][1].get('llm_prompt_tokens')} prompt tokens", file=sys.stderr, flush=True)
            await ws.close()
            if args.first_session_only:
                return report(args, server_args, first_rows, rows, logs)
            pause = args.pause
            if args.newcomer is not None:  # during the read of the first user's next prompt
                await asyncio.sleep(args.newcomer)
                started = time.monotonic()
                newcomer = await session(port, None)
                rows.append(("same server, a new user", 0.0, await typed_turn(newcomer, NEWCOMER_QUESTION)))
                await newcomer.close()
                pause = max(0.0, args.pause - args.newcomer - (time.monotonic() - started))
            rows += await returning(port, args.delays[:1], pause, "same server")
            rows += await returning(port, args.delays[1:], args.pause, "same server")
            if not args.no_restart:
                await asyncio.sleep(args.pause)
        finally:
            proc.terminate()
            await proc.wait()
            logs += log
        if args.no_restart:
            return report(args, server_args, first_rows, rows, logs)
        proc, port, log = await start_server("--data-dir", data_dir, *server_args)
        try:
            first = await returning(port, args.delays[:1], 0.0, "restarted")  # at once after the restart
            rows += first + await returning(port, args.delays[1:], args.pause, "restarted")
        finally:
            proc.terminate()
            await proc.wait()
            logs += log
    report(args, server_args, first_rows, rows, logs)


def report(args: argparse.Namespace, server_args: list[str], first_rows: list[tuple[str, dict]],
           rows: list[tuple[str, float, dict]], logs: list[str]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    print(f"\n{machine()}; server options: {' '.join(server_args) or 'none'}\n")
    print("| first session's turn | typed | first audio byte | prompt tokens read by the reply | load (1 min) "
          "| reply |")
    print("|---:|---|---:|---:|---:|---|")
    for n, (text, turn) in enumerate(first_rows, 1):
        tokens = turn.get("llm_prompt_tokens")
        print(f"| {n} | {text!r} | {ms(turn.get('first_audio_ms'))} | {'-' if tokens is None else f'{tokens:.0f}'} | "
              f"{turn['load']:.1f} | {turn['words']!r} |")
    if args.first_session_only:
        return
    newcomer = "" if args.newcomer is None else (
        f"; a new user typed {NEWCOMER_QUESTION!r} {args.newcomer:g} s after the first session ended")
    print(f"\nfirst session: {len(first_rows)} typed turns; then {QUESTION!r}, "
          f"{args.pause:g} s after the previous session ended{newcomer}\n")
    print("| server | question sent, after naming the user | first audio byte | prime wait (`llm_prime_wait`) | "
          "prompt tokens read by the reply | load (1 min) | reply |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for where, delay, turn in rows:
        tokens = turn.get("llm_prompt_tokens")
        print(f"| {where} | {delay:g} s | {ms(turn.get('first_audio_ms'))} | {ms(turn.get('llm_prime_wait'))} | "
              f"{'-' if tokens is None else f'{tokens:.0f}'} | {turn['load']:.1f} | {turn['words']!r} |")
    print()
    for line in logs:
        if "llm llamacpp: primed" in line or "llm llamacpp: prompt" in line or "kept prompt" in line or (
                "next session's prompt" in line):
            print(line.rstrip())



if __name__ == "__main__":
    asyncio.run(main())
