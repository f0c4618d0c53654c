"""Real services the scale-out tests start for themselves: a throwaway PostgreSQL cluster and HAProxy; and a
memory store as an older server left it (`store_before_migration_3`), in either.

Both come from Debian's packages (`.ci/run` installs them: `postgresql`, `haproxy`). A test that needs
one skips, naming the package, only when its binaries are absent. Nothing here is mocked: the cluster is
`initdb` + `postgres` in a temporary folder, listening on a unix socket only, and HAProxy runs a real
configuration with WebSocket tunnels and `/healthz` checks.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

STARTUP_TIMEOUT_S = 30.0


def postgres_bin_dir() -> Path | None:
    """Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if shutil.which("initdb"):
        found.append(Path(shutil.which("initdb") or "").parent)
    found = [d for d in found if (d / "pg_ctl").exists() and (d / "postgres").exists()]
    return sorted(found, key=lambda d: [int(x) for x in d.parent.name.split(".") if x.isdigit()] or [0])[-1] \
        if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL cluster in a temporary folder, reached over a unix socket in that folder.

    initdb refuses to run as root, so as root every server command runs as the `postgres` system user.
    `stop()`/`start()` make an outage; `freeze()`/`thaw()` (SIGSTOP/SIGCONT to every process of the
    cluster) make a database that accepts connections but answers nothing: a hung or very slow server.
    """

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="s2s-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir()
        self.user = "postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        else:
            import getpass

            self.user = getpass.getuser()
        self._databases = 0

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=STARTUP_TIMEOUT_S)

    def init(self) -> PostgresCluster:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--no-instructions", "--no-sync", "-E", "UTF8", "--locale=C")
        self.start()
        return self

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.socket_dir} -c max_connections=200"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-t", str(int(STARTUP_TIMEOUT_S)), "-o", options, "start")

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _pids(self) -> list[int]:
        """The postmaster and its children (the server processes of this cluster only)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={quote(str(self.socket_dir), safe='')}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        self._databases += 1
        name = f"s2s_test_{os.getpid()}_{self._databases}"
        self._run(str(self.bin_dir / "psql"), "-h", str(self.socket_dir), "-U", self.user, "-d", "postgres", "-q",
                  "-c", f"CREATE DATABASE {name}")
        return self.url(name)

    def destroy(self) -> None:
        """Stop at once, without waiting for the exit (the processes quit on SIGQUIT), and remove the files."""
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-W", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def store_before_migration_3(messages: Sequence[tuple], summaries: Sequence[tuple[str, int]] = (), *,
                             memory_url: str = "", data_dir: Path | None = None) -> None:
    """Fill a store as a server from before memory migration 3 (mem17) left it: no messages_said index and no
    summaries row for a user without a summary. PostgreSQL (`memory_url`, an empty database): migrations 1 and
    2, schema version 2, tables vacuumed and analysed after the fill, as autovacuum would; else SQLite
    (`data_dir`/memory.sqlite3, user_version 0). `messages`: rows (user_id, session_id, item_id, role, text,
    unanswered, created_at), stored in this order; `summaries`: (user_id, n), a summary covering the user's
    first n items (0: none of them). Used by tests/test_proactive.py and benchmarks/summaries_owed.py."""
    import s2s_server as s2s  # (here, not at the top: the services above start without the server's imports)

    columns = "user_id, session_id, item_id, role, text, unanswered, created_at"

    def covered_ids(ids_in_order: Iterable[tuple[int, str]]) -> list[tuple]:
        ids: dict[str, list[int]] = {}
        for rowid, user in ids_in_order:
            ids.setdefault(user, []).append(rowid)
        return [(user, "A summary.", 0.0, ids[user][n - 1] if n else 0) for user, n in summaries]

    if memory_url:
        import psycopg

        with psycopg.connect(memory_url, autocommit=True) as db:
            db.execute(s2s.PostgresMemory.MIGRATIONS[0])
            db.execute(s2s.PostgresMemory.MIGRATIONS[1])
            db.execute("CREATE TABLE s2s_schema (version INTEGER NOT NULL); INSERT INTO s2s_schema VALUES (2)")
            with db.cursor() as cur, cur.copy(f"COPY messages ({columns}) FROM STDIN") as copy:
                for row in messages:
                    copy.write_row((*row[:5], bool(row[5]), row[6]))
            if summaries:
                with db.cursor() as cur:
                    cur.executemany("INSERT INTO summaries VALUES (%s,%s,%s,%s)", covered_ids(
                        db.execute("SELECT id, user_id FROM messages ORDER BY id")))
            db.execute("VACUUM ANALYZE")
        return
    import sqlite3

    if data_dir is None:
        raise ValueError("store_before_migration_3 needs memory_url (PostgreSQL) or data_dir (SQLite)")
    data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data_dir / "memory.sqlite3") as db:
        db.executescript(s2s.SQLiteMemory.SCHEMA.replace(
            "CREATE INDEX IF NOT EXISTS messages_said ON messages (user_id, id) WHERE text<>'';", ""))
        db.executemany(f"INSERT INTO messages ({columns}) VALUES (?,?,?,?,?,?,?)", messages)
        if summaries:
            db.executemany("INSERT INTO summaries VALUES (?,?,?,?)", covered_ids(
                db.execute("SELECT id, user_id FROM messages ORDER BY id").fetchall()))
    db.close()  # (the `with` commits, it does not close)


