"""Long prompts and the default LLM (llamacpp, the packaged 1.5B) on this CPU.

    python benchmarks/long_prompts.py fit    # the prompts a session builds, counted by llama.cpp, against its slot
    python benchmarks/long_prompts.py read   # how long llama.cpp takes to read 128 .. 2048 new prompt tokens

fit: a server in this process (fake ASR and TTS, no judge) whose LLM is the default llamacpp one, except that a
reply does not read its prompt: it counts the prompt's tokens with llama.cpp's own chat template and tokenizer
(`/apply-template`, `/tokenize`) and answers "Okay.". Each case is a session that pushes one part of the prompt
to its limit (20,000 characters of instructions, English, digits or Chinese; a response.create's instructions;
a returning user's memory beside a long conversation; long typed messages; digits, which the estimate counts
about right, where English prose it counts about a third high); printed per case, the
largest prompt of its replies in llama.cpp's tokens, plus the reply's room (`llm_max_tokens`), against the slot
(`llamacpp_context_tokens`): over it, llama.cpp refuses the request.

read: llama.cpp's prompt time (`timings.prompt_ms`) for n new tokens after the cached system prompt, for n in
128 .. 2048, of words and of digits, two rounds each, with the load average: what a reply to a long typed message
waits for its first token, and what one prompt step (`llamacpp_batch_tokens`, 128) takes, which the first-token
deadline (`llm_first_token_deadline_s`) must exceed: llama.cpp reports each step, and each report starts that
deadline again (`LLM.generate_reading`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import websockets
from common import ROOT, machine  # noqa: F401  (puts the repository on sys.path)

import s2s_server as s2s
from s2s_config import validate_config

PROMPTS: list[int] = []  # the counted prompt tokens of every reply in the case running


class CountingLLM(s2s.LlamaCppLLM):
    """The default LLM, except that a reply counts its prompt (llama.cpp's template and tokenizer) instead of
    reading it."""

    name = "bench-counting"

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> Any:
        PROMPTS.append(len(await asyncio.to_thread(self._prompt_tokens, messages)))
        yield "Okay."

    def prime(self, messages: list[dict[str, str]], tokens: list[int] | None = None) -> None:
        pass  # nothing is read


async def turn(ws: Any, text: str, instructions: str | None = None) -> str:
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
    await ws.send(json.dumps({"type": "response.create", **({"response": {"instructions": instructions}}
                                                             if instructions else {})}))
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == "response.done":
            return str(event["response"]["status"])


async def session(port: int, user_id: str | None = None, instructions: str | None = None) -> Any:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None)
    while json.loads(await ws.recv())["type"] != "session.created":
        pass
    if user_id or instructions:
        await ws.send(json.dumps({"type": "session.update", "session": {
            **({"instructions": instructions} if instructions else {}),
            **({"s2s": {"user_id": user_id}} if user_id else {})}}))
        while json.loads(await ws.recv())["type"] != "session.updated":
            pass
    return ws


async def fit() -> None:
    config = validate_config({"asr": "fake", "tts": "fake", "judge": "off", "llm": "bench-counting", "port": 0,
                              "data_dir": f"/tmp/s2s-long-prompts-{os.getpid()}", "llamacpp_keep_prompts": False,
                              "memory_summary_every_items": 0})
    server, port = await s2s_serve(config)
    slot, reply = config.llamacpp_context_tokens, config.llm_max_tokens
    english = ("You sell garden tools; speak like a gardener. " + "Our shop opens at nine and closes at six. " * 480)
    cases: dict[str, Any] = {
        "instructions: 20,000 characters of English": dict(instructions=english[:20000]),
        "instructions: 20,000 characters of digits": dict(instructions=("1234567890 " * 1819)[:20000]),
        "instructions: 20,000 characters of Chinese": dict(
            instructions=("我们的商店九点开门，六点关门。" * 1334)[:20000]),
        "a response's instructions: 20,000 characters": dict(response=("Answer as a pirate would. " * 800)[:20000]),
        "long typed messages of digits (19,800 characters each)": dict(texts=["1234567890 " * 1800] * 3),
        "a returning user's memory and a long conversation": dict(user="max"),
    }
    try:
        for case, how in cases.items():
            PROMPTS.clear()
            statuses = []
            if how.get("user"):  # an earlier session: facts, and long items for the memory block's earlier part
                ws = await session(port, user_id=how["user"])
                await turn(ws, "My name is Max, I live in Leeds and I work as a nurse.")
                for n in range(4):
                    await turn(ws, f"My numbers {n}: " + "1234567890 " * 100)
                await asyncio.sleep(1)  # its items stored
                await ws.close()
                PROMPTS.clear()
            ws = await session(port, user_id=how.get("user"), instructions=how.get("instructions"))
            texts = how.get("texts") or [f"Page {n}: " + "1234567890 " * 66 for n in range(8)]  # 729 tokens each
            for text in texts:
                statuses.append(await turn(ws, text, how.get("response")))
            await ws.close()
            print(f"{case}: largest prompt {max(PROMPTS)} tokens + reply {reply} = {max(PROMPTS) + reply} of "
                  f"{slot} ({'fits' if max(PROMPTS) + reply <= slot else 'OVER'}); replies {statuses}", flush=True)
    finally:
        await server.stop(timeout_s=5)
        await asyncio.to_thread(s2s.close_components, server.components)


async def s2s_serve(config: Any) -> tuple[Any, int]:
    components = s2s.build_components(config)
    await s2s.load_components(components)
    server = s2s.S2SServer(config, components)
    return server, await server.start()


WORDS = "apple river stone cloud garden window yellow music paper friend table summer winter bridge candle".split()


def read() -> None:
    llm = s2s.LlamaCppLLM(validate_config({"llamacpp_seed": 1, "llamacpp_keep_prompts": False}))
    llm.load()
    print(f"{machine()}; {llm.build}", flush=True)
    base = llm._warm_tokens[:-6]  # the system prompt and a user header, cached by the warm-up
    try:
        for kind in ("words", "digits"):
            for n in (128, 256, 512, 1024, 2048):
                for r in range(2):
                    text = (" ".join(f"{WORDS[(r * 7 + i * 5 + n) % len(WORDS)]}{i}" for i in range(2 * n))
                            if kind == "words" else f"{r}{n} " + "1234567890 " * n)
                    new = llm._loopback("/tokenize", {"content": text, "add_special": False})["tokens"][:n]
                    load = os.getloadavg()[0]
                    timings = llm._complete(base + new)
                    seconds = timings.get("prompt_ms", 0) / 1000
                    print(f"{kind}: {timings.get('prompt_n')} tokens read in {seconds:.1f} s "
                          f"({timings.get('prompt_per_second', 0):.0f} tokens/s; load {load:.1f})", flush=True)
    finally:
        llm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("fit", "read"))
    args = parser.parse_args()
    started = time.monotonic()
    if args.what == "fit":
        asyncio.run(fit())
    else:
        read()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
