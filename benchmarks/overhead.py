"""The server's own overhead, measured with zero-latency fakes over real WebSockets in real time.

Each simulated user streams 20 ms microphone frames at real-time pace: an utterance, a silence that ends
the turn, then the next utterance, which cuts the bot off while its (slowly streaming) reply is still being
generated. Measured at the client, from event arrival times:
  end-of-turn:  input_audio_buffer.speech_stopped -> first response.output_audio.delta
  barge-in:     input_audio_buffer.speech_started -> response.done (cancelled)
and, for the same turns, the server's own share from its s2s.metrics: `turn_end_to_first_byte`, from its
end-of-turn decision to the first audio byte written to the socket. The client's figure starts when the
client reads speech_stopped, which itself waited in the server's send queue and in the client's loop, so
"client minus server" (per turn) is what the kernel and the client's loop added to the first audio, less
what speech_stopped itself waited. "Its event loop's CPU in it" is `loop_cpu_ms` from the server's
metrics log lines: the CPU its event loop thread used within the share (every session's work then, frames
included), the process's own part of a share whose wall time the machine's load sets. Each client
process also runs a 5 ms ticker and reports how late it fired (its loop's lag: how late it read whatever
arrived). The fakes take zero time (the fake LLM's first word ends a clause at once), so these are pure server
overhead plus loopback. Input frames dropped = append events sent by clients - append events the
server's sessions handled (from their close log lines). A turn whose reply had sent no audio when the
user's next utterance began is counted apart ("cut"): its latency is unknown, only that it exceeded the
pause, so a p99 over many cut turns flatters the server. Each row also gives the CPU the server processes
and the client processes used while the users streamed, in cores (1.0 = one core busy all the time), the
clients' CPU per 1,000 frames they sent, the
server's CPU per 1,000 input frames (all its work, turns included, divided by the frames it handled: it
moves less with the machine's load than the latencies, but still by 20 to 45 % between interleaved runs at
load 4 to 7, see docs/deploy.md), and the load average before and after it. The simulated users run on
the same machine as the server, in `--clients` processes (2 by default) started together: every user
connects first, then all start streaming at one shared time (time.monotonic, the same clock in every
process); each process writes its users' frames from one pacing loop, as whole WebSocket frames made once
(`masked_frames`), and reads the events undecoded, parsing only the few small ones it measures. On a
2-core machine they still compete with the server for the cores. Latencies are only comparable between
rows of one run on a quiet machine (load average well under 1 before each row).

Where the share's wall time goes: "the share minus that CPU" is, per turn, the server's share less its loop's
CPU in it (the time the loop did not run: runnable but waiting for a core, as nothing in the fakes' turn waits
on a thread or the network), and "waiting for a core" is the scheduler's run-queue wait (/proc schedstat,
run_delay) of every thread of the server processes and of the client processes over the row, in ms per
second. `--client-nice 10` runs the client processes at a lower priority, so that the server gets the cores
first, as when the users are on other machines: a labelled variant, not the headline (the row says "at nice
10"). A `--workers 2` row also gives each process's own p99 of the share and of its loop's CPU, so that one
slower process shows.

Users start spread over one utterance loop, so their turns end at different moments, as real users'
do; --synchronized starts them within one frame, so all turns end in the same instant (the worst case).
--workers runs the server as that many processes on one port (the server's `workers` setting), each
configuration in turn, so that the rows compare side by side in one run; such a row says how many sessions
each process served (the supervisor hands each connection to the process with the fewest, so 50 / 50).
--send-tick-ms changes the load generator (a labelled variant, "frames sent on N ms ticks"): each client
process writes only on ticks of the shared clock, every frame due by then, so a frame goes out up to one
tick late and many users' frames reach the server together, which wakes it less often per frame.
--server-log file (a labelled variant, "log to a file") sends the server's log lines to a file read every
50 ms instead of a pipe this process reads as each line comes, so no process wakes for each line.

    python benchmarks/overhead.py                       # 1 and 100 sessions, 30 s each
    python benchmarks/overhead.py --sessions 100 --synchronized
    python benchmarks/overhead.py --sessions 100 --synchronized --workers 1 2 --seconds 30
    python benchmarks/overhead.py --sessions 100 --synchronized --workers 2 --clients 1 2   # the client's part
    python benchmarks/overhead.py --turn-path --sessions 50 100   # the burst's server CPU per turn, in-process
    python benchmarks/overhead.py --turn-path --stages --sessions 50   # and where it goes, stage by stage
    python benchmarks/overhead.py --turn-path --sessions 50 --profile 40   # cProfile over one burst
    python benchmarks/overhead.py --sessions 100 --synchronized --workers 2 --client-nice 0 10   # the cores
    python benchmarks/overhead.py --sessions 100 --synchronized --workers 1 2 --send-tick-ms 0 20   # wakeups
    python benchmarks/overhead.py --sessions 100 --synchronized --workers 2 --server-log pipe file   # the log's reader
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import itertools
import json
import multiprocessing
import os
import pstats
import re
import shlex
import time
from collections import Counter
from typing import Any

import numpy as np
from common import (
    FRAME_MS,
    RATE_HZ,
    Totals,
    connect_user,
    cpu_seconds,
    event_type,
    fake_server_args,
    frames_handled,
    machine,
    masked_frames,
    mic_frames,
    pct,
    run_queue_seconds,
    speech,
    start_server,
    stream_users,
    wait_for_closes,
)


def client_process(conn: Any, port: int, frames: list[str], seconds: float, offsets: list[float],
                   niceness: int = 0, tick_s: float = 0.0) -> None:
    """One client process (started with `spawn`): connect its users, say so, and once told the shared start
    time (time.monotonic, the same clock in every process on this machine) stream every user's frames from
    that time plus its offset; send back what its users measured, its CPU and its run-queue wait (runnable,
    waiting for a core) over the streaming, and the lag of a 5 ms ticker on its event loop (how late this
    process read what arrived). `niceness` > 0 lowers its scheduling priority (`--client-nice`); `tick_s` > 0
    writes the frames on ticks of the shared clock (`--send-tick-ms`)."""
    if niceness:
        os.nice(niceness)

    async def main() -> tuple[Totals, float, list[float], float]:
        sockets = await asyncio.gather(*(connect_user(port) for _ in offsets))
        conn.send("connected")
        start_at = await asyncio.to_thread(conn.recv)
        totals, lags = Totals(), []
        loop = asyncio.get_running_loop()

        async def ticker() -> None:  # the client loop's own lag: a timer 5 ms apart, and how late it fires
            due = start_at
            while True:
                await asyncio.sleep(max(0.0, due - loop.time()))
                lags.append((loop.time() - due) * 1000)
                due = loop.time() + 0.005

        framed = masked_frames(frames)  # written as they are: no framing or masking per frame
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu, waited = time.process_time(), run_queue_seconds(os.getpid())
        await stream_users(sockets, framed, [start_at + offset for offset in offsets], seconds, totals, tick_s,
                           origin=start_at)
        cpu, waited = time.process_time() - cpu, run_queue_seconds(os.getpid()) - waited
        ticking.cancel()
        return totals, cpu, lags, waited

    conn.send(asyncio.run(main()))


async def run(sessions: int, seconds: float, utterance: np.ndarray, synchronized: bool,
              workers: int = 1, server_args: tuple[str, ...] = (), clients: int = 1,
              client_nice: int = 0, tick_s: float = 0.0, log_to_file: bool = False) -> dict[str, Any]:
    ready = rf"all {workers} workers serving ws://[\d.]+:(\d+)/" if workers > 1 else r"serving ws://[\d.]+:(\d+)/"
    proc, port, log_lines = await start_server(*fake_server_args(sessions), "--workers", str(workers), *server_args,
                                               ready=ready, log_to_file=log_to_file)
    frames = mic_frames(utterance)
    # Real users' turns end at different moments: start them spread over one utterance loop. With
    # --synchronized they start within one frame, so all turns end together (the worst case). User i runs
    # in client process i % clients.
    period_s = (FRAME_MS if synchronized else len(frames) * FRAME_MS) / 1000
    clients = min(clients, sessions)
    context = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for c in range(clients):
        parent_end, child_end = context.Pipe()
        offsets = [i * period_s / sessions for i in range(c, sessions, clients)]
        child = context.Process(target=client_process, args=(child_end, port, frames, seconds, offsets, client_nice,
                                                                        tick_s),
                                  daemon=True)
        child.start()
        child_end.close()  # the child's end: if the child dies, the parent's recv raises EOFError, not hangs
        pipes.append(parent_end)
        children.append(child)
    totals, client_cpu, client_waited, lags = Totals(), 0.0, 0.0, []
    try:
        for pipe in pipes:  # every user connected, in every client process
            await asyncio.to_thread(pipe.recv)
        load_before, start_at = os.getloadavg()[0], time.monotonic() + 0.5
        for pipe in pipes:
            pipe.send(start_at)
        await asyncio.sleep(start_at - time.monotonic())
        server_cpu, server_waited = cpu_seconds(proc.pid), run_queue_seconds(proc.pid)
        for pipe in pipes:
            child_totals, cpu, child_lags, waited = await asyncio.to_thread(pipe.recv)
            totals.merge(child_totals)
            client_cpu += cpu
            client_waited += waited
            lags += child_lags
        server_waited = run_queue_seconds(proc.pid) - server_waited  # before the workers log their closes
        await wait_for_closes(log_lines, sessions)
        elapsed = time.monotonic() - start_at
        server_cpu = cpu_seconds(proc.pid) - server_cpu
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
        proc.terminate()
        await proc.wait()
    eot, barge, handled = totals.eot, totals.barge, frames_handled(log_lines)
    both = [item for item in totals.eot_by_item if item in totals.server_by_item]
    server = [totals.server_by_item[item] for item in both]
    outside = [totals.eot_by_item[item] - totals.server_by_item[item] for item in both]
    loop_cpu = [float(ms) for line in log_lines for ms in re.findall(r" loop_cpu_ms=([\d.]+)", line)]
    # per turn, the share's wall time its loop did not run: runnable but waiting for a core, or idle
    off_cpu = [share - cpu for turns in shares_by_worker(log_lines).values() for share, cpu in turns]
    return {"sessions": sessions, "clients": clients,
            "eot_n": len(eot), "eot_p50": pct(eot, 50), "eot_p99": pct(eot, 99), "eot_cut": totals.eot_unanswered,
            "server_n": len(server),
            "server_p50": pct(server, 50), "server_p99": pct(server, 99),
            "outside_p50": pct(outside, 50), "outside_p99": pct(outside, 99),
            "cpu_p50": pct(loop_cpu, 50), "cpu_p99": pct(loop_cpu, 99),
            "off_p50": pct(off_cpu, 50), "off_p99": pct(off_cpu, 99),
            "lag_p99": pct(lags, 99), "lag_max": max(lags, default=float("nan")),
            "barge_n": len(barge), "barge_p50": pct(barge, 50), "barge_p99": pct(barge, 99),
            "frames_sent": totals.frames_sent, "frames_dropped": totals.frames_sent - handled,
            "server_cores": server_cpu / elapsed, "client_cores": client_cpu / elapsed,
            "server_ms_per_1k_frames": server_cpu * 1e6 / handled if handled else float("nan"),
            "client_ms_per_1k_frames": client_cpu * 1e6 / totals.frames_sent if totals.frames_sent else float("nan"),
            "server_wait_ms_per_s": server_waited * 1000 / elapsed,
            "client_wait_ms_per_s": client_waited * 1000 / elapsed,
            "per_worker": per_worker_p99(log_lines) if workers > 1 else "",
            "load": f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
            "split": sessions_per_worker(log_lines)}


def sessions_per_worker(log_lines: list[str]) -> str:
    """How many sessions each worker opened, from the supervisor's `[worker n]` log lines: "52 / 48"."""
    opened = Counter(match.group(1) for match in (re.search(r"\[worker (\d+)\].* open remote=", line)
                                                  for line in log_lines) if match)
    return " / ".join(str(n) for _, n in sorted(opened.items()))


