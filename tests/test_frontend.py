"""The bundled web page, driven in a real browser against the real server.

Chromium (Debian's, /usr/bin/chromium, headless) runs with a fake microphone that plays a WAV made here
with espeak-ng and sox: 1 s of silence (playback starts when the page opens the microphone), a question,
a pause long enough for the reply to start playing, then a second utterance that cuts the reply off.
The server is `python s2s_server.py` in a subprocess with the fake LLM and TTS (a deterministic echo and
a tone) so timings are predictable; ASR is the server's default when that is a real recogniser, else the fake,
whose fixed text proves the pipeline (mic -> worklet -> WebSocket -> server VAD -> turn) but not
recognition, and the test says so. Screenshots go to test-artifacts/.

Run: pytest tests/test_frontend.py   (skipped when Chromium, espeak-ng, sox or playwright are missing)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("S2S_CHROMIUM", "/usr/bin/chromium")

playwright_sync = pytest.importorskip("playwright.sync_api")
for tool in ("espeak-ng", "sox"):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed", allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

sys.path.insert(0, str(ROOT))
from s2s_config import Config  # noqa: E402

# ---- time, as named units ----
SECOND_MS = 1000
SERVER_START_S = 60.0  # a real ASR loads its model before the port opens
CONNECT_MS = 5 * SECOND_MS
VOICE_TURN_MS = 12 * SECOND_MS  # question spoken (1 s + 2.6 s) + silence window + ASR + first audio
BARGE_IN_MS = 14 * SECOND_MS  # the second utterance starts 8.1 s into the file
TYPED_REPLY_MS = 5 * SECOND_MS
RECONNECT_MS = 8 * SECOND_MS  # backoff starts at 0.5 s; the new server needs a moment to start

# ---- the fake microphone's script ----
# Whisper base hears espeak-ng's "France" as "friends"; these words it gets right, so a failure means the
# page's audio is wrong, not the recogniser
QUESTION = "Can you tell me a story about a dragon?"
QUESTION_WORDS = ("story", "dragon")
SECOND_UTTERANCE = "Wait, stop. Tell me about Berlin instead."
LEAD_SILENCE_S = 1.0
QUESTION_S = 2.6  # how long espeak-ng takes to say QUESTION at 150 words a minute
GAP_AFTER_QUESTION_S = 4.5  # the reply (about 6 s of fake-TTS tone) is playing when the next words come
FAKE_ASR_TEXT = "fake asr heard speech"  # what the fake recogniser says, whatever it heard
FAKE_LLM_REPLY = "You said: {user}. That is a fine thing to talk about, tell me more about it."

pytestmark = pytest.mark.browser

# The server's default recogniser once it is a real one (a model that ships in a pip package); until
# then the fake, and the transcript test says what it can and cannot prove.
REAL_ASR = Config().asr if Config().asr != "fake" else None

LAUNCH_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# ---- fixtures ----


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16-bit mono WAV: silence, the question, a pause, the second utterance, silence (24-bit plays silence)."""
    folder = tmp_path_factory.mktemp("mic")
    q1, q2, a, b, mic = (folder / n for n in ("q1.wav", "q2.wav", "a.wav", "b.wav", "mic.wav"))
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(q1), QUESTION], check=True)
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(q2), SECOND_UTTERANCE], check=True)
    fmt = ["-b", "16", "-e", "signed-integer", "-c", "1", "-r", "48000"]
    subprocess.run(["sox", str(q1), *fmt, str(a), "pad", str(LEAD_SILENCE_S), str(GAP_AFTER_QUESTION_S)], check=True)
    subprocess.run(["sox", str(q2), *fmt, str(b), "pad", "0", "3"], check=True)
    subprocess.run(["sox", str(a), str(b), str(mic)], check=True)
    return mic


class ServerProcess:
    """`python s2s_server.py` on a free port, ready when it logs the address it serves; memory in `folder`."""

    def __init__(self, folder: Path, port: int = 0, asr: str = "fake", token: str = "", extra: tuple[str, ...] = ()):
        self.log_path = folder / "server.log"
        self.env = {**os.environ, "S2S_AUTH_TOKEN": token} if token else None
        self.cmd = [
            sys.executable, str(ROOT / "s2s_server.py"), "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(folder / "data"),
            "--asr", asr, "--llm", "fake", "--tts", "fake", "--judge", "off",
            "--fake-asr-text", FAKE_ASR_TEXT, "--fake-llm-reply", FAKE_LLM_REPLY, "--log-level", "INFO", *extra,
        ]
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> ServerProcess:
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=self.env)
        found = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                m = re.search(r"serving ws://[^:]+:(\d+)/v1/realtime", line)
                if m and not found.is_set():
                    self.port = int(m.group(1))
                    found.set()
            log.close()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + SERVER_START_S
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")
        urllib.request.urlopen(f"{self.url}healthz", timeout=5).read()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # graceful: sessions get close code 1012
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("server"), asr=REAL_ASR or "fake").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(mic_wav: Path) -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*LAUNCH_ARGS, f"--use-file-for-fake-audio-capture={mic_wav}%noloop"],
        )
        yield b
        b.close()


