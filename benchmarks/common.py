"""Helpers shared by the benchmarks: machine description, percentiles, a server process, real-time audio."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, Python {platform.python_version()}"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# espeak-ng's Mandarin voice for test speech, one place for every benchmark and test. "cmn-latn-pinyin"
# ("Chinese (Mandarin, latin as Pinyin)") reads Chinese characters as Mandarin syllables with their tones
# (`espeak-ng -v cmn-latn-pinyin -q -x 等一下` -> "t'@21N_| j'i55_| S;'iA51"); Whisper base hears it as robotic
# Chinese (等一下，我有一个问题。 -> "等一下,我又一個問題"). The voice used until 2026-12-04, "cmn", is on
# espeak-ng 1.51 "Chinese (Mandarin, latin as English)": it turns characters into pinyin with tone digits
# and reads those in English ("deng three yi one xia four"), which is not Mandarin speech; figures measured
# with it (docs/latency.md, "Correction") are about English-read pinyin.
ESPEAK_MANDARIN = "cmn-latn-pinyin"
ESPEAK_PINYIN_AS_ENGLISH = "cmn"  # the old voice, kept by name for tests that want speech Whisper mishears


def speech(text: str, rate_hz: int, voice: str = "en-us") -> np.ndarray:
    import s2s_server as s2s

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed for test speech: apt-get install espeak-ng")
    path = Path(f"/tmp/s2s-bench-{abs(hash((text, voice)))}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return s2s.resample(pcm, w.getframerate(), rate_hz)


def write_pcm16(path: str | Path, pcm: np.ndarray, rate_hz: int) -> None:
    """Mono int16 PCM as a WAV file (the standard library's wave: soundfile is not a dependency)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def read_pcm16(path: str | Path) -> np.ndarray:
    """A mono 16-bit WAV file's samples (int16), as `write_pcm16` wrote them."""
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: mono 16-bit PCM expected")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


class LogTail:
    """Lines appended to a file by another process, read when asked (`start_server(log_to_file=True)`)."""

    def __init__(self, path: str) -> None:
        self._fd, self._partial = os.open(path, os.O_RDONLY), b""

    def new_lines(self) -> list[str]:
        chunks = []
        while chunk := os.read(self._fd, 1 << 16):
            chunks.append(chunk)
        *whole, self._partial = (self._partial + b"".join(chunks)).split(b"\n")
        return [raw.decode(errors="replace") + "\n" for raw in whole]

    def rest(self) -> list[str]:
        """The last line, when the writer ended without a newline after it."""
        partial, self._partial = self._partial, b""
        return [partial.decode(errors="replace")] if partial else []

    def close(self) -> None:
        os.close(self._fd)


async def serve_in_process(config: Any) -> tuple[Any, int]:
    """Load `config`'s models (saying on stderr how long that took) and start an `S2SServer` with them in this
    process: the server and its port. Stop it with `server.stop()`, then `s2s_server.close_components`."""
    import s2s_server as S  # here: a benchmark that starts the server as a process does not load it

    components = S.build_components(config)
    t0 = time.monotonic()
    await S.load_components(components)
    print(f"models loaded and warm in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    server = S.S2SServer(config, components)
    return server, await server.start()


async def start_server(*args: str, ready: str = r"serving ws://[\d.]+:(\d+)/", log_to_file: bool = False,
                       script: Path | None = None) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """Run `s2s_server.py --port 0 ARGS` as its own process; return it, its port (from the first log line
    matching `ready`), and its log lines (kept up to date by a background reader, so the pipe never fills).
    `log_to_file`: the server's stderr goes to a temporary file, read every 50 ms, instead of a pipe read as
    each line arrives, so this process is not woken by every line the server writes (`overhead.py
    --server-log file`). `script`: another server file to run (another checkout's, for a before and after)."""
    import tempfile

    log_file = tempfile.NamedTemporaryFile(prefix="s2s-bench-log-") if log_to_file else None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script or ROOT / "s2s_server.py"), "--port", "0", *args, cwd=str(ROOT),
        stderr=log_file if log_file is not None else asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    lines: list[str] = []
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def take(line: str) -> None:
        lines.append(line)
        if not port.done() and (match := re.search(ready, line)):
            port.set_result(int(match.group(1)))

    async def drain() -> None:
        if log_file is not None:
            tail = LogTail(log_file.name)
            try:
                while proc.returncode is None:
                    for line in tail.new_lines():
                        take(line)
                    await asyncio.sleep(0.05)
                for line in [*tail.new_lines(), *tail.rest()]:  # what it wrote before it exited
                    take(line)
            finally:
                tail.close()
                log_file.close()
        else:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                take(raw.decode(errors="replace"))
        if not port.done():
            port.set_exception(SystemExit("server exited:\n" + "".join(lines)))

    proc._s2s_drain = asyncio.create_task(drain())  # type: ignore[attr-defined]  # kept alive with the process
    return proc, await asyncio.wait_for(port, 600), lines


# ---- A simulated real-time user, shared by overhead.py and soak.py ---------------------------------------

RATE_HZ = 24000
FRAME_MS = 20
# The fake LLM's first word ends a clause at once, then it streams slowly: a reply is still being
# generated when the next utterance barges in.
REPLY = "Sure. " + " ".join(["Here is a long and thoughtful answer that keeps going for a while"] * 6) + "."


def fake_server_args(sessions: int) -> list[str]:
    """Zero-latency fakes, room for every simulated user, no speculative ASR (nothing to hide), and the
    silence turn-taking: a turn ends `vad_silence_ms` into the pause, as the utterance loop expects (the
    default, predictive, runs a model at each pause and may wait longer than the loop's 0.9 s pause)."""
    return ["--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off", "--turn-taking", "silence",
            "--fake-llm-token-ms", "60",
            "--fake-llm-reply", REPLY, "--max-sessions", str(sessions + 10), "--max-sessions-per-address",
            str(sessions + 10), "--asr-speculative-ms", "0"]


def mic_frames(utterance: np.ndarray) -> list[str]:
    """An utterance and the silence that ends its turn, as 20 ms `input_audio_buffer.append` messages to send
    in a loop (JSON text made once here: the simulated users share the client's CPU with the server)."""
    loop_audio = np.concatenate([utterance, np.zeros(int(RATE_HZ * 0.9), dtype=np.int16)])
    step = RATE_HZ * FRAME_MS // 1000
    return [json.dumps({"type": "input_audio_buffer.append",
                        "audio": base64.b64encode(loop_audio[i:i + step].astype("<i2").tobytes()).decode()})
            for i in range(0, len(loop_audio) - step + 1, step)]


_TYPE_FIRST = ('{"type":"', '{"type": "')  # how the server writes every event: a dict whose first key is type
_TYPE_FIRST_BYTES = tuple(first.encode() for first in _TYPE_FIRST)


def event_type(message: str | bytes) -> str:
    """A server event's type, read without parsing the whole message: the audio deltas are most of what
    the simulated users receive, and parsing each would make the client, not the server, the bottleneck.
    `message` may be the text or its UTF-8 bytes (as `recv(decode=False)` gives it, undecoded)."""
    firsts = _TYPE_FIRST if isinstance(message, str) else _TYPE_FIRST_BYTES
    for first in firsts:
        if message.startswith(first):  # type: ignore[arg-type]
            end = message.find(first[-1:], len(first))  # type: ignore[arg-type]
            if end > 0:
                kind = message[len(first):end]
                return kind if isinstance(kind, str) else kind.decode()
    return str(json.loads(message).get("type"))


@dataclass
class Totals:
    """What the simulated users measured, at the client, from event arrival times."""

    eot: list[float] = field(default_factory=list)  # speech_stopped -> first reply audio, ms
    eot_unanswered: int = 0  # turns whose reply had sent no audio when the user's next utterance began
    barge: list[float] = field(default_factory=list)  # speech_started -> cancelled response.done, ms
    frames_sent: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # per answered turn, the user item's id -> client-observed ms (as in `eot`), and the server's own
    # share of the same turn from its s2s.metrics (`turn_end_to_first_byte`), when it arrived
    eot_by_item: dict[str, float] = field(default_factory=dict)
    server_by_item: dict[str, float] = field(default_factory=dict)

    def merge(self, other: Totals) -> None:
        self.eot += other.eot
        self.eot_unanswered += other.eot_unanswered
        self.barge += other.barge
        self.frames_sent += other.frames_sent
        self.errors.update(other.errors)
        self.eot_by_item.update(other.eot_by_item)
        self.server_by_item.update(other.server_by_item)


async def connect_user(port: int) -> Any:
    return await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None, open_timeout=60)


