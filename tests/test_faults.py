"""A fault stays where it happened: one session's ASR, LLM or TTS raises, hangs past its deadline, runs
slowly or dies mid-stream, and only that session notices. (`benchmarks/faults.py` measures the same with
50 sessions and prints the others' latency with and without the fault.)"""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

from tests import faulty
from tests.conftest import Client

DEADLINE_S = 0.5
SETTINGS = {"asr": "faulty", "llm": "faulty", "tts": "faulty", "asr_deadline_s": DEADLINE_S,
            "llm_first_token_deadline_s": DEADLINE_S, "llm_stall_deadline_s": DEADLINE_S,
            "tts_deadline_s": DEADLINE_S, "fake_llm_reply": "Sure. {user}."}
PTT_16K = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None},
                     "output": {"format": {"type": "audio/pcm", "rate": 16000}}}}


async def spoken_turn(c: Client, fault: str | None = None) -> None:
    """Push-to-talk at 16 kHz: 300 ms of audio, starting with the ASR fault marker if any."""
    audio = np.full(4800, 100, dtype=np.int16)
    if fault:
        audio[:2] = faulty.asr_marker(fault)
    await c.send("input_audio_buffer.append", audio=base64.b64encode(audio.astype("<i2").tobytes()).decode())
    await c.send("input_audio_buffer.commit")


async def healthy_user(c: Client, turns: int) -> list[str]:
    statuses = []
    for i in range(turns):
        statuses.append((await c.turn(f"turn {i}"))["response"]["status"])
    return statuses


@pytest.mark.parametrize("fault", faulty.FAULTS)
@pytest.mark.parametrize("stage", ["asr", "llm", "tts"])
async def test_a_fault_in_one_session_fails_its_turn_only_and_the_next_turn_works(make_server, stage, fault):
    h = await make_server(**SETTINGS)
    bad = await h.connect()
    healthy = [await h.connect() for _ in range(3)]
    if stage == "asr":
        await bad.update_session(**PTT_16K)
    else:
        await bad.update_session(instructions=f"Be brief. FAULT-{stage}-{fault}")

    async def faulty_turn() -> None:
        if stage == "asr":
            await spoken_turn(bad, fault)
            if fault == "slow":
                assert (await bad.wait_for("response.done"))["response"]["status"] == "completed"
            else:
                await bad.wait_for("conversation.item.input_audio_transcription.failed")
                err = await bad.wait_for("error")
                assert err["error"]["code"] == "asr_failed"
        else:
            done = await bad.turn("Hello")
            if fault == "slow":
                assert done["response"]["status"] == "completed"
            else:
                assert done["response"]["status"] == "failed"
                assert done["response"]["status_details"]["reason"] == "error"
                (err,) = [e for e in bad.events[:bad.index(done)] if e["type"] == "error"]  # the error comes first
                assert err["error"]["code"] == "response_failed"

    results = await asyncio.gather(faulty_turn(), *(healthy_user(c, 3) for c in healthy))
    assert results[1:] == [["completed"] * 3] * 3
    assert all("error" not in c.types() for c in healthy)
    # The faulty session takes its next turn.
    if stage == "asr":
        await spoken_turn(bad)
    else:
        await bad.send("session.update", session={"instructions": "Be brief."})
        await bad.say("again")
    done = await bad.wait_for("response.done", lambda e: e["response"]["status"] == "completed")
    assert "hello there" in done["response"]["output"][0]["content"][0]["transcript"] or stage != "asr"