class Page:
    """A fresh browser context (empty localStorage) on the page, with its console collected."""

    def __init__(self, browser: object, url: str, width: int = 1100, height: int = 800):
        self.context = browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(f"uncaught: {e}"))
        self.page.goto(url)

    def js(self, expression: str) -> object:
        return self.page.evaluate(expression)

    def wait(self, expression: str, timeout_ms: int) -> None:
        """Wait until a JavaScript expression on the page is truthy."""
        self.page.wait_for_function(expression, timeout=timeout_ms, polling=50)

    def events(self, type_: str) -> list[dict]:
        return self.js(f"s2s.events.filter(e => e.type === {type_!r})")  # type: ignore[return-value]

    def sent(self, type_: str) -> list[dict]:
        return self.js(f"s2s.sent.filter(e => e.type === {type_!r})")  # type: ignore[return-value]

    def assert_clean(self) -> None:
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.events("error") == [], f"server error events: {self.events('error')}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: object, server: ServerProcess) -> Iterator:
    pages: list[Page] = []

    def make(**kw: int) -> Page:
        pages.append(Page(browser, server.url, **kw))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def tab_to(page: Page, element_id: str, *, backwards: bool = False, limit: int = 20) -> None:
    """Move keyboard focus with Tab (or Shift+Tab) until the element has it."""
    for _ in range(limit):
        if page.js("document.activeElement && document.activeElement.id") == element_id:
            return
        page.page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"#{element_id} is not reachable with the keyboard")


def connect(page: Page, *, streaming: bool = True) -> None:
    """Press Connect; wait for the session (and, unless push-to-talk holds it back, for audio to flow)."""
    page.page.click("#connect")
    ready = "s2s.connection === 'connected' && s2s.events.some(e => e.type === 'session.updated')"
    page.wait(ready + (" && s2s.framesSent > 0" if streaming else ""), CONNECT_MS)


# ---- tests ----


def test_resampler_keeps_speech_band_tones_and_removes_aliases(open_page) -> None:
    """The page's resampler turns a 1 kHz tone at 44.1/48 kHz into the same tone at 16/24 kHz and filters 15 kHz out."""
    page = open_page()
    result = page.js("""async () => {
        const { Resampler } = await import('./resampler.js');
        const out = {};
        const cases = [[48000, 24000, 1000], [44100, 16000, 1000], [24000, 48000, 1000], [48000, 24000, 15000]];
        for (const [from, to, hz] of cases) {
            const x = new Float32Array(from);
            for (let i = 0; i < from; i++) x[i] = 0.5 * Math.sin(2 * Math.PI * hz * i / from);
            const r = new Resampler(from, to);
            const parts = [];  // render-quantum blocks, as the worklet feeds it
            for (let i = 0; i < from; i += 128) parts.push(Array.from(r.process(x.subarray(i, i + 128))));
            const y = parts.flat();
            let err = 0, pow = 0, energy = 0;
            for (let n = Math.floor(to * 0.1); n < Math.floor(to * 0.9); n++) {
                const ideal = 0.5 * Math.sin(2 * Math.PI * hz * n / to);
                err += (y[n] - ideal) ** 2; pow += ideal ** 2; energy += y[n] ** 2;
            }
            const snrDb = 10 * Math.log10(pow / err);
            out[`${from}-${to}-${hz}`] = { n: y.length, snrDb, rms: Math.sqrt(energy / (0.8 * to)) };
        }
        return out;
    }""")
    for key in ("48000-24000-1000", "44100-16000-1000", "24000-48000-1000"):
        to = int(key.split("-")[1])
        assert abs(result[key]["n"] - to) < 64, (key, result[key])
        assert result[key]["snrDb"] > 60, (key, result[key])
    assert result["48000-24000-15000"]["rms"] < 0.001  # above the 12 kHz Nyquist limit: gone, not folded to 9 kHz
    page.assert_clean()


