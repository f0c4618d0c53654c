"""Past one machine: memory on a real PostgreSQL server, shared by several server processes behind a real
HAProxy, and what a user meets when the database goes away. Services are started by the tests
(tests/services.py); the models are the zero-latency test doubles."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from services import HAProxy, ServerProcess

import s2s_server as s2s
from s2s_config import validate_config
from tests.conftest import Client

ROOT = Path(__file__).resolve().parent.parent
# Zero-latency fakes, and test doubles that say what the judge and the LLM know about the user.
REPLICA_ARGS = ["--asr", "fake", "--tts", "fake", "--plugins", "tests.context_echo", "--llm", "test-context-echo",
                "--judge", "test-context-echo", "--fake-tts-ms-per-char", "1", "--audio-lead-ms", "0",
                "--block-temporary-s", "3600"]


@pytest.fixture
async def replicas(postgres_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """replicas(n) -> (servers, balancer): n server processes on one PostgreSQL database, behind HAProxy."""
    if shutil.which("haproxy") is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    made: list[tuple[list[ServerProcess], HAProxy]] = []

    async def make(n: int) -> tuple[list[ServerProcess], HAProxy]:
        servers = [ServerProcess(ROOT, [*REPLICA_ARGS, "--memory-url", postgres_url,
                                        "--data-dir", str(tmp_path / f"replica{i}")]) for i in range(n)]
        for server in servers:
            await server.start()
        balancer = HAProxy([("127.0.0.1", server.port) for server in servers]).start()
        made.append((servers, balancer))
        return servers, balancer

    yield make
    for servers, balancer in made:
        for server in servers:
            await server.stop()
        balancer.stop()


async def connect(balancer: HAProxy, user_id: str) -> tuple[Client, str]:
    """A client through the balancer, named `user_id`; returns it and the replica that took it (s1, s2...)."""
    client = await Client.open(balancer.url)
    await client.send("session.update", session={"s2s": {"user_id": user_id}})  # answered: updated or blocked
    return client, client.ws.response.headers["X-Served-By"]


async def acknowledged(client: Client, item_id: str) -> None:
    """Wait for the `s2s.item.stored` of `item_id`, whether it came already or is still to come."""
    while not any(e["type"] == "s2s.item.stored" and e["item_id"] == item_id for e in client.events):
        await client.wait_for("s2s.item.stored")


async def test_replicas_share_one_user_through_the_balancer(replicas):
    """A fact told to replica A is in the judge's and the LLM's context on replica B; a user blocked on B
    is refused by A at once, and still after A restarts."""
    servers, balancer = await replicas(2)
    ann, on_a = await connect(balancer, "ann")
    await ann.wait_for("session.updated")
    await ann.say("My name is Ann and I live in Paris.")
    told = await ann.wait_for("s2s.judgement")
    replied = await ann.wait_for("response.done")
    for item_id in (told["item_id"], replied["response"]["output"][0]["id"]):
        await acknowledged(ann, item_id)
    await ann.close()

    again, on_b = await connect(balancer, "ann")
    assert on_b != on_a
    await again.wait_for("session.updated")
    await again.say("What do you know about me?")
    judged = await again.wait_for("s2s.judgement")
    spoken = await again.wait_for("response.output_audio_transcript.done")
    assert "name: Ann" in judged["reason"] and "location: Paris" in judged["reason"]
    assert "the user's name is Ann" in spoken["transcript"] and "the user lives in Paris" in spoken["transcript"]
    assert "earlier: 2." in spoken["transcript"]  # A's user item and A's reply
    await again.say("I will kill you")
    await again.wait_for("s2s.blocked")
    await again.closed

    refused, where = await connect(balancer, "ann")
    assert where == on_a
    await refused.wait_for("s2s.blocked")
    assert "session.updated" not in refused.types()
    a = servers[int(on_a[1:]) - 1]
    await a.stop()
    await a.start(port=a.port)
    balancer.wait_until(lambda: balancer.healthy() == on_a)  # the balancer sends to the restarted A again
    reached = set()
    for _ in range(2):
        late, where = await connect(balancer, "ann")
        await late.wait_for("s2s.blocked")
        reached.add(where)
    assert reached == {on_a, on_b}


async def test_a_frozen_database_delays_no_reply_and_loses_no_acknowledged_item(make_server, postgres_cluster,
                                                                                postgres_url):
    """A database that stops answering (every PostgreSQL process stopped with SIGSTOP): the reply comes as
    fast as ever, the client gets `memory_delayed` for the item, and `s2s.item.stored` once it is back."""
    h = await make_server(memory_url=postgres_url, memory_timeout_s=0.5)
    c = await h.connect(user_id="ann")
    await c.turn("My name is Ann.")
    await c.wait_for("s2s.item.stored", lambda e: e["role"] == "assistant")
    postgres_cluster.freeze()
    try:
        await c.say("I live in Paris.")
        judged = await c.wait_for("s2s.judgement")
        done = await c.wait_for("response.done")
        assert done["response"]["status"] == "completed"
        await c.wait_for("error", lambda e: e["error"]["code"] == "memory_delayed"
                         and judged["item_id"] in e["error"]["message"])
        assert not any(e["type"] == "s2s.item.stored" and e["item_id"] == judged["item_id"] for e in c.events)
    finally:
        postgres_cluster.thaw()
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == judged["item_id"])
    memory = await h.server.memory.load_user("ann", 10)
    assert ("location", "Paris") in memory.facts


async def test_expiring_anonymous_memory_while_the_database_is_down_is_logged_and_done_once_it_is_back(
        make_server, postgres_cluster, postgres_url, monkeypatch, caplog):
    """The expiry of anonymous sessions' memory (`memory_anonymous_keep_days`) meets a stopped PostgreSQL: the
    failure is logged, the server serves on, and an expiry after the database is back deletes what is due."""
    expiries: asyncio.Queue[tuple[float, BaseException | None]] = asyncio.Queue()  # (started, what it raised)
    forget_anonymous = s2s.Memory.forget_anonymous

    async def next_expiry() -> tuple[float, BaseException | None]:
        return await asyncio.wait_for(expiries.get(), 30)

    async def forget_and_tell(self: s2s.Memory, before: float) -> int:
        started = time.monotonic()
        try:
            rows = await forget_anonymous(self, before)
        except Exception as exc:
            expiries.put_nowait((started, exc))
            raise
        expiries.put_nowait((started, None))
        return rows

    monkeypatch.setattr(s2s.Memory, "forget_anonymous", forget_and_tell)
    monkeypatch.setattr(s2s.S2SServer, "ANONYMOUS_EXPIRY_EVERY_S", 0.05)
    h = await make_server(memory_url=postgres_url, memory_timeout_s=0.5)
    assert (await next_expiry())[1] is None  # at start
    with caplog.at_level("WARNING", logger="s2s"):
        postgres_cluster.stop()
        try:
            while (await next_expiry())[1] is None:  # one under way as it stopped may have gone through
                pass
            c = await h.connect()
            assert (await c.turn("Hello"))["response"]["status"] == "completed"
        finally:
            postgres_cluster.start()
    assert "expired anonymous sessions' memory was not deleted: memory at" in caplog.text
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("INSERT INTO messages (user_id, session_id, item_id, role, text, created_at) VALUES "
                   "('anon-sess_old', 'sess_old', 'item_old', 'user', 'Hello.', %s)", (time.time() - 40 * 86400,))
    inserted = time.monotonic()
    while (expiry := await next_expiry())[0] < inserted or expiry[1] is not None:
        pass
    with psycopg.connect(postgres_url, autocommit=True) as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE user_id='anon-sess_old'").fetchone() == (0,)


async def test_a_database_that_goes_down_and_comes_back_gets_every_item(make_server, postgres_cluster, postgres_url):
    """PostgreSQL stopped mid-conversation (connections cut): replies go on, the item is retried and
    acknowledged once the database is back; nothing the client was told is stored goes missing."""
    h = await make_server(memory_url=postgres_url, memory_timeout_s=0.5)
    c = await h.connect(user_id="bo")
    postgres_cluster.stop()
    try:
        await c.say("I work as a sailor.")
        judged = await c.wait_for("s2s.judgement")

        def delayed(e: dict) -> bool:
            return e["error"]["code"] == "memory_delayed" and judged["item_id"] in e["error"]["message"]

        assert (await c.wait_for("response.done"))["response"]["status"] == "completed"
        if not any(e["type"] == "error" and delayed(e) for e in c.events):  # or while the reply was spoken
            await c.wait_for("error", delayed)
    finally:
        postgres_cluster.start()
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == judged["item_id"])
    assert ("job", "sailor") in (await h.server.memory.load_user("bo", 10)).facts


async def test_sigkill_of_a_replica_mid_reply_loses_nothing_acknowledged_and_the_user_goes_on(replicas, postgres_url):
    """Replica A is killed (SIGKILL) while it speaks a reply; the client reconnects through the balancer,
    lands on B, and B's judge and LLM know everything A acknowledged."""
    servers, balancer = await replicas(2)
    ann, on_a = await connect(balancer, "ann")
    await ann.wait_for("session.updated")
    for text in ("My name is Ann.", "I live in Paris."):
        await ann.say(text)
        told = await ann.wait_for("s2s.judgement")
        await ann.wait_for("s2s.item.stored", lambda e, item=told["item_id"]: e["item_id"] == item)
    await ann.say("I work as a pilot.")
    pilot = await ann.wait_for("s2s.judgement")
    await ann.wait_for("response.output_audio.delta")  # mid-reply
    await servers[int(on_a[1:]) - 1].kill()
    await ann.closed
    assert ann.ws.close_code == 1006  # no close frame: the process is gone
    acknowledged = {e["item_id"] for e in ann.events if e["type"] == "s2s.item.stored"}

    again, on_b = await connect(balancer, "ann")  # the balancer routes around the dead replica
    assert on_b != on_a
    await again.wait_for("session.updated")
    await again.say("What do you know about me?")
    judged = await again.wait_for("s2s.judgement")
    spoken = (await again.wait_for("response.output_audio_transcript.done"))["transcript"]
    for fact in ("name: Ann", "location: Paris"):  # the judge reads "kind: value", the LLM sentences
        assert fact in judged["reason"] and s2s.fact_saying(fact) in spoken
    assert pilot["item_id"] not in acknowledged or s2s.fact_saying("job: pilot") in spoken  # acknowledged: remembered
    earlier = int(spoken.rsplit("earlier: ", 1)[1].rstrip("."))
    assert earlier >= len(acknowledged) >= 2  # what A acknowledged is in B's view of earlier conversations
    with psycopg.connect(postgres_url) as db:
        stored = {row[0] for row in db.execute("SELECT item_id FROM messages WHERE user_id='ann'")}
    assert acknowledged <= stored


