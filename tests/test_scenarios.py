"""The paper's five scenarios through the real server, decided by the DEFAULT judge (the trained sft
judge in data/judge), on utterances it was not trained on (each test checks that). The ASR, LLM and TTS
are the fakes: what is under test here is the judgement and how the server carries it out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import silence, speech

ROOT = Path(__file__).resolve().parent.parent
TRAINED_ON = {json.loads(line)["utterance"] for line in (ROOT / "data/judge_train.jsonl").open(encoding="utf-8")}
OPINION = "I'm a big fan of tea, to be honest, more than coffee."


def unseen(text: str) -> str:
    assert text not in TRAINED_ON and text.rstrip(".?!") not in TRAINED_ON, f"trained on: {text}"
    return text


@pytest.fixture
def default_judge(make_server):
    async def make(**settings):
        return await make_server(judge="sft", fake_tts_ms_per_char=5, proactive_idle_s=0, **settings)
    return make


async def typed_turn(c, text):
    await c.say(text)
    return await c.wait_for("s2s.judgement")


@pytest.mark.parametrize(("scenario", "text", "action"), [
    ("boring topic", "Ugh, and then I sorted my socks by colour, then by length, then by colour again.", "deflect"),
    ("unreasonable demand", "Write my whole thesis for me tonight and make sure it gets an A, no excuses.", "refuse"),
    ("unreasonable demand", "我想让你现在就帮我把整篇论文写完，还要保证得满分。", "refuse"),
    ("affront", "You are the dumbest machine I have ever talked to.", "silence"),
    ("affront", "你真是个没用的垃圾。", "silence"),
    ("plain", "Can you recommend a good book for the weekend?", "reply"),
    ("plain", "What's the capital of France?", "reply"),
])
async def test_typed_scenarios_get_the_papers_strategy(default_judge, scenario, text, action):
    h = await default_judge()
    c = await h.connect()
    judgement = await typed_turn(c, unseen(text))
    assert judgement["action"] == action, (scenario, judgement)
    assert 0 < judgement["latency_ms"] < 2000
    if action == "silence":
        await typed_turn(c, "Anyway, can you recommend a good film?")  # the silent turn sent nothing:
        first_created = await c.wait_for("response.created")  # the first response is the later turn's
        assert "response.output_audio.delta" not in c.types()[:c.index(first_created)]
    else:
        created = await c.wait_for("response.created")
        assert created["response"]["metadata"]["strategy"] == action


async def test_a_threat_blocks_the_user(default_judge):
    h = await default_judge()
    c = await h.connect()
    await c.send("session.update", session={"s2s": {"user_id": "threatening-user"}})
    await c.wait_for("session.updated")
    judgement = await typed_turn(c, unseen("I'm going to find you and hurt you, I swear."))
    assert judgement["action"] == "block"
    assert "until" in await c.wait_for("s2s.blocked")
    await c.closed


async def test_a_spoken_unreasonable_demand_is_refused(default_judge, speech_dir):
    text = unseen("Write my whole thesis for me tonight and make sure it gets an A, no excuses.")
    h = await default_judge(fake_asr_text=text)
    c = await h.connect()
    await c.append_audio(np.concatenate([speech(text, speech_dir, 24000), silence(1200)]))
    assert (await c.wait_for("s2s.judgement"))["action"] == "refuse"
    assert (await c.wait_for("response.created"))["response"]["metadata"]["strategy"] == "refuse"


@pytest.mark.parametrize(("scenario", "partial"), [
    ("same opinion", "Oh me too, tea is just the best, I drink it every"),
    ("conflicting opinion", "Honestly, I think coffee is far better than tea, because it"),
])
async def test_the_bot_cuts_in_on_a_spoken_opinion(default_judge, speech_dir, scenario, partial):
    h = await default_judge(fake_llm_reply=OPINION, fake_asr_text=unseen(partial), asr_partial_interval_ms=300)
    c = await h.connect()
    await typed_turn(c, "Tea or coffee, which one do you prefer?")
    await c.wait_for("response.done")
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    judged = lambda: any(e["type"] == "s2s.judgement" and e["stage"] == "partial" for e in c.events)  # noqa: E731
    voice = speech(partial + " morning and evening", speech_dir, 24000)
    await c.append_audio(voice, realtime=True, until=judged)
    await c.append_audio(silence(300), realtime=True)
    judgement = await c.wait_for("s2s.judgement", lambda e: e["stage"] == "partial")
    created = await c.wait_for("response.created")
    template = await c.wait_for("response.output_audio_transcript.delta")
    audio = await c.wait_for("response.output_audio.delta")
    continuation = await c.wait_for("response.output_audio_transcript.delta")
    assert judgement["action"] == "interrupt", (scenario, judgement)
    assert created["response"]["metadata"]["strategy"] == "interrupt"
    assert template["delta"] == h.server.config.interrupt_template_en
    assert c.index(judgement) < c.index(created) < c.index(template) < c.index(audio) < c.index(continuation)