def masked_frames(frames: list[str]) -> list[bytes]:
    """`frames` as whole client WebSocket frames (text, masked, by websockets' own serializer), made once, for
    `stream_users` to write to the sockets as they are: a client's send path (framing, a fresh mask, the
    library's send machinery) costs more CPU than the server's receive of the same frame, and the simulated
    users share the machine with the server. Each frame keeps the mask key it was made with, so keys repeat
    every utterance loop (RFC 6455 asks for unpredictable keys, against proxies' caches; there is no proxy on
    the loopback, and the server unmasks any key)."""
    from websockets.frames import Frame, Opcode

    return [Frame(Opcode.TEXT, frame.encode()).serialize(mask=True) for frame in frames]


async def read_events(ws: Any, totals: Totals) -> None:
    """Read a user's server events until cancelled, stamping what the measures need. Messages are read
    undecoded, and only the few small events the measures use are parsed."""
    marks: dict[str, Any] = {}
    while True:
        message = await ws.recv(decode=False)
        t, kind = time.monotonic(), event_type(message)
        if kind == "input_audio_buffer.speech_stopped":
            marks["stopped"], marks["item"] = t, json.loads(message)["item_id"]
        elif kind == "response.output_audio.delta":
            if "stopped" in marks:
                totals.eot.append(ms := (t - marks.pop("stopped")) * 1000)
                totals.eot_by_item[marks.pop("item")] = ms
        elif kind == "input_audio_buffer.speech_started":
            marks["started"] = t
            if marks.pop("stopped", None) is not None:  # too late to count: cut off by the next utterance
                totals.eot_unanswered += 1
        elif kind == "response.done":
            if json.loads(message)["response"]["status"] == "cancelled" and "started" in marks:
                totals.barge.append((t - marks.pop("started")) * 1000)
        elif kind == "s2s.metrics":
            metrics = json.loads(message)
            if metrics.get("turn_end_to_first_byte") is not None and metrics.get("item_id"):
                totals.server_by_item[metrics["item_id"]] = metrics["turn_end_to_first_byte"]
        elif kind == "error":
            totals.errors[json.loads(message)["error"]["code"]] += 1


