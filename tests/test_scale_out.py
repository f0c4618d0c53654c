"""Past one machine: memory on a real PostgreSQL server, shared by several server processes behind a real
HAProxy, and what a user meets when the database goes away. Services are started by the tests
(tests/services.py); the models are the zero-latency test doubles."""

from __future__ import annotations

import asyncio
import contextlib

import s2s_server as s2s
from s2s_config import validate_config


async def test_a_frozen_database_delays_no_reply_and_loses_no_acknowledged_item(make_server, postgres_cluster,
                                                                                postgres_url):
    """A database that stops answering (every PostgreSQL process stopped with SIGSTOP): the reply comes as
    fast as ever, the client gets `memory_delayed` for the item, and `s2s.item.stored` once it is back."""
    h = await make_server(memory_url=postgres_url, memory_timeout_s=0.5)
    c = await h.connect()
    await c.send("session.update", session={"s2s": {"user_id": "ann"}})
    await c.wait_for("session.updated")
    await c.say("My name is Ann.")
    await c.wait_for("response.done")
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


async def test_a_database_that_goes_down_and_comes_back_gets_every_item(make_server, postgres_cluster, postgres_url):
    """PostgreSQL stopped mid-conversation (connections cut): replies go on, the item is retried and
    acknowledged once the database is back; nothing the client was told is stored goes missing."""
    h = await make_server(memory_url=postgres_url, memory_timeout_s=0.5)
    c = await h.connect()
    await c.send("session.update", session={"s2s": {"user_id": "bo"}})
    await c.wait_for("session.updated")
    postgres_cluster.stop()
    try:
        await c.say("I work as a sailor.")
        judged = await c.wait_for("s2s.judgement")
        assert (await c.wait_for("response.done"))["response"]["status"] == "completed"
        await c.wait_for("error", lambda e: e["error"]["code"] == "memory_delayed"
                         and judged["item_id"] in e["error"]["message"])
    finally:
        postgres_cluster.start()
    await c.wait_for("s2s.item.stored", lambda e: e["item_id"] == judged["item_id"])
    assert ("job", "sailor") in (await h.server.memory.load_user("bo", 10)).facts
