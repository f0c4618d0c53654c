"""voicebench (0.2.0, Apache-2.0) against this server: turn-taking as a user meets it, scored from audio.

    python benchmarks/voicebench_s2s.py                       # default models: baseline, smart-turn, new; one run
    python benchmarks/voicebench_s2s.py --fakes               # zero-latency fakes (latency turns only)
    python benchmarks/voicebench_s2s.py --configs new --repeat 2 --report /tmp/vb.md

voicebench plays the user's audio at real time, records the agent's audio as a client plays it (audio is
queued from the moment it arrives; a "clear" drops what has not played), and scores turns from those two
tracks with its own energy VAD. `RealtimeAdapter` below speaks this server's protocol (README,
"Protocol") the way the bundled page does: it sends 20 ms `input_audio_buffer.append` frames, plays
`response.output_audio.delta`, and stops playback (a clear) on `input_audio_buffer.speech_started` and on
a cancelled `response.done`, dropping the rest of that response's audio.

Scenarios are made at run time with espeak-ng (nothing downloaded): spoken questions that ask for a long
answer; over the answer, 1.2 s after the agent starts speaking, either a backchannel ("uh-huh", "mm-hmm",
"yeah", "right, okay", 嗯, 对, 好的, 是的) or a noise (a cough, a door, a second of typing) that must be
ignored, or an interruption ("stop", "wait, what do you mean?", "no, I meant London", 等一下) that must stop
the agent; and questions with a 700 ms hesitation inside that must be answered once, after they end. The
agent is asked (session instructions) to answer in English in four to six sentences, so that there is
speech to talk over. voicebench's agent VAD joins gaps under 400 ms (the server's gaps between sentences
are at most `tts_sentence_gap_ms`, 300 ms), so a sentence end is not taken for the end of a reply.

Each configuration runs against the real server in this process (its own freshly loaded models and
server, the same scenario, one after the other), and the table prints side by side: user's last sound -> agent's
first audible sound (voicebench `response_latency_ms`) p50 / p90, false barge-ins (backchannels and noise
that stopped the agent), stop time of real interruptions (user onset -> agent silent), and hesitations
answered before the user finished (voicebench `talk_over`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from common import machine  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

try:
    from voicebench import audio as au
    from voicebench.adapters.base import AgentAudio, AgentClear, Transcript
    from voicebench.adapters.websocket import WebSocketAdapter
    from voicebench.metrics import analyze, summarize
    from voicebench.runner import run
    from voicebench.scenario import parse_scenario
except ImportError as exc:  # pragma: no cover - a benchmark dependency (requirements-dev.txt)
    raise SystemExit(f"voicebench is needed: pip install voicebench==0.2.0 ({exc})") from None

RATE_HZ = 16000
INSTRUCTIONS = ("You are a friendly voice companion. Always answer in English, in four to six full spoken "
                "sentences, with no lists or markdown.")

# Settings that bring back the server as it was before predictive turn-taking: a fixed 600 ms silence
# ends every turn, any speech over the agent cuts it off at once, TTS padding is left as the model made it.
BASELINE = ["--turn-taking", "silence", "--barge-in-hold", "off", "--tts-onset-ms", "1000",
            "--tts-clause-gap-ms", "2000", "--tts-sentence-gap-ms", "2000", "--tts-tail-ms", "2000"]
# The end-of-turn model alone: predictive turn-taking without the judge's text signal (silence + Smart Turn).
SMART_TURN_ALONE = ["--judge-end-of-turn", "false"]
CONFIGS = {"baseline": BASELINE, "smart-turn": SMART_TURN_ALONE, "new": []}


class RealtimeAdapter(WebSocketAdapter):
    """voicebench <-> this server's Realtime-style protocol (JSON events, base64 PCM16 at 16 kHz)."""

    name: ClassVar[str] = "s2s-realtime"

    def __init__(self, url: str, instructions: str = INSTRUCTIONS, **options: Any) -> None:
        super().__init__(url=url, **options)
        self.instructions = instructions
        self._cut: set[str] = set()  # responses whose remaining audio the client drops
        self._playing: str | None = None

    async def connect(self) -> None:
        await super().connect()
        assert self._ws is not None
        rate = self.session.sample_rate
        await self._ws.send(json.dumps({"type": "session.update", "session": {
            "instructions": self.instructions, "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": rate}},
                "output": {"format": {"type": "audio/pcm", "rate": rate}}}}}))

    def encode_audio(self, pcm: Any) -> Any:
        return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(au.to_pcm16(pcm)).decode()})

    def handle_text(self, message: str, now: float) -> None:
        event = json.loads(message)
        kind = event.get("type")
        if kind == "response.output_audio.delta" and event["response_id"] not in self._cut:
            self._playing = event["response_id"]
            pcm = au.from_pcm16(base64.b64decode(event["delta"]))
            self.emit(AgentAudio(au.resample(pcm, self.session.sample_rate, self.session.sample_rate), now))
        elif kind == "input_audio_buffer.speech_started" or (
                kind == "response.done" and event["response"]["status"] == "cancelled"):
            if self._playing is not None:
                self._cut.add(self._playing)
            if kind == "response.done":
                self._cut.add(event["response"]["id"])
            self.emit(AgentClear(now))
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.emit(Transcript("user", event.get("transcript") or "", now, True))