async def stream_users(sockets: list[Any], frames: list[bytes], starts: list[float], seconds: float,
                       totals: Totals, tick_s: float = 0.0, origin: float = 0.0) -> None:
    """Each user (a socket) streams `frames` (`masked_frames`) at real-time pace for `seconds` from its start
    (time.monotonic, the same clock in every process on this machine), one 20 ms frame at a time, each
    utterance barging in on the previous reply; then every socket is closed. One pacing loop writes every
    user's frames when due (a timer per user and frame cost the client more than its sends): frames due
    within the next half millisecond go together. With `tick_s` > 0 the loop wakes only on a tick (`origin`
    plus a whole number of ticks, the same instants in every process given the same origin) and writes every
    frame due by then: each frame goes out up to `tick_s` after it is due, never before, and the frames of
    many users arrive at the server together (`overhead.py --send-tick-ms`)."""
    readers = [asyncio.create_task(read_events(ws, totals)) for ws in sockets]
    frame_s = FRAME_MS / 1000
    due = [(start, user, 0) for user, start in enumerate(starts)]  # (when, user, frame number)
    heapq.heapify(due)
    loop = asyncio.get_running_loop()  # its clock is time.monotonic
    finished: asyncio.Future[None] = loop.create_future()
    timer: asyncio.TimerHandle | None = None

    def pace() -> None:  # a timer callback, not a task that sleeps: no future and no task step per wake
        try:
            write_due()
        except BaseException as error:  # a callback's exception is only logged: end the stream with it
            if not finished.done():
                finished.set_exception(error)

    def write_due() -> None:
        nonlocal timer
        while due:
            when, user, n = due[0]
            if tick_s > 0:  # the first tick at or after the frame is due
                when = origin + math.ceil((when - origin) / tick_s - 1e-6) * tick_s
            if when - time.monotonic() > 0.0005:
                timer = loop.call_at(when, pace)
                return
            heapq.heappop(due)
            sockets[user].transport.write(frames[n % len(frames)])
            if (n + 1) * frame_s < seconds:
                heapq.heappush(due, (starts[user] + (n + 1) * frame_s, user, n + 1))
            else:
                totals.frames_sent += n + 1
        finished.set_result(None)

    try:
        pace()
        await finished
    finally:
        if timer is not None:
            timer.cancel()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def realtime_user(port: int, frames: list[str], seconds: float, totals: Totals, start_delay: float) -> None:
    """Connect after `start_delay`, then stream `frames` at real-time pace for `seconds` (each utterance barges
    in on the previous reply), with websockets' own send."""
    await asyncio.sleep(start_delay)  # spread the sessions' frame clocks over one frame period
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None, open_timeout=60) as ws:
        reader = asyncio.create_task(read_events(ws, totals))
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            await ws.send(frames[n % len(frames)])
            n += 1
            delay = t0 + n * FRAME_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of a microphone
        totals.frames_sent += n
        reader.cancel()


def process_tree(pid: int) -> list[int]:
    """A process and its children that are still running (the workers of `--workers N`), from /proc; the
    process alone where its children cannot be read."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in process_tree(int(child)))]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its running children (`process_tree`), from
    /proc; 0 where /proc is not there."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def run_queue_seconds(pid: int) -> float:
    """Time the threads of a process and of its running children (`process_tree`) spent runnable but waiting
    for a core (the scheduler's run_delay, /proc/PID/task/TID/schedstat), so far; NaN on a kernel without
    schedstat (so a table does not read 0 as "never waited")."""
    if not Path("/proc/self/schedstat").exists():
        return math.nan
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int(Path(f"/proc/{member}/task/{tid}/schedstat").read_text().split()[1]) / 1e9
    return total


def frames_handled(log_lines: list[str]) -> int:
    """Appends the server's sessions handled, from their close log lines."""
    return sum(int(m) for line in log_lines for m in re.findall(r"audio_frames_in=(\d+)", line))


async def wait_for_closes(log_lines: list[str], sessions: int) -> None:
    """Let the server log every session's close (bounded: 10 s)."""
    for _ in range(200):
        if sum("closed after" in line for line in log_lines) >= sessions:
            return
        await asyncio.sleep(0.05)