def shares_by_worker(log_lines: list[str]) -> dict[str, list[tuple[float, float]]]:
    """Per worker ("" with one process), every turn's (server's share, its loop's CPU in it) in ms, from the
    metrics log lines."""
    turns: dict[str, list[tuple[float, float]]] = {}
    for line in log_lines:
        found = re.search(r"(?:\[worker (\d+)\])?.* turn_end_to_first_byte=([\d.]+).* loop_cpu_ms=([\d.]+)", line)
        if found:
            turns.setdefault(found.group(1) or "", []).append((float(found.group(2)), float(found.group(3))))
    return turns


def per_worker_p99(log_lines: list[str]) -> str:
    """Each worker's own p99 of the server's share and of its loop's CPU in it: "88 / 49, 91 / 50" (ms), so
    that one slower worker shows."""
    turns = shares_by_worker(log_lines)
    return ", ".join(f"{pct([s for s, _ in turns[w]], 99):.0f} / {pct([c for _, c in turns[w]], 99):.0f}"
                     for w in sorted(turns))


def input_path_us(sessions: int, rounds: int = 7, frames_per_round: int = 100) -> float:
    """CPU per `input_audio_buffer.append` of what a Session does with it (parse and validate, base64, rate
    check, 24 -> 16 kHz resampling, framing, VAD, turn-taking), in-process with the fakes' settings: the
    socket and websockets' receive path are left out. Quiet (near-silent) frames, so no turn starts."""
    import tempfile

    import s2s_server as s2s

    async def measure() -> float:
        config = s2s.main_config(["--data-dir", tempfile.mkdtemp(prefix="s2s-overhead-"), *fake_server_args(sessions)])
        server = s2s.S2SServer(config, s2s.build_components(config))

        class NoSocket:  # the session only reads `limits` from its connection on this path
            limits = None

        users = [s2s.Session(server, NoSocket()) for _ in range(sessions)]
        for user in users:
            user.vad.load()
        rng = np.random.default_rng(0)
        appends = [json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(
            (rng.standard_normal(RATE_HZ * FRAME_MS // 1000) * 30).astype("<i2").tobytes()).decode()})
            for _ in range(50)]
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for i in range(frames_per_round):
                for user in users:
                    user.dispatch(s2s.parse_client_event(appends[i % len(appends)]))
            best = min(best, (time.process_time() - started) / (frames_per_round * sessions))
        return best * 1e6

    return asyncio.run(measure())


class StageClock:
    """The event loop's CPU per stage of a turn, while `on`: each callback's thread CPU, charged to the task it
    steps, by its name without the session id (`turn`: ASR, judgement, policy and the reply's setup;
    `response`: LLM deltas to TTS, shaping, encoding, queueing the audio; `send`: the send loop; `receive`:
    the frame that ends the turn; `llm`: the clause producer; `memory-*`: the writes), or to the callback's
    own name. It wraps asyncio's Handle._run (about 0.3 us a callback on top)."""

    def __init__(self) -> None:
        import asyncio.events

        self.on = False
        self.cpu_s: Counter[str] = Counter()
        self.steps: Counter[str] = Counter()
        handle, run, clock = asyncio.events.Handle, asyncio.events.Handle._run, self

        def timed_run(self: Any) -> None:
            if not clock.on:
                return run(self)
            started = time.thread_time()
            run(self)
            owner = getattr(self._callback, "__self__", None)
            name = owner.get_name() if isinstance(owner, asyncio.Task) else getattr(
                self._callback, "__qualname__", "callback")
            name = re.sub(r"^sess_[0-9a-f]+-", "", name)
            clock.cpu_s[name] += time.thread_time() - started
            clock.steps[name] += 1

        handle._run = timed_run  # type: ignore[method-assign]
        self._restore = lambda: setattr(handle, "_run", run)

    def close(self) -> None:
        self._restore()

    def table(self, turns: int, top: int = 8) -> str:
        total = sum(self.cpu_s.values())
        rows = [f"    {name:<22} {cpu * 1e6 / turns:7.1f} us/turn  {self.steps[name] / turns:5.2f} steps  "
                f"{100 * cpu / total:4.1f} %" for name, cpu in self.cpu_s.most_common(top)]
        return "\n".join([*rows, f"    {'all callbacks':<22} {total * 1e6 / turns:7.1f} us/turn"])


def turn_path_ms(sessions: int, utterance: np.ndarray, rounds: int = 5, stages: StageClock | None = None,
                 profile: list[Any] | None = None) -> tuple[float, float, float, float]:
    """The synchronized burst in-process, through `Session` with a socket that only records what is sent: each
    session gets the same 20 ms frames (an utterance, then the silence that ends its turn) over its receive
    loop, one frame to all sessions at a time, as fast as the server takes them; at the frame that ends every
    session's turn, the server CPU (all its threads, time.process_time) until every session's first audio
    delta went to its socket, per turn: the least of `rounds` bursts (each after the last one's replies were
    cut by the next utterance, as in the real-time rows), and the median. websockets' framing and the
    sockets are left out; the event serialisation and the memory writes (SQLite) are in. Also two p99s, in
    ms (wall clock: moved by the machine's load): speech_stopped -> first audio delta, as sent, and the frame
    that ended the turn, handed to every session at once -> first audio delta sent. The first leaves out what
    the turn waited before its speech_stopped was sent (behind the other sessions' steps); the second is
    the server's whole part of the burst. `stages`: also the loop's CPU per stage, over every burst;
    `profile`: a list that gets a cProfile.Profile of the last burst alone (which it slows)."""
    import tempfile

    import s2s_server as s2s

    class RecordingSocket:
        limits = None
        remote_address = ("127.0.0.1", 0)

        def __init__(self, audio: asyncio.Event) -> None:
            self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
            self.sent: list[tuple[float, str]] = []
            self.audio = audio  # set at the first audio delta

        def __aiter__(self) -> RecordingSocket:
            return self

        async def __anext__(self) -> str:
            message = await self.inbox.get()
            if message is None:
                raise StopAsyncIteration
            return message

        async def send(self, message: str | bytes, text: bool | None = None) -> None:
            self.send_at_once(message)

        def send_at_once(self, message: str | bytes) -> bool:  # the server's writes without waiting (scale7)
            self.sent.append((time.perf_counter(), kind := event_type(message)))
            if kind == "response.output_audio.delta":
                self.audio.set()
            return True

    def first(sock: RecordingSocket, kind: str) -> float | None:
        return next((t for t, k in sock.sent if k == kind), None)

    async def measure() -> tuple[float, float, float]:
        config = s2s.main_config(["--data-dir", tempfile.mkdtemp(prefix="s2s-overhead-"), *fake_server_args(sessions)])
        server = s2s.S2SServer(config, s2s.build_components(config))
        await server.memory.open()
        settle = getattr(s2s, "settle_garbage_collector", None)  # as `serve` does (absent from servers before it)
        if settle is not None:
            settle(config)
        sockets = [RecordingSocket(asyncio.Event()) for _ in range(sessions)]
        runs = [asyncio.create_task(s2s.Session(server, sock).run()) for sock in sockets]
        cpu_ms, latency_ms, from_frame_ms = [], [], []
        for _ in range(rounds):
            for frame in mic_frames(utterance):
                handed = time.perf_counter()
                for sock in sockets:
                    sock.sent.clear()
                    sock.audio.clear()
                    sock.inbox.put_nowait(frame)
                started = time.process_time()
                profiling = cProfile.Profile() if profile is not None and len(cpu_ms) == rounds - 1 else None
                if profiling is not None:
                    profiling.enable()
                if stages is not None:
                    stages.on, before = True, (stages.cpu_s.copy(), stages.steps.copy())
                for _ in range(100):  # every session takes the frame (a few loop turns)
                    await asyncio.sleep(0)
                    if all(sock.inbox.empty() for sock in sockets):
                        break
                await asyncio.sleep(0)
                if first(sockets[0], "input_audio_buffer.speech_stopped") is None:
                    if profiling is not None:  # not the frame that ends the turns: forget it
                        profiling.disable()
                    if stages is not None:  # not the frame that ends the turns: forget it
                        stages.on, (stages.cpu_s, stages.steps) = False, before
                    continue
                # the frame that ended the turns: until every first audio is sent
                await asyncio.wait_for(asyncio.gather(*(sock.audio.wait() for sock in sockets)), 10)
                cpu_ms.append((time.process_time() - started) * 1000 / sessions)
                if profiling is not None:
                    profiling.disable()
                    profile.append(profiling)  # type: ignore[union-attr]
                if stages is not None:
                    stages.on = False
                latency_ms += [(first(sock, "response.output_audio.delta") - first(
                    sock, "input_audio_buffer.speech_stopped")) * 1000 for sock in sockets]
                from_frame_ms += [(first(sock, "response.output_audio.delta") - handed) * 1000 for sock in sockets]
            await asyncio.sleep(0.3)  # the replies stream on; the next utterance cuts them
        for sock in sockets:
            sock.inbox.put_nowait(None)
        await asyncio.gather(*runs, return_exceptions=True)
        await server.memory.close()
        return min(cpu_ms), float(np.median(cpu_ms)), pct(latency_ms, 99), pct(from_frame_ms, 99)

    return asyncio.run(measure())



def non_negative_ms(text: str) -> float:
    """An argparse type: milliseconds, 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 100], help="concurrent users per run")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument("--synchronized", action="store_true",
                        help="start every user within one frame, so all turns end at once (the worst case)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="server processes sharing the port (one run per value, side by side)")
    parser.add_argument("--clients", type=int, nargs="+", default=[2],
                        help="processes the simulated users run in, started together (one run per value)")
    parser.add_argument("--client-nice", type=int, nargs="+", default=[0], metavar="N", choices=range(20),
                        help="run the client processes at this niceness (one run per value): a labelled variant "
                             "that gives the server the cores first, as when the users are on other machines")
    parser.add_argument("--send-tick-ms", type=non_negative_ms, nargs="+", default=[0.0], metavar="MS",
                        help="client processes write their users' frames only on ticks this far apart (one run per "
                             "value; 0: each frame when due, within 0.5 ms): a labelled change of the load "
                             "generator, each frame up to one tick late and many users' frames arriving together")
    parser.add_argument("--server-log", nargs="+", default=["pipe"], choices=["pipe", "file"],
                        help="where the server's log lines go (one run per value): a pipe this process reads as "
                             "each line comes, or a file it reads every 50 ms (a labelled variant: nothing wakes "
                             "for each line)")
    parser.add_argument("--silent", action="store_true",
                        help="users stream silence (no turns): the per-frame cost alone, as server CPU per 1,000 "
                             "frames")
    parser.add_argument("--input-path", action="store_true",
                        help="instead of the rows: the CPU of the server's own input path per 20 ms append, "
                             "in-process (no sockets, no websockets), best of 7 rounds: hardly moved by load")
    parser.add_argument("--server-args", nargs="+", default=[""], metavar="ARGS",
                        help="extra server settings, one row per string (for A/B rows in one run), e.g. "
                             "--server-args '--memory-hold-s 0' '--memory-hold-s 1'")
    parser.add_argument("--turn-path", action="store_true",
                        help="instead of the rows: the server CPU per turn of the synchronized burst, from the frame "
                             "that ends the turns to every first audio delta, in-process (no sockets): least and "
                             "median of 5 bursts, and how the server's share of the machine moves it")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="with --turn-path: cProfile over the last burst only, its N costliest functions by "
                             "own time (that burst's CPU figure is then the profiler's too)")
    parser.add_argument("--stages", action="store_true",
                        help="with --turn-path: also the event loop's CPU per stage of a turn (the task each "
                             "callback steps: turn, response, send, receive, llm, memory)")
    args = parser.parse_args()
    if args.turn_path:
        utterance = speech("Tell me something interesting about the ocean, please.", RATE_HZ)
        for sessions in args.sessions:
            stages = StageClock() if args.stages else None
            profile: list[Any] | None = [] if args.profile else None
            least, median, p99, from_frame = turn_path_ms(sessions, utterance, stages=stages, profile=profile)
            print(f"{least:.2f} ms (median {median:.2f}) of server CPU per turn, turn end -> every first audio "
                  f"({sessions} sessions at once, in-process, least of 5 bursts); first audio p99, from "
                  f"speech_stopped as sent {p99:.1f} ms, from the frame that ended the turns {from_frame:.1f} ms; "
                  f"load average {os.getloadavg()[0]:.1f}")
            if stages is not None:
                stages.close()
                print("  the event loop's CPU per stage, mean over the 5 bursts (with the clock's own cost):")
                print(stages.table(5 * sessions))
            if profile:
                print(f"  cProfile over the last burst of {sessions} turns, by own time:")
                pstats.Stats(profile[0]).sort_stats("tottime").print_stats(args.profile)
        return
    if args.input_path:
        for sessions in args.sessions:
            print(f"{input_path_us(sessions):.1f} us of server CPU per append ({sessions} session"
                  f"{'s' if sessions > 1 else ''}, in-process, "
                  f"silent 20 ms frames at 24 kHz, best of 7; load average {os.getloadavg()[0]:.1f})")
        return
    utterance = speech("Tell me something interesting about the ocean, please.", RATE_HZ)
    if args.silent:
        utterance = np.zeros_like(utterance)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"users {'synchronized (all turns end at once)' if args.synchronized else 'spread'}"
          f"{', streaming silence (no turns)' if args.silent else ''}; "
          f"{args.seconds:g} s per row")
    print("| sessions | processes | client processes | end-of-turn -> first audio at the client p50 / p99 (turns; cut "
          "before audio) | server's own share p50 / p99 (turns) | its event loop's CPU in it p50 / p99 | the share "
          "minus that CPU p50 / p99 | client "
          "minus server p50 / p99 | client loop lag "
          "p99 / max | barge-in -> cancelled done p50 / p99 (n) | input frames dropped | CPU used, server / clients "
          "(cores) | CPU per 1,000 frames, server / clients | waiting for a core, server / clients (ms per s) "
          "| load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sessions in args.sessions:
        for clients, nice, tick_ms, server_log, workers, extra in itertools.product(
                args.clients, args.client_nice, args.send_tick_ms, args.server_log, args.workers, args.server_args):
            r = asyncio.run(run(sessions, args.seconds, utterance, args.synchronized, workers,
                                tuple(shlex.split(extra)), clients, nice, tick_ms / 1000, server_log == "file"))
            split = (f", sessions {r['split']}, share / loop CPU p99 per process {r['per_worker']} ms"
                     if workers > 1 else "")
            print(f"| {sessions} | {workers}{split}{f' ({extra})' if extra else ''}"
                  f"{', log to a file' if server_log == 'file' else ''} "
                  f"| {r['clients']}{f' at nice {nice}' if nice else ''}"
                  f"{f', frames sent on {tick_ms:g} ms ticks' if tick_ms else ''} "
                  f"| {r['eot_p50']:.1f} / {r['eot_p99']:.1f} ms ({r['eot_n']}; {r['eot_cut']}) "
                  f"| {r['server_p50']:.1f} / {r['server_p99']:.1f} ms ({r['server_n']}) "
                  f"| {r['cpu_p50']:.1f} / {r['cpu_p99']:.1f} ms "
                  f"| {r['off_p50']:.1f} / {r['off_p99']:.1f} ms "
                  f"| {r['outside_p50']:.1f} / {r['outside_p99']:.1f} ms "
                  f"| {r['lag_p99']:.1f} / {r['lag_max']:.1f} ms "
                  f"| {r['barge_p50']:.1f} / {r['barge_p99']:.1f} ms ({r['barge_n']}) "
                  f"| {r['frames_dropped']:.0f} of {r['frames_sent']:.0f} "
                  f"| {r['server_cores']:.2f} / {r['client_cores']:.2f} "
                  f"| {r['server_ms_per_1k_frames']:.0f} / {r['client_ms_per_1k_frames']:.0f} ms "
                  f"| {r['server_wait_ms_per_s']:.0f} / {r['client_wait_ms_per_s']:.0f} | {r['load']} |", flush=True)

if __name__ == "__main__":
    main()
