"""Turn-taking as the ear meets it: audible onset, gaps between clauses, end-of-turn prediction,
backchannels that do not interrupt. Real server on port 0, real WebSocket, real speech (espeak-ng) and,
where the test names it, the real default TTS (hibari)."""

from __future__ import annotations

import base64

import numpy as np

import s2s_server as s2s
from tests.conftest import Client

AUDIBLE_DBFS = -45.0


def reply_audio(client: Client, response_id: str) -> np.ndarray:
    chunks = [base64.b64decode(e["delta"]) for e in client.events
              if e["type"] == "response.output_audio.delta" and e["response_id"] == response_id]
    return np.frombuffer(b"".join(chunks), dtype="<i2")


def silent_runs_ms(pcm16: np.ndarray, rate_hz: int) -> list[float]:
    """Lengths of the silent runs between audible 10 ms windows (leading and trailing runs excluded)."""
    loud = s2s.window_dbfs(pcm16, rate_hz // 100) >= AUDIBLE_DBFS
    runs, run, seen = [], 0, False
    for window in loud:
        if window:
            if seen and run:
                runs.append(run * 10.0)
            seen, run = True, 0
        else:
            run += 1
    return runs


# ---- 1. audible onset and silence trimming ------------------------------------------------------------


async def test_hibari_replies_start_audible_and_pause_like_one_speaker(make_server):
    """With the real default TTS, a reply becomes audible within `tts_onset_ms` of its first byte (hibari
    pads 200-330 ms), no pause between clauses exceeds the sentence gap (hibari leaves about 700 ms), and
    s2s.metrics' voice_to_voice counts to the first audible window, not the first byte."""
    h = await make_server(tts="hibari", fake_llm_reply="Sure, here is the plan. First, we pack the bags; then, "
                          "we leave early, before the traffic starts.")
    c = await h.connect()
    await c.send("session.update", session={"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}})
    await c.say("Plan the trip.")
    done = await c.wait_for("response.done")
    metrics = await c.wait_for("s2s.metrics")
    audio = reply_audio(c, done["response"]["id"])
    onset = s2s.first_audible_ms(audio, AUDIBLE_DBFS)
    assert onset is not None and onset <= 40 + 10, onset
    gaps = silent_runs_ms(audio, 16000)
    assert len(gaps) >= 3 and max(gaps) <= 300, gaps
    assert any(g >= 100 for g in gaps), gaps  # clause gaps are kept, not removed
    assert abs(metrics["voice_to_voice"] - metrics["voice_to_first_byte"] - onset) <= 10, (metrics, onset)


def test_the_shaper_keeps_quiet_audio_out_and_every_sound_in():
    """A clause padded with silence on both sides loses the padding beyond the settings and no sample of
    sound; a reply that never becomes audible sends nothing."""
    shaper = s2s.SpeechShaper(audible_dbfs=AUDIBLE_DBFS, onset_ms=40, clause_gap_ms=150, sentence_gap_ms=300,
                              tail_ms=60)
    tone = (3000 * np.sin(np.arange(8000) * 2 * np.pi * 220 / 16000)).astype(np.int16)
    pad = np.zeros(4800, dtype=np.int16)  # 300 ms
    out = [shaper.push(np.concatenate([pad, tone, pad]))]
    shaper.end_clause(ends_sentence=False)
    out.append(shaper.push(np.concatenate([pad, tone, pad])))
    shaper.end_clause(ends_sentence=True)
    out.append(shaper.flush())
    pcm = np.concatenate(out)
    assert shaper.first_audible_ms == 40
    assert len(pcm) == 16 * (40 + 500 + 150 + 500 + 60)
    assert silent_runs_ms(pcm, 16000) == [150.0]
    quiet = s2s.SpeechShaper(audible_dbfs=AUDIBLE_DBFS, onset_ms=40, clause_gap_ms=150, sentence_gap_ms=300,
                             tail_ms=60)
    assert len(quiet.push(np.full(16000, 3, dtype=np.int16))) == 0 and len(quiet.flush()) == 0
    assert quiet.first_audible_ms is None
