"""Helpers shared by the benchmarks: machine description, percentiles, a server process, real-time audio."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

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


def speech(text: str, rate_hz: int, voice: str = "en-us") -> np.ndarray:
    import s2s_server as s2s

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed for test speech: apt-get install espeak-ng")
    path = Path(f"/tmp/s2s-bench-{abs(hash((text, voice)))}.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return s2s.resample(pcm, w.getframerate(), rate_hz)


async def start_server(*args: str) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """Run `s2s_server.py --port 0 ARGS` as its own process; return it, its port, and its log lines
    (kept up to date by a background reader, so the pipe never fills)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "s2s_server.py"), "--port", "0", *args, cwd=str(ROOT),
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    lines: list[str] = []
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            if not port.done() and (match := re.search(r"serving ws://[\d.]+:(\d+)/", line)):
                port.set_result(int(match.group(1)))
        if not port.done():
            port.set_exception(SystemExit("server exited:\n" + "".join(lines)))

    proc._s2s_drain = asyncio.create_task(drain())  # type: ignore[attr-defined]  # kept alive with the process
    return proc, await asyncio.wait_for(port, 600), lines
