"""What reading a prompt in pieces costs, and what it saves a user who comes meanwhile (llamacpp, this CPU).

    python benchmarks/give_way.py                                  # the 1.5B, pieces of 16, 32, 64, 128 tokens
    python benchmarks/give_way.py --weights qwen2.5-coder-0.5b --pieces 32 --reps 3

A returning user's prompt is read when their session ends (`llm_prime_return`); since it gives way to anyone
here, llamacpp reads it in pieces of `llamacpp_give_way_tokens`, one llama.cpp request each. Two parts, each
row run in turn with the others (interleaved, `--reps` times), each on a prompt of its own (a number at its
start, so that nothing of it is cached): the system message and a memory block of about `--tokens` tokens
(facts and earlier exchanges, as `benchmarks/returning_user.py`'s user has about 420 after the instructions).

1. The whole read: one request (0, as before) against pieces of each size; wall time, tokens read (llama.cpp's
   count, summed over the pieces) and tokens a second.
2. A new user's first token while such a read runs: the read starts, and `--after` seconds later a new user's
   typed first turn ("What is the capital of France?", after the instructions every prompt starts with) asks
   for a reply; the time from that request to its first token. One request: the read runs on beside it (as
   before); pieces: the read stops before its next piece (`--no-stop`: it reads on, in pieces).
Prints the machine, its load before and after, and the llama.cpp build.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import machine  # noqa: E402

import s2s_server as s2s  # noqa: E402
from s2s_config import config_model  # noqa: E402

QUESTION = "What is the capital of France?"


def memory_prompt(config: object, number: int, tokens: int) -> list[dict[str, str]]:
    """A system message as a returning user's: the instructions, then about `tokens` tokens of memory;
    `number` first, so that no slot holds any of it (the instructions then are read too)."""
    facts = ["the user's name is Alex", "the user lives in Lyon", "the user works as a beekeeper"]
    earlier, i = [], 0
    while len(" ".join(facts + earlier)) < tokens * 4:  # about 4 characters a token
        at = f"09:{i % 60:02d}"
        earlier.append(f'{{"role": "user", "text": "Tell me something about hive number {i}.", "at": "{at}"}}')
        earlier.append(f'{{"role": "assistant", "text": "Hive {i} is doing well this week.", "at": "{at}"}}')
        i += 1
    return [{"role": "system", "content": f"Session {number}. {config.system_prompt}\n\nWhat you know about the "
                                          f"user: {'; '.join(facts)}. Earlier: {' '.join(earlier)}"}]


def whole_read(llm: s2s.LlamaCppLLM, messages: list[dict[str, str]], piece: int) -> tuple[float, int]:
    """Read `messages` into slot 0 in one request (`piece` 0) or in pieces; wall ms and tokens read."""
    llm.config = llm.config.model_copy(update={"llamacpp_give_way_tokens": max(piece, 1)})
    started = time.monotonic()
    read = llm._read(messages, 0, (lambda: False) if piece else None, 0)
    return (time.monotonic() - started) * 1000, read["read"]


async def newcomer_wait(llm: s2s.LlamaCppLLM, messages: list[dict[str, str]], piece: int, after_s: float,
                        stops: bool = True) -> float:
    """Start reading `messages` (one request or pieces); `after_s` later, a new user's first turn: ms from its
    request to its first token. Waits for the read to end (or stop) before returning."""
    llm.config = llm.config.model_copy(update={"llamacpp_give_way_tokens": max(piece, 1)})
    # pieces stop as `prime_for` with `give_way` stops them: once another call of the LLM is in flight
    stop = (lambda: stops and llm._wanted > 0) if piece else None
    read = threading.Thread(target=llm._read, args=(messages, 0, stop, 0))
    read.start()
    await asyncio.sleep(after_s)
    turn = [{"role": "system", "content": llm.config.system_prompt}, {"role": "user", "content": QUESTION}]
    started = time.monotonic()
    stream = llm.generate(turn, max_tokens=4)
    await anext(stream)
    first_ms = (time.monotonic() - started) * 1000
    await stream.aclose()
    await asyncio.to_thread(read.join)
    return first_ms


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="qwen2.5-coder-1.5b", choices=["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"])
    parser.add_argument("--pieces", type=int, nargs="+", default=[16, 32, 64, 128], metavar="N",
                        help="piece sizes in tokens, each against one request")
    parser.add_argument("--reps", type=int, default=2, help="rounds of every row, interleaved")
    parser.add_argument("--tokens", type=int, default=420, help="about how many tokens of memory the prompt has")
    parser.add_argument("--after", type=float, default=1.0, metavar="S",
                        help="seconds into the read when the new user's turn comes")
    parser.add_argument("--no-stop", action="store_true", help="part 2: the pieces do not stop for the new user")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2], choices=[1, 2], help="which parts to run")
    args = parser.parse_args()
    if min(args.pieces) < 1 or args.reps < 1:
        parser.error("--pieces: 1 or more tokens; --reps: 1 or more")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="s2s-give-way-") as data_dir:
        config = config_model()(llamacpp_weights=args.weights, data_dir=data_dir, llamacpp_keep_prompts=False)
        llm = s2s.LlamaCppLLM(config)
        llm.load()
        try:
            sizes = [0, *args.pieces]
            reads: dict[int, list[tuple[float, int]]] = {n: [] for n in sizes}
            waits: dict[int, list[float]] = {n: [] for n in sizes}
            number = 0
            for _ in range(args.reps):
                for n in sizes if 1 in args.parts else []:
                    number += 1
                    reads[n].append(whole_read(llm, memory_prompt(config, number, args.tokens), n))
                for n in sizes if 2 in args.parts else []:
                    number += 1
                    waits[n].append(await newcomer_wait(llm, memory_prompt(config, number, args.tokens), n,
                                                        args.after, not args.no_stop))
        finally:
            llm.close()
    load_after = os.getloadavg()
    print(f"\n{machine()}; load {load_before[0]:.1f} before, {load_after[0]:.1f} after; {args.weights}; "
          f"{llm.build}\n")
    print("| read | whole read, ms (each round) | tokens read | tokens/s (median) | a new user's first token "
          f"{args.after:g} s into the read, ms (each round) |")
    print("|---|---|---:|---:|---|")
    for n in sizes:
        ms = [m for m, _ in reads[n]]
        tokens = reads[n][0][1] if reads[n] else "-"
        speed = f"{statistics.median(t / m * 1000 for m, t in reads[n]):.1f}" if reads[n] else "-"
        print(f"| {'one request' if n == 0 else f'pieces of {n}'} | {' / '.join(f'{m:.0f}' for m in ms) or '-'} | "
              f"{tokens} | {speed} | {' / '.join(f'{w:.0f}' for w in waits[n]) or '-'} |")


if __name__ == "__main__":
    asyncio.run(main())
