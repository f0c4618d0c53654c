"""Same messages, same seed: do llama.cpp's words depend on what its prompt cache held before?

    python benchmarks/llm_determinism.py                 # the default LLM (packaged 1.5B), 2 slots
    python benchmarks/llm_determinism.py --parallel 1    # one slot

One kept reply's messages (benchmarks/conversation_runs/r3-final-seed2.json, en-mixed #2, a refusal) are
sent six times to one loaded LlamaCppLLM with a fixed seed: first with only the warm-up prompt cached, then
again (the whole prompt cached), after another conversation's request, and twice with llama.cpp's prompt
cache off for the request (`cache_prompt: false`). Identical words across the rows would mean the seed
alone decides; llama.cpp's server documents that prompt caching can change results, because a cached prefix
was computed in other batches than a prompt read at once, and the logits differ in the last bits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import s2s_server as s2s  # noqa: E402
from benchmarks.common import machine  # noqa: E402
from s2s_config import validate_config  # noqa: E402

RUN = ROOT / "benchmarks" / "conversation_runs" / "r3-final-seed2.json"


async def generate(llm: s2s.LlamaCppLLM, messages: list[dict[str, str]], cache: bool) -> tuple[str, float]:
    request = llm._request
    if not cache:
        llm._request = lambda m, n: {**request(m, n), "cache_prompt": False}  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        words = "".join([d async for d in llm.generate(messages, max_tokens=48)])
        return words, time.monotonic() - started
    finally:
        llm._request = request  # type: ignore[method-assign]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallel", type=int, default=2, help="llamacpp_parallel (slots)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    kept = {(r["conversation"], r["step"]): r["messages"] for r in json.loads(RUN.read_text("utf-8"))["replies"]}
    same, other = kept[("en-mixed", 2)], kept[("en-mixed", 5)]
    llm = s2s.LlamaCppLLM(validate_config({"llamacpp_seed": args.seed, "llamacpp_parallel": args.parallel}))
    llm.load()
    print(f"llm determinism on {machine()}: seed {args.seed}, {args.parallel} slots")
    try:
        for name, messages, cache in (("only the warm-up cached", same, True), ("the same again", same, True),
                                      ("another conversation", other, True), ("the same after it", same, True),
                                      ("cache_prompt false", same, False), ("cache_prompt false again", same, False)):
            words, seconds = await generate(llm, messages, cache)
            print(f"{name:26s} {seconds:5.1f} s  {words!r}", flush=True)
    finally:
        llm.close()


if __name__ == "__main__":
    asyncio.run(main())