# ---- scenarios, made at run time -----------------------------------------------------------------------

QUESTIONS = [
    "Can you tell me about the history of the bicycle?",
    "How does a rainbow form in the sky?",
    "What makes a day at the beach nice?",
    "Tell me something about elephants.",
    "What can I cook with rice and vegetables?",
    "Why do cats like to sleep so much?",
    "What is interesting about the moon?",
    "How do plants make their food?",
    "Tell me about the city of Paris.",
    "What should I pack for a camping trip?",
    "What are good ways to learn to draw?",
    "How do bees make honey?",
    "Why is the ocean salty?",
    "What is a good way to start the morning?",
    "Tell me about the planet Mars.",
    "How do trains work?",
]
# (kind, what, expectation); "speech:<voice>:<text>" or a synthesised noise
OVER_SPEECH = [  # interleaved, so that any prefix (--pairs) has every kind
    ("backchannel", "speech:en-us:uh-huh", "ignore"),
    ("interruption", "speech:en-us:stop", "stop"),
    ("noise", "cough", "ignore"),
    ("backchannel", "speech:cmn:嗯", "ignore"),
    ("interruption", "speech:en-us:wait, what do you mean?", "stop"),
    ("backchannel", "speech:en-us:mm-hmm", "ignore"),
    ("backchannel", "speech:cmn:好的", "ignore"),
    ("interruption", "speech:en-us:no, I meant London, not Paris.", "stop"),
    ("backchannel", "speech:en-us:right, okay", "ignore"),
    ("noise", "door", "ignore"),
    ("backchannel", "speech:cmn:对", "ignore"),
    ("backchannel", "speech:en-us:yeah", "ignore"),
    ("interruption", "speech:cmn:等一下，我有一个问题。", "stop"),
    ("backchannel", "speech:cmn:是的", "ignore"),
    ("noise", "keyboard", "ignore"),
]
HESITATIONS = [
    ("en-us", "I was thinking that we could", "go to the park tomorrow. What do you think?"),
    ("en-us", "Can you tell me how", "to make a paper plane?"),
    ("cmn", "我想问一下", "明天的天气怎么样？"),
]


