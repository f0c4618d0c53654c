"""Fuzz the server by the ten thousand: the generators of tests/test_fuzz.py (JSON events over a real
WebSocket, raw frames over a TCP socket after a real handshake), run against one real server with the
fakes, counting every case and every problem (a handler crash logged, an undocumented error code or close
code, a task left running, audio after its response.done) instead of stopping at the first.

    python benchmarks/fuzz.py                      # 10,000 cases: 5,000 of each generator
    python benchmarks/fuzz.py --cases 20000 --seed 7
"""

from __future__ import annotations

import argparse
import time

import hypothesis.strategies as st
from common import machine
from hypothesis import HealthCheck, given, seed, settings

from tests.test_fuzz import MESSAGE, FuzzServer, frames_case, json_case, raw_frame


def run(name: str, strategy: st.SearchStrategy, case, cases: int, rng_seed: int) -> tuple[int, list]:
    server = FuzzServer()
    count, crashes = 0, []

    @seed(rng_seed)
    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(example) -> None:
        nonlocal count
        count += 1
        found = case(server, example)
        if found:
            crashes.append((example, found))

    started = time.perf_counter()
    try:
        one()
    finally:
        server.close()
    print(f"{name}: {count} cases in {time.perf_counter() - started:.0f} s, {len(crashes)} with problems", flush=True)
    return count, crashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10000, help="total cases, split between the two generators")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    total, problems = 0, []
    for name, strategy, case in (
            ("json events", st.lists(MESSAGE, min_size=1, max_size=8), json_case),
            ("raw frames", st.lists(raw_frame(), min_size=1, max_size=5), frames_case)):
        count, crashes = run(name, strategy, case, args.cases // 2, args.seed)
        total += count
        problems += crashes
    for example, found in problems[:20]:
        print(f"PROBLEM {found} with {str(example)[:400]}")
    print(f"cases: {total}  crashes found: {len(problems)}")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