def test_page_connects_and_streams_the_microphone(open_page) -> None:
    """Connect opens the session, sends the page's settings, and streams 20 ms PCM16 frames at the wire rate."""
    page = open_page()
    assert page.js("s2s.connection") == "disconnected"
    connect(page)
    page.wait("s2s.events.some(e => e.type === 'session.updated')", CONNECT_MS)
    assert page.page.inner_text("#conn-text") == "Connected"
    assert page.js("s2s.state") == "listening"
    update = page.sent("session.update")[0]["session"]
    assert update["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert update["s2s"]["user_id"] == page.js("s2s.settings.userId")
    assert page.js("s2s.sampleRate") in (44100, 48000)  # the context rate; the page resamples to 24 kHz
    frames, sent_ms = page.js("[s2s.framesSent, s2s.audioSentMs]")
    page.page.wait_for_timeout(2 * SECOND_MS)
    frames, sent_ms = page.js(f"[s2s.framesSent - {frames}, s2s.audioSentMs - {sent_ms}]")
    assert sent_ms / frames == pytest.approx(20.0)  # every append carries 20 ms (the brief allows 20 to 40)
    assert 0.7 * 2 * SECOND_MS < sent_ms < 1.3 * 2 * SECOND_MS  # real time: resampled to the wire rate, not 44.1/48k
    page.assert_clean()


def test_spoken_question_becomes_the_transcript_and_the_reply_plays(open_page) -> None:
    """The fake microphone's question appears as the user's words; the reply's text appears and its audio plays."""
    page = open_page()
    connect(page)
    page.wait("document.querySelector('.turn.user .final')?.textContent.length > 0", VOICE_TURN_MS)
    transcript = page.page.inner_text(".turn.user .final").lower()
    if REAL_ASR:
        assert all(word in transcript for word in QUESTION_WORDS), transcript
    else:
        # fake ASR: proves the page's audio reached the server's VAD as speech (a real VAD), not recognition
        assert transcript == FAKE_ASR_TEXT
        assert page.events("input_audio_buffer.speech_started")
    page.wait("document.querySelector('.turn.bot .text')?.textContent.startsWith('You said:')", VOICE_TURN_MS)
    assert page.page.inner_text(".turn.bot .chip").lower() == "reply"
    page.wait("s2s.playedMs > 500", VOICE_TURN_MS)  # half a second of the reply reached the speaker
    a = page.js("s2s.playedSamples")
    page.page.wait_for_timeout(300)
    assert page.js("s2s.playedSamples") > a  # still playing, gaplessly
    page.wait("document.querySelector('.turn.bot .metrics')?.textContent.includes('voice→voice')", VOICE_TURN_MS)
    page.assert_clean()


def test_second_utterance_during_playback_stops_it_and_truncates(open_page) -> None:
    """Speaking while the reply plays stops playback at once and tells the server how much was heard."""
    page = open_page()
    connect(page)
    page.wait("s2s.playedMs > 500", VOICE_TURN_MS)
    page.wait("s2s.truncates.length > 0", BARGE_IN_MS)
    truncate = page.js("s2s.truncates[0]")
    played_ms = page.js("s2s.playedMs")
    bot_item = page.js("s2s.events.find(e => e.type === 'response.output_audio.delta').item_id")
    assert truncate["itemId"] == bot_item
    # only one item has played, so what it heard is what the speaker played (stop fades within 2.7 ms)
    assert abs(truncate["audioEndMs"] - played_ms) < 60, (truncate, played_ms)
    barge_in = [e for e in page.events("input_audio_buffer.speech_started") if e["t"] <= truncate["t"]][-1]
    assert truncate["reason"] == "barge-in"
    assert truncate["t"] - barge_in["t"] < 150  # the stop happened as soon as the server heard the user
    sent = page.sent("conversation.item.truncate")[0]
    assert sent["item_id"] == bot_item and sent["content_index"] == 0 and sent["audio_end_ms"] == truncate["audioEndMs"]
    frozen = page.js("s2s.playedSamples")
    page.page.wait_for_timeout(500)
    assert page.js("s2s.playedSamples") == frozen  # nothing more of that reply plays
    page.wait("s2s.events.some(e => e.type === 'conversation.item.truncated')", CONNECT_MS)
    assert page.page.locator(".turn.bot .cut-mark").count() == 1
    # the page shows as heard exactly what the server kept (its answer to the truncate), and dims the rest
    heard = page.js("s2s.events.find(e => e.type === 'conversation.item.truncated').transcript")
    shown = page.js("[...document.querySelectorAll('.turn.bot .text span[data-at-ms]:not(.unheard)')].map(s => "
                    "[...s.childNodes].filter(n => !(n.classList && n.classList.contains('unheard')))"
                    ".map(n => n.textContent).join('')).filter(t => t.trim()).map(t => t.trim()).join(' ')")
    dimmed = page.js("[...document.querySelectorAll('.turn.bot .text .unheard')].map(s => s.textContent).join('')")
    received = page.js("[...document.querySelectorAll('.turn.bot .text span[data-at-ms]')].map(s => s.textContent)"
                       ".join(' ')")
    assert heard and shown == heard, (shown, heard)
    # every word the page received past what was heard is dimmed (none when the cut fell after the last clause
    # that had arrived: under load the next clause's text may come later than the user's barge-in)
    assert "".join((heard + dimmed).split()) == "".join(received.split()), (heard, dimmed, received)
    page.assert_clean()

    ARTIFACTS.mkdir(exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "frontend-desktop.png"))
    page.page.set_viewport_size({"width": 375, "height": 740})
    page.page.screenshot(path=str(ARTIFACTS / "frontend-phone.png"))
    assert page.js("document.documentElement.scrollWidth") <= 375  # nothing spills sideways at phone width


