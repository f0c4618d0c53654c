"""Speed of the packaged LLMs (llamacpp) on this CPU, side by side in one run.

    python benchmarks/llm_speed.py                                   # both packaged models
    python benchmarks/llm_speed.py --weights qwen2.5-coder-0.5b --turns 4
    python benchmarks/llm_speed.py --weights qwen2.5-coder-1.5b --threads 1 2    # llama.cpp threads, rows in turn
    python benchmarks/llm_speed.py --weights qwen2.5-coder-1.5b --model-path my-1.5b-q4_0.gguf   # a file of yours

For each model, a conversation of short questions, each as the server runs it: the prompt (system message
and history) is read ahead ("primed", as the server does during the user's silence), then the reply is
generated. Per turn: the first token after the request (the primed case the user meets), the first token
when nothing was primed (a cache miss: the whole new prompt is read first), and generation speed in tokens
per second (llama.cpp's own count), also per second of this process's CPU time, which depends less on what
else shares the cores (the process does little but generate meanwhile). And what is left to read when the
turn ends, for a question of the same length asked in its place (two sets, alternating): the first token
when only the conversation so far is cached ("after the last reply") and when the first two thirds of the
question were read while it was spoken (`llm_read_partials`: the partial transcripts, read up to the end of
their words as the server does: `prime_words`). And what a prompt read costs by its length: 1, 8 and 32 new
tokens after the cached instructions (llama.cpp's prompt time, and this process's CPU time for the call). With
`--threads`, each model runs once per thread count (`llamacpp_threads` and `llamacpp_prompt_threads`), in turn.
The OpenMP wait policy (`openmp_wait_policy`, --openmp-wait-policy) is the process's: one per run. Prints
medians, the machine, its load and the llama.cpp build (s2s_server.llamacpp_build: a build of your own, run
with PYTHONPATH=/path/to/it, is named as such).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import s2s_server as s2s  # noqa: E402
from benchmarks.common import machine  # noqa: E402
from s2s_config import validate_config  # noqa: E402

QUESTIONS = ["How many legs does a spider have?", "What should I cook for dinner tonight?",
             "Why do leaves change colour in autumn?", "Give me one tip for sleeping better.",
             "What is the tallest animal in the world?", "Can you recommend a good book to read?"]
OTHERS = ["How many wheels does a bicycle have?", "What should I wear for a job interview?",
          "Why do cats purr when they are happy?", "Give me one tip for learning faster.",
          "What is the largest ocean in the world?", "Can you recommend a good film to watch?"]


READ_SIZES = (1, 8, 32)  # new prompt tokens, after the cached instructions
READ_WORDS = ("apple river stone cloud garden window yellow music paper friend table summer winter bridge candle "
              "forest silver orange number doctor letter mountain pencil rabbit").split()


def read_costs(llm: s2s.LlamaCppLLM, rounds: int) -> dict[int, tuple[float, float]]:
    """Median (llama.cpp's prompt ms, this process's CPU ms) of reading n new tokens, for n in READ_SIZES."""
    base = llm._warm_tokens[:-6]  # the instructions and a user header, cached by the warm-up (less "Hello" and after)
    times: dict[int, list[tuple[float, float]]] = {n: [] for n in READ_SIZES}
    for r in range(rounds):
        for n in READ_SIZES:
            text = " ".join(READ_WORDS[(r * 7 + i * 5) % len(READ_WORDS)] for i in range(2 * n))
            new = llm._loopback("/tokenize", {"content": f" {r} {text}", "add_special": False})["tokens"][:n]
            cpu = time.process_time()
            timings = llm._complete(base + new)
            times[n].append((float(timings.get("prompt_ms") or 0), (time.process_time() - cpu) * 1000))
    return {n: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for n, v in times.items()}


async def measure(weights: str, turns: int, threads: int, policy: str, path: bool = False) -> dict[str, Any]:
    """`weights`: a packaged model's name or, with `path`, a GGUF file of your own (`llamacpp_model_path`)."""
    model = {"llamacpp_model_path": weights} if path else {"llamacpp_weights": weights}
    config = validate_config({**model, "llamacpp_seed": 1, "llamacpp_threads": threads,
                              "llamacpp_prompt_threads": threads, "openmp_wait_policy": policy})
    llm = s2s.LlamaCppLLM(config)
    started = time.monotonic()
    await asyncio.to_thread(llm.load)
    load_s = time.monotonic() - started
    primed, cold, speed, cpu_speed, after_reply, partial_read = [], [], [], [], [], []
    history: list[dict[str, str]] = []
    system = [{"role": "system", "content": config.system_prompt}]
    try:
        for n, question in enumerate((QUESTIONS * 4)[:turns]):
            other = OTHERS[n % len(OTHERS)]
            for asked, times in ((question, after_reply), (other, partial_read)) if n % 2 else \
                    ((other, after_reply), (question, partial_read)):
                if times is partial_read:  # the words said so far, as a partial transcript gives them
                    words = asked.split()
                    await asyncio.to_thread(llm.prime_words, [*system, *history, {
                        "role": "user", "content": " ".join(words[:max(1, 2 * len(words) // 3)])}])
                t0 = time.monotonic()
                async for _ in llm.generate([*system, *history, {"role": "user", "content": asked}], max_tokens=1):
                    times.append((time.monotonic() - t0) * 1000)
            messages = [*system, *history, {"role": "user", "content": question}]
            await asyncio.to_thread(llm.prime, messages)
            t0 = time.monotonic()
            first = None
            pieces = []
            async for delta in llm.generate(messages, max_tokens=60):
                if first is None:
                    first, cpu_first = time.monotonic() - t0, time.process_time()
                pieces.append(delta)
            total, cpu_total = time.monotonic() - t0, time.process_time() - cpu_first
            reply = "".join(pieces)
            tokens = max(1, len(pieces))  # llamacpp streams one token per delta
            primed.append(first * 1000)
            speed.append((tokens - 1) / max(1e-6, total - first))
            cpu_speed.append((tokens - 1) / max(1e-6, cpu_total))
            # A cache miss: the same turn with a different system message, nothing primed.
            missed = [{"role": "system", "content": config.system_prompt + f" (turn {len(cold)})"}, *history,
                      {"role": "user", "content": question}]
            t0 = time.monotonic()
            async for _ in llm.generate(missed, max_tokens=1):
                cold.append((time.monotonic() - t0) * 1000)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
            print(f"  {weights}: first token {primed[-1]:.0f} ms primed, {cold[-1]:.0f} ms cold, "
                  f"{after_reply[-1]:.0f} ms after the last reply, {partial_read[-1]:.0f} ms with the partial read; "
                  f"{speed[-1]:.1f} tokens/s ({cpu_speed[-1]:.1f} per CPU second); {reply[:60]!r}",
                  file=sys.stderr, flush=True)
        reads = await asyncio.to_thread(read_costs, llm, max(1, turns // 2))
    finally:
        llm.close()
    return {"build": llm.build, "load_s": load_s, "primed_ms": statistics.median(primed),
            "cold_ms": statistics.median(cold), "tokens_per_s": statistics.median(speed),
            "tokens_per_cpu_s": statistics.median(cpu_speed),
            "after_reply_ms": statistics.median(after_reply), "partial_read_ms": statistics.median(partial_read),
            "threads": s2s.llamacpp_thread_counts(config)[0], "reads": reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", action="append", choices=("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"))
    parser.add_argument("--model-path", action="append", default=[],
                        help="a GGUF file of your own (`llamacpp_model_path`), measured after the --weights")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[0],
                        help="llamacpp_threads (and llamacpp_prompt_threads) to run each model with, in turn; "
                             "0 = the server's default")
    parser.add_argument("--openmp-wait-policy", choices=("passive", "active", "inherit"), default="passive",
                        help="openmp_wait_policy for this run (a process reads it once)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    packaged = args.weights or ([] if args.model_path else ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    results = {(w, t): asyncio.run(measure(w, args.turns, t, args.openmp_wait_policy, path=w in args.model_path))
               for w in [*packaged, *args.model_path] for t in args.threads}
    print(f"\n{machine()}; load {load_before:.1f} -> {os.getloadavg()[0]:.1f}; {args.turns} turns each, medians; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"llama.cpp: {next(iter(results.values()))['build']}\n")
    reads = " | ".join(f"read {n} new tokens (ms; CPU ms)" for n in READ_SIZES)
    print("| llamacpp_weights | threads | load + warm-up (s) | first token, primed (ms) | first token, not primed (ms) "
          "| first token, after the last reply (ms) | first token, partial read (ms) | tokens/s "
          f"| tokens per CPU second | {reads} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(READ_SIZES))
    for (weights, _), r in results.items():
        cells = " | ".join(f"{r['reads'][n][0]:.0f}; {r['reads'][n][1]:.0f}" for n in READ_SIZES)
        print(f"| {weights} | {r['threads']} | {r['load_s']:.1f} | {r['primed_ms']:.0f} | {r['cold_ms']:.0f} | "
              f"{r['after_reply_ms']:.0f} | {r['partial_read_ms']:.0f} | {r['tokens_per_s']:.1f} | "
              f"{r['tokens_per_cpu_s']:.1f} | {cells} |")


if __name__ == "__main__":
    main()