async def test_workers_share_one_port_and_drain_on_sigterm(tmp_path):
    """`--workers 2`: two processes serve one port, the supervisor handing each connection to the one with
    fewer open (an even split); SIGTERM to the supervisor closes every session with 1012 and it exits 0."""
    server = ServerProcess(ROOT, ["--workers", "2", "--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge",
                                  "off", "--audio-lead-ms", "0", "--fake-tts-ms-per-char", "1",
                                  "--data-dir", str(tmp_path)],
                           ready=r"all 2 workers serving ws://[\d.]+:(\d+)/")
    await server.start()
    clients = []
    try:
        for _ in range(16):
            clients.append(await Client.open(f"ws://127.0.0.1:{server.port}/v1/realtime"))
        await clients[-1].turn("Hello there.")
    finally:
        await server.stop()
    assert server.proc.returncode == 0
    for client in clients:
        await client.closed
        assert client.ws.close_code == 1012
    opened_by = Counter(line.split("]")[0] for line in server.lines if " open remote=" in line)
    assert opened_by == {"[worker 1": 8, "[worker 2": 8}  # 16 sessions, none closed before the next: 8 each
    closed_by = {line.split("]")[0] for line in server.lines if "closed after" in line}
    assert closed_by == {"[worker 1", "[worker 2"}