def test_keyboard_alone_can_switch_to_push_to_talk_connect_and_type(open_page) -> None:
    """With only the keyboard: turn on push-to-talk, connect, type a message, get the reply; focus is visible."""
    page = open_page()
    tab_to(page, "ptt")
    outline = page.js("getComputedStyle(document.querySelector('#ptt + .switch-track')).outlineStyle")
    assert outline != "none"  # the switch shows it has focus
    page.page.keyboard.press("Space")
    assert page.js("document.querySelector('#ptt').checked") is True
    assert page.page.is_visible("#talk")
    tab_to(page, "connect", backwards=True)
    assert page.js("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.page.keyboard.press("Enter")
    page.wait("s2s.connection === 'connected' && s2s.events.some(e => e.type === 'session.updated')", CONNECT_MS)
    assert page.sent("session.update")[0]["session"]["audio"]["input"]["turn_detection"] is None
    applied = page.events("session.updated")[-1]["session"]
    assert applied["audio"]["input"]["turn_detection"] is None
    tab_to(page, "message")
    page.page.keyboard.type("hello from the keyboard")
    page.page.keyboard.press("Enter")
    typed = "[...document.querySelectorAll('.turn.user.typed .final')].map(e => e.textContent)"
    page.wait(f"{typed}.includes('hello from the keyboard')", CONNECT_MS)
    reply = "document.querySelector('.turn.bot .text')?.textContent"
    page.wait(f"{reply}?.includes('You said: hello from the keyboard')", TYPED_REPLY_MS)
    assert page.events("input_audio_buffer.speech_started") == []  # push-to-talk: no audio went out unasked
    page.assert_clean()


def test_every_button_is_named_by_the_words_it_shows(open_page) -> None:
    """Each visible button's accessible name holds the words it shows (WCAG 2.5.3, label in name), so a user of
    speech control can say what they see: the Settings dialog's "Done" is named "Done"."""
    page = open_page()
    page.page.click("label.switch")  # push-to-talk shows the talk button too

    def check(scope: object) -> int:
        checked = 0
        for button in scope.get_by_role("button").all():  # type: ignore[attr-defined]
            words = re.findall(r"[A-Za-z]+", button.inner_text())
            if not words or not button.is_visible():
                continue  # a symbol such as a notice's "×" may carry any name
            snapshot = button.aria_snapshot()  # - button "NAME" [pressed=false]
            name = re.match(r'- button "([^"]*)"', snapshot)
            assert name and all(w.lower() in name.group(1).lower() for w in words), (button.inner_text(), snapshot)
            checked += 1
        return checked

    assert check(page.page) >= 5  # Connect, Settings, Mute, Hold to talk, Stop, Send
    page.page.click("#settings-open")
    dialog = page.page.get_by_role("dialog", name="Settings")
    assert check(dialog) == 2  # Done, Use server defaults
    dialog.get_by_role("button", name="Done", exact=True).click()
    assert page.js("document.querySelector('#settings').open") is False
    page.assert_clean()


def test_stop_button_cancels_the_reply_and_truncates(open_page) -> None:
    """The stop button silences the reply at once, cancels it on the server and truncates it to what played."""
    page = open_page()
    connect(page)
    page.wait("s2s.playedMs > 500 && !document.querySelector('#stop').disabled", VOICE_TURN_MS)
    page.page.click("#stop")
    page.wait("s2s.truncates.length > 0", CONNECT_MS)
    truncate = page.js("s2s.truncates[0]")
    assert truncate["reason"] == "stop"
    assert abs(truncate["audioEndMs"] - page.js("s2s.playedMs")) < 60
    frozen = page.js("s2s.playedSamples")
    page.page.wait_for_timeout(300)
    assert page.js("s2s.playedSamples") == frozen
    page.wait("s2s.events.some(e => e.type === 'response.done')", CONNECT_MS)
    done = page.events("response.done")[0]["response"]
    if page.sent("response.cancel"):  # the reply was still being generated: the server cancelled it
        assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    assert page.page.locator(".turn.bot .cut-mark").count() == 1
    page.assert_clean()


def test_stop_pressed_from_the_keyboard_keeps_focus(open_page) -> None:
    """Stop, pressed with Enter, stops the bot and keeps keyboard focus (read as disabled, inert) instead of
    dropping it to the page's body; Tab then goes on to the next control and Stop is disabled for real."""
    page = open_page()
    page.page.click("label.switch")  # push-to-talk: the fake microphone's words do not cut the reply first
    connect(page, streaming=False)
    page.page.fill("#message", "tell me something")
    page.page.press("#message", "Enter")
    page.wait("s2s.playedMs > 300 && !document.querySelector('#stop').disabled", TYPED_REPLY_MS)
    tab_to(page, "stop", backwards=True)
    page.page.keyboard.press("Enter")
    page.wait("s2s.truncates.length > 0", CONNECT_MS)
    page.wait("(b => b.disabled || b.getAttribute('aria-disabled') === 'true')(document.querySelector('#stop'))",
              CONNECT_MS)
    assert page.js("document.activeElement.id") == "stop"
    assert page.js("document.querySelector('#stop').getAttribute('aria-disabled')") == "true"
    assert page.page.get_by_role("button", name="Stop").is_disabled()  # what assistive technology is told
    page.page.keyboard.press("Enter")  # inert now: nothing more is sent
    assert len(page.sent("response.cancel")) <= 1 and len(page.js("s2s.truncates")) == 1
    page.page.keyboard.press("Tab")
    assert page.js("document.activeElement.id") == "ptt"
    page.wait("document.querySelector('#stop').disabled", CONNECT_MS)  # disabled for real once focus left
    assert page.js("document.querySelector('#stop').getAttribute('aria-disabled')") is None
    page.assert_clean()


def test_a_typed_message_over_the_servers_limit_stays_in_the_composer_with_a_notice(open_page) -> None:
    """A pasted text longer than the server takes in one message (`max_message_bytes`, told in session.created) is
    not sent: the server would close the socket (1009) and the words would be lost. A notice says why, the words
    stay in the composer, the session stays up, and a shorter message still goes."""
    page = open_page()
    page.page.click("label.switch")  # push-to-talk: no microphone audio in the way
    connect(page, streaming=False)
    limit = page.js("s2s.events.find(e => e.type === 'session.created').session.s2s.max_message_bytes")
    assert limit == 1 << 20
    long_text = "word " * (limit // 5 + 100)
    page.page.fill("#message", long_text)
    page.page.press("#message", "Enter")
    page.wait("document.querySelector('.notice') && /too long/.test(document.querySelector('.notice').textContent)",
              CONNECT_MS)
    assert page.sent("conversation.item.create") == []
    assert page.js("document.querySelector('#message').value.length") == len(long_text)
    page.page.fill("#message", "tell me something")
    page.page.press("#message", "Enter")
    page.wait("s2s.events.some(e => e.type === 'response.done')", TYPED_REPLY_MS)
    assert page.js("s2s.connection") == "connected"
    page.assert_clean()


def test_dismissing_a_notice_from_the_keyboard_keeps_focus_on_the_page(open_page) -> None:
    """A notice dismissed with the keyboard hands focus to the conversation, not to the page's body."""
    page = open_page()
    page.page.click("label.switch")
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)
    page.page.click("#mute")
    page.page.focus("#connect")
    page.page.keyboard.press("Space")  # push-to-talk while muted: a notice says so
    page.wait("document.querySelector('.notice .notice-close')", CONNECT_MS)
    tab_to(page, "log", backwards=True)
    page.page.keyboard.press("Shift+Tab")  # the notice's Dismiss button comes just before the conversation
    assert page.js("document.activeElement.getAttribute('aria-label')") == "Dismiss"
    page.page.keyboard.press("Enter")
    assert page.js("document.querySelectorAll('.notice').length") == 0
    assert page.js("document.activeElement.id") == "log"
    page.assert_clean()


def test_holding_space_in_push_to_talk_sends_one_committed_turn(open_page) -> None:
    """Push-to-talk: audio goes out only while Space is held; letting go commits the turn and the bot answers."""
    page = open_page()
    page.page.click("label.switch")  # the switch's label: the checkbox itself is visually hidden
    assert page.js("document.querySelector('#ptt').checked") is True
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)  # the fake microphone's file starts playing now
    page.page.focus("#connect")  # Space on a button talks rather than clicking it
    assert page.js("s2s.framesSent") == 0  # not held: nothing is sent
    page.page.keyboard.down("Space")
    page.wait("s2s.framesSent > 0", CONNECT_MS)
    assert page.page.get_attribute("#talk", "aria-pressed") == "true"
    page.page.wait_for_timeout(int((LEAD_SILENCE_S + QUESTION_S + 0.4) * SECOND_MS))
    page.page.keyboard.up("Space")
    page.wait("s2s.sent.some(e => e.type === 'input_audio_buffer.commit')", CONNECT_MS)
    assert page.js("s2s.connection") == "connected"  # Space did not press the focused Disconnect button
    page.wait("document.querySelector('.turn.user .final')?.textContent.length > 0", VOICE_TURN_MS)
    if REAL_ASR:
        transcript = page.page.inner_text(".turn.user .final").lower()
        assert all(word in transcript for word in QUESTION_WORDS), transcript
    page.wait("document.querySelector('.turn.bot .text')?.textContent.startsWith('You said:')", VOICE_TURN_MS)
    assert page.events("input_audio_buffer.speech_started") == []  # the server's VAD is off: the user decides
    sent = [e["type"] for e in page.js("s2s.sent") if e["type"].startswith("input_audio_buffer")]
    assert sent == ["input_audio_buffer.clear", "input_audio_buffer.commit"]
    frames = page.js("s2s.framesSent")
    page.page.wait_for_timeout(300)
    assert page.js("s2s.framesSent") == frames  # released: sending stopped
    page.assert_clean()