def espeak(text: str, voice: str) -> np.ndarray:
    """float32 at RATE_HZ (voicebench's sample format)."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed: apt-get install espeak-ng")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", f.name, text], check=True)
        return au.read_wav(f.name, RATE_HZ)


def noise(kind: str, seed: int) -> np.ndarray:
    """A cough (a 250 ms burst of breathy noise, decaying), a door (a low 120 ms thud), a keyboard (14
    keys in a second, each a press and a release click: sound above -45 dBFS for about 80 ms a key, so
    voicebench's user VAD, which needs 50 ms of sound, hears the typing)."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE_HZ) / RATE_HZ
    if kind == "cough":
        n = int(0.25 * RATE_HZ)
        burst = rng.standard_normal(n) * np.exp(-t[:n] * 14)
        burst = np.convolve(burst, np.ones(6) / 6, mode="same")  # breathy, not white
        return (0.3 * burst / np.abs(burst).max()).astype(np.float32)
    if kind == "door":
        n = int(0.12 * RATE_HZ)
        thud = np.sin(2 * np.pi * 70 * t[:n]) * np.exp(-t[:n] * 30) + 0.3 * rng.standard_normal(n) * np.exp(-t[:n] * 60)
        return (0.6 * thud / np.abs(thud).max()).astype(np.float32)
    clicks = np.zeros(RATE_HZ + 2048, dtype=np.float32)
    n = np.arange(1024)
    for k in range(14):  # fast typing: a key every 60-75 ms; each a press and a release 35-45 ms later,
        start = int((0.03 + k * 0.065 + rng.uniform(0, 0.01)) * RATE_HZ)  # each click ringing ~12 ms
        for at, level in ((start, 0.3), (start + int(rng.uniform(0.035, 0.045) * RATE_HZ), 0.15)):
            click = np.convolve(rng.standard_normal(1024), [1.0, -0.7], mode="same") * np.exp(-n / 190)
            clicks[at:at + 1024] += (level * click / np.abs(click).max()).astype(np.float32)
    return clicks[:RATE_HZ]


def build_scenario(folder: Path, pairs: int, hesitations: int) -> Any:
    """The scenario as voicebench's YAML data, its audio written as WAV files into `folder`."""
    def wav(name: str, pcm: np.ndarray) -> str:
        path = folder / f"{name}.wav"
        au.write_wav(path, pcm.astype(np.float32), RATE_HZ)
        return str(path)

    turns: list[dict[str, Any]] = []
    over = OVER_SPEECH[:pairs]
    for i, question in enumerate(QUESTIONS[:len(over)] if over else QUESTIONS[:8]):
        turns.append({"id": f"q{i}", "audio": {"file": wav(f"q{i}", espeak(question, "en-us"))}, "expect": "respond",
                      "start": {"after": "session_start" if i == 0 else "agent_speech_end", "delay_ms": 800,
                                "timeout_ms": 60000},
                      "response_timeout_ms": 20000})
        if over:
            kind, what, expect = over[i]
            if what.startswith("speech:"):
                _, voice, text = what.split(":", 2)
                pcm = espeak(text, voice)
            else:
                pcm = noise(what, i)
            turns.append({"id": f"{kind}-{what.split(':')[-1]}", "audio": {"file": wav(f"x{i}", pcm)},
                          "expect": expect, "start": {"after": "agent_speech_start", "delay_ms": 1200},
                          "max_stop_ms": 1000, "response_timeout_ms": 3000})
    for i, (voice, before, after) in enumerate(HESITATIONS[:hesitations]):
        pcm = np.concatenate([espeak(before, voice), np.zeros(int(0.7 * RATE_HZ), dtype=np.float32),
                              espeak(after, voice)])
        turns.append({"id": f"hesitation{i}", "audio": {"file": wav(f"h{i}", pcm)}, "expect": "respond",
                      "start": {"after": "agent_speech_end", "delay_ms": 800, "timeout_ms": 60000},
                      "response_timeout_ms": 20000})
    return parse_scenario({"name": "s2s turn-taking", "sample_rate": RATE_HZ, "frame_ms": 20, "tail_ms": 4000,
                           "max_duration_ms": 900000, "vad": {"agent": {"min_silence_ms": 400}},
                           "turns": turns}, base_dir=folder)


def hesitation_cut(session: Any) -> tuple[int, int]:
    """(hesitations the agent answered before the user finished, hesitations)."""
    turns = [t for t in session.turns if t.id.startswith("hesitation")]
    return sum(bool(t.talk_over) for t in turns), len(turns)


async def run_config(name: str, config: Any, components: Any, scenario: Any, repeat: int,
                     instructions: str = INSTRUCTIONS) -> dict[str, Any]:
    server = S.S2SServer(config, components)
    port = await server.start()
    sessions = []
    try:
        for _ in range(repeat):
            adapter = RealtimeAdapter(url=f"ws://127.0.0.1:{port}/v1/realtime", instructions=instructions)
            record = await run(scenario, adapter, realtime=True)
            sessions.append(analyze(record))
    finally:
        await server.stop()
    summary = summarize(sessions)
    cut = [hesitation_cut(s) for s in sessions]
    summary["hesitations_cut"] = (sum(c for c, _ in cut), sum(n for _, n in cut))
    summary["turns_detail"] = [(t.id, t.expect, t.passed, t.response_latency_ms, t.stop_latency_ms, t.notes)
                               for s in sessions for t in s.turns]
    return summary


async def main_async(args: argparse.Namespace, server_args: list[str]) -> None:
    base = [*server_args, "--port", "0", "--data-dir", tempfile.mkdtemp(prefix="s2s-vb-")]
    if args.fakes:
        base += ["--asr", "fake", "--llm", "fake", "--tts", "fake", "--judge", "off", "--fake-llm-reply",
                 "Sure. Here is a short answer."]
    configs = {name: load_config([*base, *CONFIGS[name]]) for name in args.configs}
    first = next(iter(configs.values()))
    folder = Path(tempfile.mkdtemp(prefix="s2s-vb-audio-"))
    if args.fakes or args.latency_only:  # questions only: over-speech needs words the fake ASR cannot hear
        args.pairs = args.hesitations = 0
    scenario = build_scenario(folder, args.pairs, args.hesitations)
    results = {}
    for name, config in configs.items():  # fresh models per configuration: no work left over from the last
        components = S.build_components(config)
        t0 = time.monotonic()
        await S.load_components(components)
        print(f"{name}: models loaded and warm in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        try:
            started = time.monotonic()
            results[name] = await run_config(name, config, components, scenario, args.repeat, args.instructions)
            print(f"{name}: {time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)
        finally:
            S.close_components(components)
    report(results, args, first)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, config: Any) -> None:
    lines = [f"\nvoicebench 0.2.0, real time, {'zero-latency fakes' if args.fakes else 'models'} "
             f"(asr={config.asr}, llm={config.llm}, tts={config.tts}, judge={config.judge}); {args.repeat} run(s) "
             f"per configuration, one process; {machine()}", "",
             "| configuration | last user sound -> first audible agent sound, p50 / p90 | responses missed "
             "| false barge-ins (backchannels, noise) | spurious replies to them | interruptions stopped <= 1 s "
             "| stop time p50 / max | hesitations answered too early |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in results.items():
        lat, stop = s["response_latency_ms"], s["barge_in_stop_ms"]
        rate = s["barge_in_success_rate"]
        cut, total = s["hesitations_cut"]
        stopped = "n/a" if rate is None else f"{100 * rate:.0f} % of {s['barge_in_turns']}"
        lines.append(f"| {name} | {lat['p50']} / {lat['p90']} ms | {s['missed_responses']} | {s['false_barge_ins']} of "
                     f"{s['noise_turns']} | {s['spurious_responses']} | {stopped} | "
                     f"{stop['p50']} / {stop['max']} ms | {cut} of {total} |")
    text = "\n".join(lines)
    print(text)
    if args.details:
        for name, s in results.items():
            print(f"\n{name}:")
            for row in s["turns_detail"]:
                print("  ", row)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fakes", action="store_true", help="zero-latency fake ASR/LLM/TTS; question turns only")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="baseline: plain 600 ms VAD window, cut at once, no reply shaping; smart-turn: the "
                        "defaults without the judge's text end-of-turn signal; new: the defaults")
    parser.add_argument("--instructions", default=INSTRUCTIONS, help="the session's instructions (default: answer "
                        "in four to six sentences, so that there is speech to talk over)")
    parser.add_argument("--latency-only", action="store_true",
                        help="8 spoken questions only (no over-speech, no hesitations), with the models chosen")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=len(OVER_SPEECH),
                        help=f"question + over-speech pairs, in the order listed (default all {len(OVER_SPEECH)})")
    parser.add_argument("--hesitations", type=int, default=len(HESITATIONS))
    parser.add_argument("--details", action="store_true", help="print every turn's result")
    parser.add_argument("--report", help="also write the table to this file")
    parser.add_argument("--server-log-level", default="WARNING", help="the server's log level (DEBUG: every "
                        "hearing of speech over the agent, with its timing, and every end-of-turn opinion)")
    args, server_args = parser.parse_known_args()
    S.setup_logging(args.server_log_level)
    asyncio.run(main_async(args, server_args))


if __name__ == "__main__":
    main()