async def test_a_block_decided_while_the_database_is_frozen_refuses_at_once_and_is_stored_later(
        make_server, postgres_cluster, postgres_url):
    import context_echo  # noqa: F401  (registers the test doubles in this process)

    h = await make_server(memory_url=postgres_url, memory_timeout_s=0.5, judge="test-context-echo",
                          llm="test-context-echo", block_temporary_s=3600)
    c = await h.connect(user_id="mal")
    postgres_cluster.freeze()
    try:
        await c.say("I will kill you")
        await c.wait_for("s2s.blocked")  # refused at once, though nothing could be stored
        await c.closed
    finally:
        postgres_cluster.thaw()
    again = await h.connect()
    await again.send("session.update", session={"s2s": {"user_id": "mal"}})
    await again.wait_for("s2s.blocked")
    await h.server.stop()  # waits for the retried block write
    config = validate_config({"memory_url": postgres_url})
    store = s2s.PostgresMemory(config)
    await store.open()
    try:
        assert await store.check_block("mal") is not None  # stored once the database answered
    finally:
        await store.close()


async def test_replicas_starting_together_create_the_schema_once_and_a_newer_schema_stops_an_old_server(
        postgres_url):
    import asyncio

    config = validate_config({"memory_url": postgres_url})
    stores = [s2s.PostgresMemory(config) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))  # four replicas migrate at the same moment
    try:
        with psycopg.connect(postgres_url) as db:
            assert db.execute("SELECT version FROM s2s_schema").fetchall() == [(len(s2s.PostgresMemory.MIGRATIONS),)]
            db.execute("UPDATE s2s_schema SET version = version + 1")  # as a newer server would leave it
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    with pytest.raises(s2s.MemoryUnavailable, match="newer than this server knows"):
        await s2s.PostgresMemory(config).open()


