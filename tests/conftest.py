"""Shared test harness: a real s2s server on port 0, a real WebSocket client, real speech from espeak-ng.

Time is counted in events, not sleeps: `Client.wait_for` awaits the next matching server event. The steps
tests repeat are methods that await their answer: `Harness.connect(user_id=...)` (a client, signed in),
`Client.turn` (a typed turn and its response.done), `Client.update_session` (and its session.updated).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import shutil
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

import s2s_server as s2s
from s2s_config import config_model, validate_config

# espeak-ng's voices for Chinese test speech, as benchmarks/common.py names them (a test there checks they agree).
# ESPEAK_MANDARIN reads Chinese as Mandarin; ESPEAK_PINYIN_AS_ENGLISH, on espeak-ng 1.51 "Chinese (Mandarin,
# latin as English)", reads the characters' pinyin with tone digits in English ("deng three yi one xia four" for
# 等一下), which is not Mandarin: speech Whisper base writes as English guesses.
ESPEAK_MANDARIN = "cmn-latn-pinyin"
ESPEAK_PINYIN_AS_ENGLISH = "cmn"
EVENT_TIMEOUT_S = 20.0  # generous: CI machines are slow; a passing test never waits this long
MODEL_CONFIG = config_model()(llm_temperature=0.0)  # the default models, greedy, so that answers repeat


async def collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


def model_fixture(component_class: type[s2s.Component]) -> Any:
    """A module-scoped fixture: one real model component, loaded with MODEL_CONFIG (Whisper: taken from
    `SharedModels`), closed after."""

    @pytest.fixture(scope="module")
    def fixture(shared_models: SharedModels) -> Iterator[Any]:
        made = component_class(MODEL_CONFIG)
        component = shared_models.share_now(made)
        if component is made:  # not one that is shared: loaded here
            component.load()
        yield component
        component.close()

    return fixture


def speech(text: str, tmp_dir: Path, rate_hz: int = 16000, voice: str = "en-us") -> np.ndarray:
    """Real synthetic speech (espeak-ng), as int16 at `rate_hz`."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_dir / f"{abs(hash((text, voice)))}.wav"
    if not path.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return s2s.resample(pcm, w.getframerate(), rate_hz)


def silence(ms: int, rate_hz: int = 16000) -> np.ndarray:
    return np.zeros(int(rate_hz * ms / 1000), dtype=np.int16)


async def ask_aloud(server: s2s.S2SServer, question_16k: np.ndarray, until: str, timeout_s: float) -> dict[str, Any]:
    """A spoken question to `server` (started here, stopped after) over a raw WebSocket, 16 kHz in and out:
    0.5 s of silence, the question, then more silence than turn_max_silence_ms (audio sent faster than real
    time outruns the end-of-turn model, so the predictive turn-taking waits its longest), in 20 ms frames as
    fast as the socket takes them. Reads the events up to the first of type `until` (an error event fails the
    test) and returns what came: "types", "transcript" (what was heard), "audio" (the reply's int16 chunks),
    "reply" (its transcript), "metrics"."""
    got: dict[str, Any] = {"audio": [], "types": []}
    fmt = {"type": "audio/pcm", "rate": 16000}
    tail = np.zeros(s2s.ms_to_samples(server.config.turn_max_silence_ms + 300), dtype=np.int16)
    stream = np.concatenate([np.zeros(8000, dtype=np.int16), question_16k, tail])
    port = await server.start()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
            await ws.send(json.dumps({"type": "session.update",
                                      "session": {"audio": {"input": {"format": fmt}, "output": {"format": fmt}}}}))
            for start in range(0, len(stream), 320):
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": s2s.encode_pcm16(stream[start:start + 320])}))
            async with asyncio.timeout(timeout_s):
                async for message in ws:
                    event = json.loads(message)
                    got["types"].append(event["type"])
                    if event["type"] == "conversation.item.input_audio_transcription.completed":
                        got["transcript"] = event["transcript"]
                    elif event["type"] == "response.output_audio.delta":
                        got["audio"].append(np.frombuffer(base64.b64decode(event["delta"]), dtype="<i2"))
                    elif event["type"] == "response.output_audio_transcript.done":
                        got["reply"] = event["transcript"]
                    elif event["type"] == "s2s.metrics":
                        got["metrics"] = event
                    elif event["type"] == "error":
                        raise AssertionError(event)
                    if event["type"] == until:
                        break
    finally:
        await server.stop()
    return got


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