class HAProxy:
    """HAProxy on a loopback port in front of `backends` (host, port): round robin, WebSocket upgrade (a
    tunnel with no idle timeout of its own), `/healthz` checks every 200 ms, a server out after three
    failed checks (a slow answer on a busy machine is not a dead server), and a connection refused by
    one server retried on another (a killed replica's clients land on the others at once). Each response names the
    server that answered in `X-Served-By` (s1, s2, ...), so a test knows which replica it reached."""

    def __init__(self, backends: list[tuple[str, int]]):
        self.root = Path(tempfile.mkdtemp(prefix="s2s-haproxy-"))
        self.port = free_port()
        self.token = os.urandom(6).hex()  # each response says which balancer sent it (`healthy`)
        self.backends = backends
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        servers = "\n".join(f"    server s{i} {host}:{port} check inter 200ms fall 3 rise 1"
                            for i, (host, port) in enumerate(self.backends, 1))
        return f"""global
    log stderr format raw local0 notice
    noreuseport
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout check 1s
    retries 3
    option redispatch
frontend s2s
    bind 127.0.0.1:{self.port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    http-response set-header X-Served-By %s
    http-response set-header X-Balancer {self.token}
{servers}
"""

    def start(self, attempts: int = 3) -> HAProxy:
        """Start it and wait until a server answers through it. The port was found free by binding and closing it
        (`free_port`), so another process (a second pytest-xdist worker) may take it first: with `noreuseport`
        HAProxy then fails to bind and exits (by default it would share the port with that process, SO_REUSEPORT,
        and split the connections between them), and it is started again on another port. Until it exits, the
        other process answers on the port: `healthy` asks for this balancer's own `X-Balancer` token."""
        path = self.root / "haproxy.cfg"
        for attempt in range(attempts):
            path.write_text(self.config())
            subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], check=True, timeout=STARTUP_TIMEOUT_S)
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(path)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                self.wait_until(lambda: self.healthy() is not None)
                return self
            except RuntimeError:  # it exited: the port was taken
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
        return self

    def healthy(self) -> str | None:
        """The server that answered /healthz through this balancer, or None when none did (or another process
        on its port answered)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                ours = response.status == 200 and response.headers.get("X-Balancer") == self.token
                return response.headers.get("X-Served-By") if ours else None
        except OSError:
            return None

    def wait_until(self, condition, timeout_s: float = STARTUP_TIMEOUT_S) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("haproxy did not become ready")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class ServerProcess:
    """`python s2s_server.py ARGS` as its own process (a replica, as another machine would run it). Its
    log lines are kept (a background reader drains the pipe); `port` is the one it logged it serves."""

    def __init__(self, root: Path, args: list[str], ready: str = r"serving ws://[\d.]+:(\d+)/"):
        self.root, self.args, self.ready = root, args, ready
        self.proc: Any = None
        self.port = 0
        self.lines: list[str] = []
        self._drain: Any = None

    async def start(self, port: int = 0) -> ServerProcess:
        import asyncio
        import re
        import sys

        self.lines = []
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(self.root / "s2s_server.py"), "--port", str(port), *self.args, cwd=str(self.root),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def drain() -> None:
            async for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if not ready.done() and (match := re.search(self.ready, line)):
                    ready.set_result(int(match.group(1)))
            if not ready.done():
                ready.set_exception(RuntimeError("server exited:\n" + "".join(self.lines[-30:])))

        self._drain = asyncio.create_task(drain())
        self.port = await asyncio.wait_for(ready, STARTUP_TIMEOUT_S)
        return self

    async def kill(self) -> None:
        """SIGKILL: no clean stop, nothing flushed; what was acknowledged must already be durable."""
        self.proc.kill()
        await self.proc.wait()
        await self._drain

    async def stop(self) -> None:
        """SIGTERM, the clean stop (sessions get 1012), then wait for the exit."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        if self._drain is not None:
            await self._drain