def test_a_tap_of_the_talk_key_leaves_the_bot_speaking_and_a_press_cuts_it(open_page) -> None:
    """Push-to-talk while the bot speaks: a tap of Space too short to hold a word sends nothing and the reply plays
    on; a real press lowers the bot's voice at once and, once it has lasted a quarter second, cuts the reply
    (truncated to what played) and sends the audio from just before the press."""
    page = open_page()
    page.page.click("label.switch")
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)
    page.page.fill("#message", "tell me something")
    page.page.press("#message", "Enter")
    page.page.focus("#connect")  # Space on a button talks
    page.wait("s2s.playedMs > 300", TYPED_REPLY_MS)
    # the tap: the key goes down and up in one task, so it is short however busy the machine is
    ducked = page.js("""() => {
        const key = (type) => document.dispatchEvent(new KeyboardEvent(type, { code: "Space", key: " " }));
        key("keydown");
        const down = s2s.ducked;
        key("keyup");
        return [down, s2s.ducked];
    }""")
    played = page.js("s2s.playedMs")
    page.wait(f"s2s.playedMs > {played + 500}", CONNECT_MS)  # the reply plays on
    assert page.js("s2s.truncates") == []
    assert page.js("s2s.framesSent") == 0  # no audio, so the server has nothing to cut the reply with
    assert [e["type"] for e in page.js("s2s.sent") if e["type"].startswith("input_audio_buffer")] == []
    assert all(e["response"]["status"] == "completed" for e in page.events("response.done"))
    assert ducked == [True, False]  # the bot dipped while the key was down and came back with its release

    page.page.keyboard.down("Space")
    assert page.js("s2s.ducked || s2s.truncates.length > 0")  # the bot yields at once: lowered, or cut already
    page.wait("s2s.truncates.length > 0", CONNECT_MS)
    truncate = page.js("s2s.truncates[0]")
    assert truncate["reason"] == "push-to-talk"
    assert abs(truncate["audioEndMs"] - page.js("s2s.playedMs")) < 60
    page.wait("s2s.audioSentMs >= 400", CONNECT_MS)  # the pre-roll and the first quarter second went out
    page.page.keyboard.up("Space")
    page.wait("s2s.events.some(e => e.type === 'input_audio_buffer.committed')", CONNECT_MS)
    sent = [e["type"] for e in page.js("s2s.sent") if e["type"].startswith("input_audio_buffer")]
    assert sent == ["input_audio_buffer.clear", "input_audio_buffer.commit"]
    assert page.page.locator(".turn.bot .cut-mark").count() == 1
    assert not page.js("s2s.ducked")
    page.assert_clean()


