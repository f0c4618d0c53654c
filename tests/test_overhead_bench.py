"""benchmarks/common.py's pacing of the simulated users (`stream_users`, used by overhead.py): every frame in
order, none before it is due, with `tick_s` none before the tick it waits for, a failing write ends the
stream; and `LogTail`, which reads a server's log file in whole lines."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # its `from common import ...`

from benchmarks import common  # noqa: E402

EARLY_S = 0.0005  # stream_users writes frames due within the next half millisecond together


class RecordingTransport:
    def __init__(self, writes: list[tuple[float, bytes]]) -> None:
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append((time.monotonic(), data))


class SilentSocket:
    """A user's socket to nobody: records the frames written to it; the server never says anything."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []
        self.transport = RecordingTransport(self.writes)

    async def recv(self, decode: bool | None = None) -> bytes:
        await asyncio.Event().wait()  # until stream_users cancels its reader
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pass


async def stream(tick_s: float) -> tuple[list[SilentSocket], list[float], float, common.Totals]:
    sockets, frames, totals = [SilentSocket() for _ in range(3)], [b"a", b"b", b"c"], common.Totals()
    origin = time.monotonic() + 0.01
    starts = [origin + user * 0.007 for user in range(3)]  # users 7 ms apart: most frames fall between ticks
    await common.stream_users(sockets, frames, starts, 0.1, totals, tick_s, origin=origin)
    return sockets, starts, origin, totals


async def test_every_frame_goes_out_in_order_and_not_before_it_is_due():
    """Each user's 5 frames (0.1 s of 20 ms) are written in order, none before its due time, and counted."""
    sockets, starts, _, totals = await stream(0.0)
    assert totals.frames_sent == 15
    for sock, start in zip(sockets, starts, strict=True):
        assert [data for _, data in sock.writes] == [b"a", b"b", b"c", b"a", b"b"]
        for n, (written_at, _) in enumerate(sock.writes):
            assert written_at >= start + n * 0.020 - EARLY_S


async def test_on_ticks_a_frame_waits_for_the_first_tick_at_or_after_it_is_due():
    """With 20 ms ticks a frame due between two ticks goes out at the later one, not when due."""
    tick_s = 0.020
    sockets, starts, origin, totals = await stream(tick_s)
    assert totals.frames_sent == 15
    for sock, start in zip(sockets, starts, strict=True):
        assert [data for _, data in sock.writes] == [b"a", b"b", b"c", b"a", b"b"]
        for n, (written_at, _) in enumerate(sock.writes):
            due = start + n * 0.020
            tick = origin + math.ceil((due - origin) / tick_s - 1e-6) * tick_s
            assert written_at >= tick - EARLY_S


@contextlib.contextmanager
def log_tail(tmp_path: Path, written: bytes) -> Iterator[tuple[Path, common.LogTail]]:
    """A log file holding `written`, and a `LogTail` on it (closed afterwards)."""
    path = tmp_path / "server.log"
    path.write_bytes(written)
    tail = common.LogTail(str(path))
    try:
        yield path, tail
    finally:
        tail.close()


def test_a_log_file_is_read_in_whole_lines_as_it_grows(tmp_path):
    """`LogTail` gives each line once, whole, and keeps a line still being written until its end arrives."""
    with log_tail(tmp_path, b"first line\nsecond li") as (path, tail):
        assert tail.new_lines() == ["first line\n"]
        assert tail.new_lines() == []
        with path.open("ab") as log:
            log.write(b"ne\nthird line\n")
        assert tail.new_lines() == ["second line\n", "third line\n"]


async def test_a_failing_write_ends_the_stream_with_its_error():
    """A socket whose write raises ends `stream_users` with that error (a timer callback's exception would
    otherwise only be logged, and the stream would wait for ever)."""
    class Broken(Exception):
        pass

    sockets = [SilentSocket() for _ in range(2)]
    writes = []

    def write(data: bytes) -> None:  # the second frame's write fails: in a timer callback, not the first call
        writes.append(data)
        if len(writes) == 2:
            raise Broken

    sockets[1].transport.write = write
    with pytest.raises(Broken):
        await asyncio.wait_for(common.stream_users(sockets, [b"a"], [time.monotonic()] * 2, 0.1, common.Totals()),
                               timeout=10)


def test_a_last_line_without_a_newline_is_not_lost(tmp_path):
    """What a process wrote last without a newline comes out of `LogTail.rest` once it is done writing."""
    with log_tail(tmp_path, b"serving\nstopped") as (_path, tail):
        assert tail.new_lines() == ["serving\n"]
        assert tail.rest() == ["stopped"] and tail.rest() == []