class Client:
    """A Realtime client over a real WebSocket that records every server event in order."""

    timeout_s = EVENT_TIMEOUT_S  # longest wait for one event (benchmarks/conversation_suite.py waits longer)

    def __init__(self, ws: Any):
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.monotonic() at which each event arrived
        self.frame_kinds: set[type] = set()  # str for text frames, bytes for binary ones
        self._cursor = 0
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, user_id: str | None = None, **kwargs: Any) -> Client:
        """A client of the server at `url`, once its session.created came; with `user_id`, signed in as that
        user (`sign_in`). `kwargs` go to websockets.connect."""
        client = cls(await websockets.connect(url, max_size=None, **kwargs))
        try:
            await client.wait_for("session.created")
            if user_id is not None:
                await client.sign_in(user_id)
        except BaseException:
            await client.close()  # a client that never got going is not left open
            raise
        return client

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                async with self._changed:
                    self.arrivals.append(time.monotonic())
                    self.frame_kinds.add(type(message))
                    self.events.append(json.loads(message))
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result(None)
            async with self._changed:
                self._changed.notify_all()

    async def send(self, type_: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, **fields}))

    async def say(self, text: str, respond: bool = True) -> None:
        """Typed input: a user message, then (unless `respond` is False) response.create."""
        await self.send("conversation.item.create", item={"type": "message", "role": "user",
                                                          "content": [{"type": "input_text", "text": text}]})
        if respond:
            await self.send("response.create")

    async def turn(self, text: str, where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """A typed turn (`say`), and the next response.done that matches `where`: the reply to this turn,
        unless a reply already under way ends first."""
        await self.say(text)
        return await self.wait_for("response.done", where)

    async def update_session(self, **session: Any) -> dict[str, Any]:
        """session.update with these fields, and the session.updated that answers it."""
        await self.send("session.update", session=session)
        return await self.wait_for("session.updated")

    async def sign_in(self, user_id: str) -> dict[str, Any]:
        """Name the user (memory and blocks are kept per user): update_session with s2s.user_id."""
        return await self.update_session(s2s={"user_id": user_id})

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def append_audio(self, pcm16: np.ndarray, rate_hz: int = 24000, frame_ms: int = 40,
                           realtime: bool = False, until: Callable[[], bool] | None = None) -> None:
        """Stream audio in frames: as fast as the socket takes them, or paced like a live microphone
        (`realtime`), stopping early once `until()` is true."""
        step = int(rate_hz * frame_ms / 1000)
        started = time.monotonic()
        for n, start in enumerate(range(0, len(pcm16), step)):
            if until is not None and until():
                return
            chunk = pcm16[start:start + step].astype("<i2").tobytes()
            await self.send("input_audio_buffer.append", audio=base64.b64encode(chunk).decode())
            if realtime:  # a live microphone delivers a frame every frame_ms
                await asyncio.sleep(max(0.0, started + (n + 1) * frame_ms / 1000 - time.monotonic()))

    async def wait_for(self, type_: str, where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The next event (after the last one returned) of this type that matches `where`."""

        async def find() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for i in range(self._cursor, len(self.events)):
                        ev = self.events[i]
                        if ev["type"] == type_ and (where is None or where(ev)):
                            self._cursor = i + 1
                            return ev
                    if self.closed.done():
                        raise AssertionError(f"connection closed before {type_}; saw {self.types()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), self.timeout_s)
        except TimeoutError:
            raise AssertionError(f"no {type_} within {self.timeout_s} s; saw {self.types()}") from None

    def types(self, since: int = 0) -> list[str]:
        return [e["type"] for e in self.events[since:]]

    def index(self, event: dict[str, Any]) -> int:
        return next(i for i, e in enumerate(self.events) if e is event)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class Harness:
    """An in-process server on port 0 with chosen settings, and a way to open clients to it."""

    def __init__(self, server: s2s.S2SServer):
        self.server = server
        self.clients: list[Client] = []
        self.sessions_ended: asyncio.Queue[str] = asyncio.Queue()  # session ids, as their handlers return
        handle = server._handle

        async def handle_and_report(ws: Any) -> None:
            try:
                await handle(ws)
            finally:
                self.sessions_ended.put_nowait(ws.id)

        server._handle = handle_and_report  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/v1/realtime"

    async def connect(self, user_id: str | None = None, **kwargs: Any) -> Client:
        """`Client.open` on this server; the client is closed after the test."""
        client = await Client.open(self.url, user_id, **kwargs)
        self.clients.append(client)
        return client

    def session(self) -> s2s.Session:
        (session,) = self.server.sessions.values()
        return session


# The test doubles, and no audio pacing (audio_lead_ms=0) so that replies arrive at once. Turns end after
# a plain silence window and speech over the bot cuts it at once, as these tests were written for; the
# predictive turn-taking and the barge-in hold (the defaults) are tested in test_turn_taking.py.
FAKES = {"asr": "fake", "llm": "fake", "tts": "fake", "judge": "off", "port": 0, "audio_lead_ms": 0,
         "turn_taking": "silence", "barge_in_hold": "off"}


class SharedModels:
    """Test-only: real models that `make_server` and `model_fixture` load once and share for the whole run.
    Each loaded one is kept with the settings its load() read, recorded as it ran (a setting load() never read
    cannot have changed what it loaded); a server whose settings agree on all of those gets a shallow copy with
    its own config, so the weights are shared and every setting read later is that server's. The copy's load()
    does nothing: `load_components` calls it. Servers never close their components (only `main` does), and a
    copy's close() drops only the copy's reference, so no user loses the shared weights. Only Whisper is shared:
    it took 3-9 s to load and warm up on the 2-core test machine (12:38 on 2026-12-02, load 6.8) and most of
    test_turn_taking's servers load it; the others that servers load take about a second (Smart Turn keeps its
    session once per process already)."""

    CLASSES: tuple[type[s2s.Component], ...] = (s2s.WhisperASR,)

    def __init__(self) -> None:
        self.loaded: list[tuple[s2s.Component, dict[str, Any]]] = []  # (a loaded model, the settings its load read)

    async def share(self, component: s2s.Component) -> s2s.Component:
        """A loaded copy of `component` (one of CLASSES, not loaded yet) for its config; else `component`."""
        if type(component) not in self.CLASSES:
            return component
        return await asyncio.to_thread(self.share_now, component)

    def share_now(self, component: s2s.Component) -> s2s.Component:
        """`share`, blocking (a load runs in this thread)."""
        if type(component) not in self.CLASSES:
            return component
        config = component.config
        for loaded, read in self.loaded:
            if type(loaded) is type(component) and all(getattr(config, k) == v for k, v in read.items()):
                break
        else:
            names: set[str] = set()
            component.config = recording_config(config, names)
            try:
                component.load()
            finally:
                component.config = config
            loaded, read = component, {name: getattr(config, name) for name in names}
            self.loaded.append((loaded, read))
        twin = copy.copy(loaded)
        twin.config = config
        twin.load = lambda: None  # type: ignore[method-assign]  # loaded already (load_components calls it)
        return twin


def recording_config(config: Any, names: set[str]) -> Any:
    """A copy of `config` that adds the name of every setting read from it to `names`."""
    fields = type(config).model_fields

    class Recording(type(config)):  # type: ignore[misc, valid-type]
        def __getattribute__(self, name: str) -> Any:
            if name in fields:
                names.add(name)
            return super().__getattribute__(name)

    return Recording.model_construct(_fields_set=config.model_fields_set, **dict(config))


@pytest.fixture(scope="session")
def shared_models() -> SharedModels:
    return SharedModels()


@pytest.fixture(scope="session", autouse=True)
def sha256_once_per_file() -> Iterator[None]:
    """Test-only: `s2s.sha256_of` hashes a file once per test process (each of pytest-xdist's workers) and answers
    again from memory while the file's inode, size and modification time are the same (a file written again is
    hashed again). The loads still check the digest against the pinned one; only the hashing repeats no more: the
    1.5B's 1.1 GB took 1.3 s idle and several under load, at each of the test run's dozen LLM loads (15:44 on
    2026-12-02, load 1.0)."""
    hash_file = s2s.sha256_of
    known: dict[tuple[str, int, int, int], str] = {}

    def sha256_of(path: Path) -> str:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in known:
            known[key] = hash_file(path)
        return known[key]

    s2s.sha256_of = sha256_of  # type: ignore[assignment]
    yield
    s2s.sha256_of = hash_file  # type: ignore[assignment]


@pytest.fixture
async def make_server(tmp_path: Path, shared_models: SharedModels) -> AsyncIterator[Callable[..., Any]]:
    """make_server(auth_token=None, **settings) -> Harness; every server and client is closed after the test.
    Memory goes to a fresh folder per test unless `data_dir` is given. Whisper is loaded once per set of the
    settings its load reads (`SharedModels`)."""
    harnesses: list[Harness] = []

    async def make(auth_token: str | None = None, **settings: Any) -> Harness:
        config = validate_config({**FAKES, "data_dir": str(tmp_path / "data"), **settings})
        components = s2s.build_components(config)
        components.asr = await shared_models.share(components.asr)  # type: ignore[assignment]
        await s2s.load_components(components)
        server = s2s.S2SServer(config, components, auth_token)
        harness = Harness(server)
        await server.start()
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        for client in harness.clients:
            await client.close()
        await harness.server.stop(timeout_s=5)


# ---- Real services for the scale-out tests (tests/services.py) ----------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Any:
    """One throwaway PostgreSQL cluster per test process (each of pytest-xdist's workers; about 1.5 s to create)."""
    import services

    bin_dir = services.postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
    cluster = services.PostgresCluster(bin_dir).init()
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """A fresh, empty database in the shared cluster, as a URL for `memory_url`."""
    return postgres_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def memory_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for each memory backend, so that a memory test runs against both: SQLite under the test's
    data_dir, or a fresh PostgreSQL database (skipped only when PostgreSQL is not installed)."""
    if request.param == "sqlite":
        return {}
    return {"memory_url": request.getfixturevalue("postgres_url")}