def test_switching_push_to_talk_off_while_talking_sends_the_turn_and_stays_off(open_page) -> None:
    """Push-to-talk switched off with a click while Space is held: the switch stays off (the key's repeats and its
    release, now on the focused switch, do not toggle it back), and what was said is committed before the
    session.update that turns the server's VAD on, so it becomes a turn instead of an error."""
    page = open_page()
    page.page.click("label.switch")
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)
    page.page.focus("#connect")
    page.page.keyboard.down("Space")
    page.wait("s2s.audioSentMs >= 500", CONNECT_MS)  # a real press: the pre-roll and 300 ms held
    page.page.click("label.switch")
    switch = "[document.querySelector('#ptt').checked, s2s.settings.ptt, document.querySelector('#talk').hidden]"
    assert page.js(switch) == [False, False, True]
    assert page.js("document.activeElement.id") == "ptt"
    page.page.keyboard.down("Space")  # held still: the key repeats (repeat: true), now on the switch
    page.page.keyboard.up("Space")
    assert page.js(switch) == [False, False, True]
    sent = [e["type"] for e in page.js("s2s.sent")]
    vad_on = [i for i, e in enumerate(page.js("s2s.sent")) if e["type"] == "session.update"
              and e["session"]["audio"]["input"].get("turn_detection")]
    assert "input_audio_buffer.commit" in sent and vad_on, sent
    assert sent.index("input_audio_buffer.commit") < vad_on[0], sent
    page.wait("s2s.events.some(e => e.type === 'input_audio_buffer.committed')", CONNECT_MS)
    page.wait("s2s.events.some(e => e.type === 'session.updated' && e.session.audio.input.turn_detection)", CONNECT_MS)
    page.wait("document.querySelector('.turn.user .final')?.textContent.length > 0", VOICE_TURN_MS)
    page.assert_clean()  # no input_audio_buffer_commit_empty


def button_state(page: Page, selector: str) -> tuple[str, bool]:
    """A button's accessible name and whether it is pressed, as assistive technology is told them."""
    snapshot = page.page.locator(selector).aria_snapshot()  # - button "NAME" [pressed]
    name = re.match(r'- button "([^"]*)"', snapshot)
    assert name, snapshot
    return name.group(1), "[pressed]" in snapshot or "[pressed=true]" in snapshot


def space(page: Page, kind: str) -> None:
    """Space goes down or up now, in one task of the page (a real key's timing, however busy the machine is)."""
    page.js(f"document.dispatchEvent(new KeyboardEvent({kind!r}, {{ code: 'Space', key: ' ' }}))")


def test_mute_and_talk_keep_their_names_and_say_they_are_on_with_aria_pressed(open_page) -> None:
    """Mute and the talk button are toggle buttons: each keeps one name and says whether it is on with aria-pressed
    alone. A name that changed as well ("Unmute", "Listening — release to send") was read out beside the pressed
    state, saying it twice or contradicting it ("Unmute, pressed")."""
    page = open_page()
    page.page.click("label.switch")
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)
    mute_name, pressed = button_state(page, "#mute")
    assert mute_name == "Mute" and not pressed
    page.page.click("#mute")
    assert button_state(page, "#mute") == ("Mute", True)
    page.page.click("#mute")
    assert button_state(page, "#mute") == ("Mute", False)
    talk_name, pressed = button_state(page, "#talk")
    assert talk_name.startswith("Hold to talk") and not pressed
    page.page.focus("#connect")
    space(page, "keydown")
    assert button_state(page, "#talk") == (talk_name, True)
    space(page, "keyup")  # a tap: nothing is sent
    assert button_state(page, "#talk") == (talk_name, False)
    page.assert_clean()


class SlowSessionUpdated:
    """The page's WebSocket through Playwright: client events are recorded in the order they reach the server
    (`reached`), and while `holding` is set the server's session.updated is held back (a slow answer) until
    `release()`."""

    def __init__(self, page: Page):
        self.reached: list[str] = []
        self.holding = threading.Event()
        self.held: list[str | bytes] = []
        self.to_page: object = None
        page.page.route_web_socket(re.compile(r"/v1/realtime"), self.route)

    def route(self, ws: object) -> None:
        to_server = ws.connect_to_server()  # type: ignore[attr-defined]
        self.to_page = ws

        def from_page(message: str | bytes) -> None:
            self.reached.append(json.loads(message)["type"])
            to_server.send(message)

        def from_server(message: str | bytes) -> None:
            if self.holding.is_set() and '"session.updated"' in str(message):
                self.held.append(message)
            else:
                ws.send(message)  # type: ignore[attr-defined]

        ws.on_message(from_page)  # type: ignore[attr-defined]
        to_server.on_message(from_server)

    def since_last(self, kind: str) -> list[str]:
        return self.reached[len(self.reached) - 1 - self.reached[::-1].index(kind):]

    def release(self) -> None:
        self.holding.clear()
        for message in self.held:
            self.to_page.send(message)  # type: ignore[attr-defined]
        self.held.clear()


def talk_then_change_a_setting_held(page: Page, wire: SlowSessionUpdated) -> None:
    """Push-to-talk: hold Space until audio flows, then change a setting, whose session.updated is held back."""
    page.page.click("label.switch")
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)
    page.page.focus("#connect")
    page.page.keyboard.down("Space")
    page.wait("s2s.audioSentMs >= 500", CONNECT_MS)
    wire.holding.set()
    page.js("document.querySelector('#set-proactive').click()")  # a setting changes: a session.update goes out
    page.page.wait_for_timeout(300)  # said meanwhile: held back until the update is answered


def test_a_push_to_talk_commit_waits_for_the_audio_queued_behind_a_settings_update(open_page) -> None:
    """Audio said while a session.update waits for its answer is held back (a rate change must not straddle it);
    the release's commit waits behind that audio instead of overtaking it, so the turn holds all of it."""
    page = open_page()
    wire = SlowSessionUpdated(page)
    talk_then_change_a_setting_held(page, wire)
    page.page.keyboard.up("Space")
    page.page.wait_for_timeout(500)  # past the release's tail
    after = wire.since_last("session.update")
    assert "input_audio_buffer.commit" not in after, after  # not ahead of the audio held back
    wire.release()
    page.wait("s2s.events.some(e => e.type === 'input_audio_buffer.committed')", CONNECT_MS)
    after = wire.since_last("session.update")
    assert after.count("input_audio_buffer.commit") == 1 and after[-1] == "input_audio_buffer.commit", after
    assert after.count("input_audio_buffer.append") >= 10, after  # 300 ms and the tail, at 20 ms a frame
    page.assert_clean()


