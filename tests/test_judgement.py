"""The judgement's guard rails (s2s_server section 10, `decide`): bad input and a judge that raises, overruns
its deadline or answers outside the stage's actions give the stage's fallback (a reply to a finished turn,
no interrupt on a partial) with a reason that says what happened. First `decide` alone, then through the
real server with test-double judges, so the user gets a reply and the session goes on."""

from __future__ import annotations

import asyncio

import pytest

import s2s_server as s2s
from tests.doubles import GatedJudge

SEEN: list[str] = []  # what the recording judge was asked
CONTEXTS: list[tuple[str, str]] = []  # (stage, the context it read), as the sft judge reads it


class RecordingJudge(s2s.Judge):
    """Test double: records the utterance and its context and answers a plain reply (none on a partial)."""

    name = "test-recording-judge"

    async def judge(self, context, utterance, stage):
        SEEN.append(utterance)
        CONTEXTS.append((stage, context.transcript(self.config.judge_context_turns)))
        return s2s.Judgement(action="reply" if stage == "complete" else "none", reason="recorded")


class OffButCurious(s2s.OffJudge):
    """Test double: the "off" judge's answers, from a subclass that reads its context."""

    name = "test-off-but-curious"
    histories: list[list[dict[str, str]]] = []

    async def judge(self, context, utterance, stage):
        OffButCurious.histories.append(context.history)
        return await super().judge(context, utterance, stage)


class OffAndIncurious(s2s.OffJudge):
    """Test double: the "off" judge's answers, from a subclass that says it reads no context (and records
    what it is given anyway)."""

    name = "test-off-and-incurious"
    reads_context = False
    contexts: list[s2s.JudgeContext] = []

    async def judge(self, context, utterance, stage):
        OffAndIncurious.contexts.append(context)
        return await super().judge(context, utterance, stage)


class RaisingJudge(s2s.Judge):
    """Test double: a judge whose model breaks."""

    name = "test-raising-judge"

    async def judge(self, context, utterance, stage):
        raise RuntimeError("model file is corrupt")


class SlowJudge(s2s.Judge):
    """Test double: a judge that never answers in time."""

    name = "test-slow-judge"

    async def judge(self, context, utterance, stage):
        await asyncio.sleep(3600)


class StrayJudge(s2s.Judge):
    """Test double: answers an action that belongs to the other stage."""

    name = "test-stray-judge"

    async def judge(self, context, utterance, stage):
        return s2s.Judgement(action="interrupt" if stage == "complete" else "block", reason="stray")


def _context() -> s2s.JudgeContext:
    return s2s.JudgeContext(history=[{"role": "user", "content": "hi"}], strategies=frozenset({"reply"}))


async def _decide(judge: s2s.Judge, utterance, stage="complete", deadline_s=1.0, max_chars=50) -> s2s.Judgement:
    return await s2s.decide(judge, _context(), utterance, stage, deadline_s=deadline_s, max_chars=max_chars)


@pytest.mark.parametrize(("utterance", "says"), [
    ("", "is empty"),
    ("   \n\t ", "is empty"),
    ("?!...", "without words"),
    (b"\x00\x01", "not text (bytes)"),
    (None, "not text (NoneType)"),
])
@pytest.mark.parametrize(("stage", "fallback", "verb"), [("complete", "reply", "replying"),
                                                         ("partial", "none", "not interrupting")])
async def test_bad_utterances_get_the_fallback_and_a_reason(utterance, says, stage, fallback, verb):
    SEEN.clear()
    judgement = await _decide(RecordingJudge(s2s.Config()), utterance, stage)
    assert (judgement.action, judgement.confidence) == (fallback, 0.0)
    assert says in judgement.reason and judgement.reason.endswith(verb)
    assert SEEN == []  # the judge was never asked


async def test_an_enormous_utterance_is_clipped_and_the_reason_says_so():
    SEEN.clear()
    judgement = await _decide(RecordingJudge(s2s.Config()), "word " * 10_000, max_chars=50)
    assert judgement.action == "reply"
    assert len(SEEN[0]) == 50 and "judged on the first 50 of 49999 characters" in judgement.reason


@pytest.mark.parametrize(("judge", "says"), [
    (RaisingJudge, "the judge failed (RuntimeError: model file is corrupt)"),
    (SlowJudge, "the judge took over 0.05 s"),
    (StrayJudge, "the judge answered"),
])
@pytest.mark.parametrize(("stage", "fallback"), [("complete", "reply"), ("partial", "none")])
async def test_a_failing_judge_gives_the_fallback_and_says_why(judge, says, stage, fallback):
    judgement = await _decide(judge(s2s.Config()), "what is the weather like", stage, deadline_s=0.05)
    assert judgement.action == fallback and judgement.confidence == 0.0
    assert says in judgement.reason
    assert judgement.latency_ms < 2000


async def test_the_base_judge_has_no_end_of_turn_opinion():
    assert s2s.OffJudge(s2s.Config()).end_of_turn_prob("", "what time is it") is None