def test_memory_url_must_be_postgresql_without_a_password():
    from s2s_config import ConfigError

    assert validate_config({"memory_url": "postgresql://s2s@db:5432/s2s"}).memory_url
    for url, says in [("mysql://s2s@db/s2s", "postgresql://"), ("postgresql://s2s:secret@db/s2s", "PGPASSWORD"),
                      ("postgresql://s2s@db/s2s?password=secret", "PGPASSWORD")]:
        with pytest.raises(ConfigError, match=says):
            validate_config({"memory_url": url})


async def test_a_database_that_cannot_be_reached_stops_the_start_with_a_message(tmp_path):
    server = ServerProcess(ROOT, ["--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off",
                                  "--memory-url", f"postgresql://nobody@/s2s?host={tmp_path}", "--memory-timeout-s",
                                  "0.5"])
    with pytest.raises(RuntimeError, match="server exited"):
        await server.start()
    assert await server.proc.wait() == 1
    assert any("s2s: cannot open memory at postgresql://" in line for line in server.lines)


def test_a_balancer_whose_port_another_took_starts_on_another_port():
    """Two pytest-xdist workers may find the same free port for their HAProxy: the second must not share it (HAProxy's
    default SO_REUSEPORT would split the first one's connections between them) but start on another
    (`noreuseport`, tests/services.py)."""
    import http.server
    import threading

    if shutil.which("haproxy") is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    first = HAProxy([("127.0.0.1", backend.server_port)]).start()
    second = HAProxy([("127.0.0.1", backend.server_port)])
    try:
        second.port = first.port  # as if free_port had found the same port for both
        second.start()
        assert second.port != first.port
        assert first.healthy() == second.healthy() == "s1"
    finally:
        second.stop()
        first.stop()
        backend.shutdown()