def test_push_to_talk_switched_off_mid_press_commits_before_its_update_even_behind_a_slow_one(open_page) -> None:
    """Push-to-talk switched off while talk is held, while an earlier session.update is unanswered: the commit
    waits behind the audio held back, and the update that turns the server's VAD on waits behind the commit (that
    update, sent first, would drop the turn: the commit would find no speech)."""
    page = open_page()
    wire = SlowSessionUpdated(page)
    talk_then_change_a_setting_held(page, wire)
    page.page.click("label.switch")  # push-to-talk off, Space still held
    page.page.wait_for_timeout(300)
    assert wire.since_last("session.update") == ["session.update"]  # the proactivity one; the rest waits behind it
    wire.release()
    page.wait("s2s.events.some(e => e.type === 'input_audio_buffer.committed')", CONNECT_MS)
    page.wait("s2s.events.some(e => e.type === 'session.updated' && e.session.audio.input.turn_detection)", CONNECT_MS)
    kinds = wire.since_last("input_audio_buffer.clear")  # from the press on
    held_back = kinds[kinds.index("session.update"):kinds.index("input_audio_buffer.commit")]
    assert held_back.count("input_audio_buffer.append") >= 10, kinds  # said while the update waited: in the turn
    after = [kind for kind in kinds if kind != "input_audio_buffer.append"]  # (then the server's VAD hears it all)
    assert after == ["input_audio_buffer.clear", "session.update", "input_audio_buffer.commit", "session.update"], after
    page.page.keyboard.up("Space")
    page.assert_clean()


def test_muting_during_a_push_to_talk_press_ends_it_without_a_commit_too_short_to_take(open_page) -> None:
    """Mute pressed while push-to-talk is held ends the press. Before it was a talk (held under a quarter second),
    nothing is sent, as for a tap: the page went on to commit 0 ms of audio (the server's
    input_audio_buffer_commit_empty). Once it was one, what was sent before the mute is committed at once; when
    none was (all of it waited behind a slow session.update, and muted audio is not sent), the buffer is cleared
    instead of committed."""
    page = open_page()
    wire = SlowSessionUpdated(page)
    page.page.click("label.switch")
    connect(page, streaming=False)
    page.wait("s2s.micOpen", CONNECT_MS)
    page.page.focus("#connect")
    page.js("""() => {
        document.dispatchEvent(new KeyboardEvent("keydown", { code: "Space", key: " " }));
        document.querySelector("#mute").click();
    }""")
    page.page.wait_for_timeout(600)  # past the quarter second that makes a press a talk
    space(page, "keyup")
    page.page.wait_for_timeout(500)  # past the release's tail
    assert [e["type"] for e in page.js("s2s.sent") if e["type"].startswith("input_audio_buffer")] == []
    assert page.js("s2s.framesSent") == 0 and not page.js("s2s.ducked")
    assert page.page.get_attribute("#talk", "aria-pressed") == "false"

    page.page.click("#mute")  # unmuted: a real press, then the mute
    space(page, "keydown")
    page.wait("s2s.audioSentMs >= 500", CONNECT_MS)
    page.page.click("#mute")
    assert page.page.get_attribute("#talk", "aria-pressed") == "false"  # the press ended with the mute
    sent = [e["type"] for e in page.js("s2s.sent") if e["type"].startswith("input_audio_buffer")]
    assert sent == ["input_audio_buffer.clear", "input_audio_buffer.commit"], sent
    space(page, "keyup")
    page.wait("s2s.events.some(e => e.type === 'input_audio_buffer.committed')", CONNECT_MS)
    page.page.wait_for_timeout(300)
    assert len(page.sent("input_audio_buffer.commit")) == 1  # the release after it sends nothing more

    page.page.click("#mute")  # unmuted: a press whose talk's audio all waits behind a slow update, then the mute
    cleared = len(page.events("input_audio_buffer.cleared"))
    space(page, "keydown")
    wire.holding.set()
    page.js("document.querySelector('#set-proactive').click()")
    page.page.wait_for_timeout(600)  # a talk by now, its audio held back
    page.page.click("#mute")
    wire.release()
    page.wait(f"s2s.events.filter(e => e.type === 'input_audio_buffer.cleared').length >= {cleared + 2} "
              "|| s2s.events.some(e => e.type === 'error')", CONNECT_MS)  # the talk's clear, and the mute's
    space(page, "keyup")
    assert wire.reached.count("input_audio_buffer.commit") == 1, wire.since_last("session.update")
    assert "input_audio_buffer.append" not in wire.since_last("session.update")  # muted: none of it left the page
    page.assert_clean()