async def test_the_off_judge_gets_no_context_built_but_a_subclass_with_its_own_judge_gets_all_of_it(make_server):
    """"off" ignores the conversation, so no turn builds it the history and the memory (a burst of turns saves
    their CPU); a subclass that overrides `judge` reads them again, without asking."""
    assert not s2s.OffJudge.reads_context and OffButCurious.reads_context and s2s.Judge.reads_context
    h = await make_server(judge="test-off-but-curious", fake_tts_ms_per_char=5, proactive_idle_s=0)
    c = await h.connect()
    await c.turn("My name is Ann.")
    assert OffButCurious.histories[-1] == [{"role": "user", "content": "My name is Ann."}]


async def test_a_judge_that_reads_no_context_is_given_none_even_deep_into_a_conversation(make_server):
    """The server, not the judge, skips building the history and the memory when `reads_context` is False."""
    OffAndIncurious.contexts.clear()
    h = await make_server(judge="test-off-and-incurious", fake_tts_ms_per_char=5, proactive_idle_s=0)
    c = await h.connect()
    for words in ("My name is Ann.", "I live in Oslo."):
        await c.turn(words)
    assert len(OffAndIncurious.contexts) >= 2
    assert all(ctx.history == [] and ctx.memory is None for ctx in OffAndIncurious.contexts)


@pytest.mark.parametrize(("judge", "says"), [
    ("test-raising-judge", "the judge failed (RuntimeError"),
    ("test-slow-judge", "the judge took over 0.2 s"),
])
async def test_through_the_server_a_failing_judge_still_gets_the_user_a_reply(make_server, judge, says):
    h = await make_server(judge=judge, judge_deadline_s=0.2, fake_tts_ms_per_char=5, proactive_idle_s=0)
    c = await h.connect()
    for _ in range(2):  # the session goes on: the next turn is answered too
        await c.say("Can you recommend a film for tonight?")
        judgement = await c.wait_for("s2s.judgement")
        assert judgement["action"] == "reply" and says in judgement["reason"]
        created = await c.wait_for("response.created")
        assert created["response"]["metadata"]["strategy"] == "reply"
        await c.wait_for("response.done")


async def test_through_the_server_an_enormous_typed_turn_is_judged_on_its_start(make_server):
    SEEN.clear()
    h = await make_server(judge="test-recording-judge", judge_max_chars=300, fake_tts_ms_per_char=1,
                          proactive_idle_s=0)
    c = await h.connect()
    await c.say("please listen " * 1_400)  # 19,600 characters, under the protocol's 20,000 per text
    judgement = await c.wait_for("s2s.judgement")
    assert judgement["action"] == "reply" and "judged on the first 300 of" in judgement["reason"]
    assert len(SEEN[-1]) == 300
    await c.wait_for("response.created")


async def test_through_the_server_a_finished_turn_is_judged_on_what_came_before_it_as_in_training(make_server):
    """The judge reads the context judge_sft trains and evaluates it on (one function builds both,
    judge_sft.judge_context): the turns before the judged words, not the words again at the end. The same
    words said twice: the second time, the first telling and the agent's answer are the context."""
    import judge_sft

    SEEN.clear()
    CONTEXTS.clear()
    h = await make_server(judge="test-recording-judge", fake_tts_ms_per_char=1, proactive_idle_s=0)
    c = await h.connect()
    words = "and then I sorted the receipts again by the colour of the paper"
    await c.say(words)
    answer = await c.wait_for("response.output_audio_transcript.done")
    await c.wait_for("response.done")
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")  # heard out: the history keeps it all
    await c.turn(words)
    assert [stage for stage, _ in CONTEXTS] == ["complete", "complete"]
    trained = judge_sft.turn_context({"utterance": words, "context": [
        {"role": "user", "text": words}, {"role": "agent", "text": answer["transcript"]}]},
        h.server.config.judge_context_turns)
    assert CONTEXTS == [("complete", ""), ("complete", trained)]
    assert trained == f"User: {words}\nAgent: {answer['transcript']}"


def test_the_sft_judge_offers_its_end_of_turn_signal_unless_switched_off():
    """On by default (turn-taking's words signal); off with judge_end_of_turn false; the probability ranks
    a finished question above its own cut."""
    off = s2s.SFTJudge(s2s.Config(judge_end_of_turn=False))
    off.load()
    assert off.end_of_turn_prob("", "what time does the train to Boston leave tomorrow") is None
    on = s2s.SFTJudge(s2s.Config())
    on.load()
    whole = on.end_of_turn_prob("", "what time does the train to Boston leave tomorrow")
    assert 0.0 <= on.end_of_turn_prob("", "what time does the train to") < whole <= 1.0


async def test_a_second_response_create_while_the_turn_is_judged_is_refused(make_server):
    """The turn's reply has not started (the judge is still deciding): a second response.create would answer
    the same words twice (two response.created, no error, before)."""
    GatedJudge.judging, GatedJudge.gate = asyncio.Event(), asyncio.Event()
    h = await make_server(judge="test-gated-judge")
    c = await h.connect()
    await c.say("What time is it?")
    await GatedJudge.judging.wait()
    await c.send("response.create", event_id="second")
    error = await c.wait_for("error")
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "second"
    GatedJudge.gate.set()
    await c.wait_for("response.done")
    assert c.types().count("response.created") == 1
    assert (await c.turn("And the date?"))["response"]["status"] == "completed"  # refused once, not for good