def test_settings_reach_the_server_and_nothing_errs(open_page) -> None:
    """Settings go out in session.update and come back applied; mute, stop and disconnect leave no console errors."""
    page = open_page()
    connect(page)
    created = page.events("session.created")[0]["session"]
    server_silence_ms = created["audio"]["input"]["turn_detection"]["silence_duration_ms"]
    server_proactive = "true" if created["s2s"]["proactive"] else "false"
    page.page.click("#settings-open")
    page.page.focus("#set-silence")
    for _ in range(4):
        page.page.keyboard.press("ArrowRight")  # 4 steps of 50 ms
    page.page.uncheck("#set-proactive")
    page.page.fill("#set-user", "tester-42")
    page.page.dispatch_event("#set-user", "change")
    page.page.select_option("#set-rate", "16000")
    page.page.uncheck("#set-aec")  # reopens the microphone without echo cancellation
    page.page.keyboard.press("Escape")
    page.wait(
        "s2s.events.filter(e => e.type === 'session.updated').some(e => "
        f"e.session.audio.input.turn_detection?.silence_duration_ms === {server_silence_ms + 200} "
        "&& e.session.s2s.proactive === false && e.session.s2s.user_id === 'tester-42' "
        "&& e.session.audio.input.format.rate === 16000 && e.session.audio.output.format.rate === 16000)",
        CONNECT_MS,
    )
    assert page.js("localStorage.getItem('s2s.user_id')") == "tester-42"
    assert page.js("JSON.parse(localStorage.getItem('s2s.settings')).echoCancellation") is False
    page.wait("s2s.micOpen", CONNECT_MS)
    sent = page.js("s2s.framesSent")
    page.wait(f"s2s.framesSent > {sent + 10}", CONNECT_MS)  # 16 kHz frames flow from the reopened microphone
    page.page.click("#settings-open")
    page.page.click("#set-reset")  # back to what the server was started with (the user id stays)
    page.page.keyboard.press("Escape")
    page.wait(
        "(s => s.audio.input.turn_detection?.silence_duration_ms === "
        f"{server_silence_ms} && s.s2s.proactive === {server_proactive} && s.s2s.user_id === 'tester-42' "
        "&& s.audio.input.format.rate === 24000)"
        "(s2s.events.filter(e => e.type === 'session.updated').pop().session)",
        CONNECT_MS,
    )
    page.wait("s2s.micOpen", CONNECT_MS)
    sent = page.js("s2s.framesSent")
    page.wait(f"s2s.framesSent > {sent + 10}", CONNECT_MS)  # the microphone reopened and audio flows again
    page.page.click("#mute")
    assert page.page.get_attribute("#mute", "aria-pressed") == "true"
    sent = page.js("s2s.framesSent")
    page.page.wait_for_timeout(300)
    assert page.js("s2s.framesSent") == sent  # muted: no audio leaves the page
    page.page.click("#connect")  # Disconnect
    page.wait("s2s.connection === 'disconnected'", CONNECT_MS)
    assert not page.js("s2s.micOpen")
    page.assert_clean()


def test_stop_while_the_bot_thinks_cancels_the_turn_and_no_reply_plays(browser, tmp_path: Path) -> None:
    """Between the end of a spoken turn and the reply ("Thinking…": a slow transcription here), Stop is enabled
    and cancels the turn on the server: no reply starts, and the page listens again."""
    srv = ServerProcess(tmp_path, extra=("--fake-asr-latency-ms", "4000")).start()
    page = Page(browser, srv.url)
    try:
        connect(page)
        page.wait("s2s.state === 'processing' && !document.querySelector('#stop').disabled", VOICE_TURN_MS)
        page.page.click("#stop")
        page.wait("s2s.sent.some(e => e.type === 'response.cancel')", CONNECT_MS)
        page.wait("s2s.events.some(e => e.type === 'conversation.item.input_audio_transcription.completed') && "
                  "s2s.state === 'listening'", VOICE_TURN_MS)
        assert page.events("response.created") == []
        page.assert_clean()
    finally:
        page.close()
        srv.stop()


def test_page_reconnects_after_the_server_restarts(browser, tmp_path: Path) -> None:
    """When the server restarts, the page reconnects by itself and gets a new session; the message box keeps
    keyboard focus meanwhile."""
    srv = ServerProcess(tmp_path).start()
    page = Page(browser, srv.url)
    try:
        connect(page)
        page.page.click("#message")
        page.page.keyboard.type("half a")
        srv.stop()
        page.wait("s2s.connection === 'reconnecting'", CONNECT_MS)
        # the message box keeps focus and its words while it cannot send (a disabled one would drop focus)
        assert page.js("[document.activeElement.id, document.activeElement.readOnly]") == ["message", True]
        srv = ServerProcess(tmp_path, port=srv.port).start()
        page.wait("s2s.connection === 'connected' && s2s.events.filter(e => e.type === 'session.created').length === 2",
                  RECONNECT_MS)
        page.page.keyboard.type(" thought")  # typing goes on where it was
        assert page.js("[document.activeElement.id, document.activeElement.value]") == ["message", "half a thought"]
        assert page.js("s2s.events.filter(e => e.type === 'session.updated').length") >= 2  # settings re-sent
        # failed attempts while the server was down log network errors; nothing else may
        others = [e for e in page.console_errors if "WebSocket connection" not in e]
        assert others == []
    finally:
        page.close()
        srv.stop()


def test_page_reaches_a_server_that_asks_for_a_token(browser, tmp_path: Path) -> None:
    """With S2S_AUTH_TOKEN set, the page opened as /#token=TOKEN connects (the token goes as a subprotocol);
    opened without it, the server turns it away."""
    srv = ServerProcess(tmp_path, token="page-test-token-0123456789").start()
    without = Page(browser, srv.url)
    page = Page(browser, srv.url + "#token=page-test-token-0123456789")
    try:
        connect(page)
        assert page.events("session.created")
        without.page.click("#connect")
        without.wait("s2s.connection === 'reconnecting'", CONNECT_MS)
        assert without.events("session.created") == []
    finally:
        without.close()
        page.close()
        srv.stop()
