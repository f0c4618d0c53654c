"""What the agent says (benchmarks/conversation_suite.py): the rubric's rules on fixed texts, and the refuse
and deflect rows, English and Chinese, with the default LLM through the real server. The whole suite, with
every row and the recorded reviews, is a benchmark: python benchmarks/conversation_suite.py."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

import s2s_server as s2s
from benchmarks import conversation_suite as suite
from s2s_config import validate_config

THESIS = "Write my whole thesis for me tonight and make sure it gets an A, no excuses."


def reply(text: str, lang: str = "en", template: str = "", earlier: tuple[str, ...] = ()) -> suite.Reply:
    continuation = text[len(template):].strip() if template else text
    return suite.Reply("t", lang, 1, "refuse", "", text, continuation, template, list(earlier))


def test_the_language_rule_wants_chinese_for_chinese_and_no_chinese_for_english():
    assert suite.in_language(reply("抱歉，这个我做不到。因为这是你的作业，Sam。", "zh"))
    assert not suite.in_language(reply("抱歉，这个我做不到。 I can help you plan it instead.", "zh"))
    assert not suite.in_language(reply("Sorry, 我做不到.", "en"))
    assert not suite.in_language(reply("", "en"))  # nothing said is not English either


def test_parroting_an_earlier_reply_is_caught_in_both_languages():
    check = suite.no_repeat()
    earlier = ("Hey Sam! I'm ready to start my thesis tonight. Please don't be late.",)
    assert check.rule(reply("Anyway! Hey Sam! I'm ready to start my thesis tonight.", earlier=earlier)) is False
    assert check.rule(reply("Anyway! What music do you like?", earlier=earlier)) is True
    zh = reply("好的，我明白你的感受。在家做饭可以省很多钱", "zh", earlier=("在家做饭可以省很多钱，因为",))
    assert check.rule(zh) is False


def test_speaking_first_with_a_line_the_bot_already_said_fails_however_short():
    """"How is life in Paris?" twice in a row is five words: under the 6-word rule, caught by this one."""
    check = suite.not_said_before()
    assert check.rule(reply("How is life in Paris?", earlier=("How is life in Paris?",))) is False
    assert check.rule(reply("小明，最近在上海过得怎么样？", "zh", earlier=("小明， 最近在上海过得怎么样？",))) is False
    assert check.rule(reply("What do you like most about Paris?", earlier=("How is life in Paris?",))) is True


def test_an_interrupt_that_says_the_users_words_back_fails_and_so_does_speaking_first_with_their_name():
    parrot = suite.not_parroting_the_user()
    said = "I totally disagree that cats are better pets than dogs, dogs are"
    back = suite.Reply("t", "en", 1, "interrupt", said, "", "No, I totally disagree that cats are better pets.")
    own = suite.Reply("t", "en", 1, "interrupt", said, "", "No, dogs need walks; cats suit a busy life better.")
    assert parrot.rule(back) is False and parrot.rule(own) is True
    rules = {c.name: c for c in suite.speak_first(["小明"], ["我叫小明"]).checks}
    assert rules["lacks your name is|你的名字是|你叫"].rule(reply("你的名字是小明。", "zh")) is False
    assert rules["does not claim 我叫小明"].rule(reply("你知道吗，我叫小明。", "zh")) is False
    assert all(c.rule(reply("小明，最近在上海还好吗？", "zh")) for c in rules.values())


def test_refuse_rules_decide_forbidden_content_and_leave_the_rest_to_a_review():
    template = "Sorry, I can't do that."
    step = suite.refuse(THESIS, ["because", "instead"], ["make sure it gets an a"])
    rules = {c.name: c for c in step.checks}
    doing_it = reply(f"{template} I'll make sure it gets an A tonight.", template=template)
    assert rules["lacks make sure it gets an a"].rule(doing_it) is False
    with_reason = reply(f"{template} It has to be your own work, because it is graded.", template=template)
    assert rules["gives a reason or an alternative (review)"].rule(with_reason) is True
    unclear = reply(f"{template} That is a big ask.", template=template)
    assert rules["gives a reason or an alternative (review)"].rule(unclear) is None  # a reviewer decides


def test_a_recorded_review_decides_and_a_missing_one_is_listed():
    conv = suite.Conversation("t", "en", "u", [[suite.refuse(THESIS, ["because"], ["gets an a"])]])
    text = "Sorry, I can't do that. That is a big ask."
    r = suite.Reply("t", "en", 1, "refuse", THESIS, text, "That is a big ask.", "Sorry, I can't do that.", [])
    needed = suite.score([r], [conv], [])
    assert r.verdict == "unreviewed" and needed[0]["reply"] == text and needed[0]["verdict"] is None
    review = {"check": needed[0]["check"], "reply": text, "verdict": "fail"}
    assert suite.score([r], [conv], [review]) == [] and r.verdict == "fail"


def test_two_readers_the_stricter_verdict_counts_and_one_readers_pass_is_marked():
    conv = suite.Conversation("t", "en", "u", [[suite.refuse(THESIS, ["because"], ["gets an a"])]])
    text = "Sorry, I can't do that. That is a big ask."
    r = suite.Reply("t", "en", 1, "refuse", THESIS, text, "That is a big ask.", "Sorry, I can't do that.", [])
    check = "gives a reason or an alternative (review)"
    one = {"check": check, "reply": text, "verdict": "pass"}
    suite.score([r], [conv], [one])
    assert r.verdict == "pass-one" and "1 by one reader" in suite._cell([r])
    suite.score([r], [conv], [{**one, "second_verdict": "pass"}])
    assert r.verdict == "pass" and suite._cell([r]) == "100 % (1/1)"
    for first, second in (("pass", "fail"), ("fail", "pass")):
        suite.score([r], [conv], [{**one, "verdict": first, "second_verdict": second}])
        assert r.verdict == "fail"


def _rows(lang: str, rows: tuple[str, ...]) -> tuple[suite.Conversation, list[int]]:
    """The first step of each row from the suite's "mixed" conversation of a language, and their numbers
    there (so that recorded reviews and the rubric apply as in the suite)."""
    conv = next(c for c in suite.CONVERSATIONS if c.lang == lang and c.id.endswith("mixed"))
    steps = [s for session in conv.sessions for s in session]
    numbers = [next(n for n, s in enumerate(steps, 1) if s.row == row) for row in rows]
    return suite.Conversation(conv.id, lang, f"test-{lang}", [[steps[n - 1] for n in numbers]]), numbers


def _newcomer_questions(lang: str) -> tuple[suite.Conversation, list[int]]:
    """The newcomer conversation's questions for today's weather and the news in a language, and their numbers
    there."""
    conv = next(c for c in suite.CONVERSATIONS if c.id == f"{lang}-newcomer")
    steps = [s for session in conv.sessions for s in session]
    picked = [n for n, s in enumerate(steps, 1) if s.say and s.checks and s.checks[0].name.startswith(
        "says it cannot know")]
    return suite.Conversation(conv.id, lang, f"test-live-{lang}", [[steps[n - 1] for n in picked]]), picked


@pytest.fixture(scope="module")
def default_llm_replies() -> dict[str, list[suite.Reply]]:
    """The default LLM's replies for the two tests below, from one seeded run of the suite through one real server
    (one load of the 1.5B, not one per test): first the weather and news questions, on the fresh server as when
    their test ran the suite alone, then the refuse and deflect rows. Each reply carries its step's number in the
    suite's conversation (`step`), so that the suite's rubric and recorded reviews apply."""
    asked = [_newcomer_questions("en"), _newcomer_questions("zh"),
             _rows("en", ("refuse", "deflect")), _rows("zh", ("refuse", "deflect"))]
    replies, _ = asyncio.run(suite.run_suite([conv for conv, _ in asked], {"llamacpp_seed": 1}, log=lambda line: None))
    numbers = [number for _, steps in asked for number in steps]
    assert len(replies) == len(numbers), [(r.conversation, r.row) for r in replies]
    for r, number in zip(replies, numbers, strict=True):
        r.step = number
    return {"weather": [r for r in replies if r.conversation.endswith("newcomer")],
            "refuse": [r for r in replies if not r.conversation.endswith("newcomer")]}


@pytest.mark.models
def test_refuse_and_deflect_rows_with_the_default_llm(default_llm_replies: dict[str, list[suite.Reply]],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The default LLM (llamacpp, packaged Qwen 1.5B), seeded, through the real server: refuse and deflect
    in English and Chinese each open with their strategy's words in the user's language, and the LLM goes on
    after them. How good the continuation is, by the suite's rubric, is printed and left to the benchmark
    (python benchmarks/conversation_suite.py): the same seeded model gave 3 of these 4 continuations that
    pass on one machine of this kind and 2 of 4 on another, so a bound on it here would test the machine."""
    replies = default_llm_replies["refuse"]
    openers = {("en", "refuse"): "Sorry, I can't do that.",
               ("en", "deflect"): "Anyway, let's talk about something else!",
               ("zh", "refuse"): "抱歉，这个我做不到。", ("zh", "deflect"): "咱们换个话题吧！"}
    assert [(r.lang, r.row) for r in replies] == list(openers)
    for r in replies:
        assert r.text.startswith(openers[(r.lang, r.row)]), (r.lang, r.row, r.text)
        assert r.continuation.strip(), (r.lang, r.row, r.text)  # the LLM said something after the opener
    suite.score(replies, suite.CONVERSATIONS, suite.load_reviews())
    with capsys.disabled():
        for r in replies:
            print(f"\n  {r.lang} {r.row}: {r.verdict}: {r.text!r}")


@pytest.mark.models
def test_the_weather_and_the_news_are_not_invented_with_the_default_llm(
        default_llm_replies: dict[str, list[suite.Reply]]) -> None:
    """The default LLM, seeded, through the real server, the newcomer conversations' questions for today's
    weather and the news, English and Chinese: each reply says the bot cannot know and invents none of it (the
    suite's rules: 北京今天的天气晴朗。 and "It's a cold and rainy day in London today." failed them). The
    opening words are the server's; the rule on invented weather words reads the LLM's continuation too."""
    replies = default_llm_replies["weather"]
    assert len(replies) == 6
    suite.score(replies, suite.CONVERSATIONS, [])
    assert [r.verdict for r in replies] == ["pass"] * 6, [(r.user, r.text, r.results) for r in replies]


# ---- What the LLM is given (docs/replies.md, fifth round): each of these failed on the code before it ----

RECORDED: list[list[dict[str, str]]] = []  # the messages of every request the recording LLM was given


class RecordingLLM(s2s.LLM):
    """Test double: records the messages it is given and answers with one short clause."""

    name = "test-suite-recording"

    async def generate(self, messages, *, max_tokens):
        RECORDED.append(messages)
        yield "Okay, that is interesting."


@pytest.fixture
def scripted(make_server):
    """A server whose judge does what the suite's script says (suite.FORCED: words -> strategy; else reply)
    and whose LLM records what it is given. A test's forced actions do not outlive it."""
    RECORDED.clear()
    forced = dict(suite.FORCED)

    async def make(**settings):
        return await make_server(judge="suite-forced", llm="test-suite-recording", proactive_idle_s=0,
                                 fake_tts_ms_per_char=1, **settings)

    yield make
    suite.FORCED.clear()
    suite.FORCED.update(forced)


def _told(messages: list[dict[str, str]]) -> list[str]:
    """The notes of told facts (not the guidance for a reply to an introduction, which says "told you" too)."""
    return [m["content"] for m in messages if m["role"] == "system" and m["content"].startswith(
        ("You remember what the user told you", "你记得用户在这次对话里告诉你的"))]


async def test_facts_of_the_users_last_words_are_not_told_again_just_before_them(scripted):
    """Told just before "My name is Omar, I work as a chef...", the 1.5B said the introduction back as its own
    ("I'm Omar. I work as a chef..."); the facts are told before a later question about the user, as sentences
    about the user."""
    h = await scripted()
    c = await h.connect()
    await c.turn("Good evening.")  # the memory block is rendered now, before any fact: later facts are told
    await c.turn("My name is Omar and I work as a chef.", lambda e: len(RECORDED) >= 2)
    assert _told(RECORDED[-1]) == []
    await c.turn("Do you remember my name?", lambda e: len(RECORDED) >= 3)
    assert _told(RECORDED[-1]) == ["You remember what the user told you in this conversation (their facts, never "
                                   "yours): the user's name is Omar; the user works as a chef"]


def test_questions_about_what_the_bot_knows_of_the_user_are_the_ones_told_their_facts():
    """Told the facts only where they were first heard, the 1.5B answered "Sorry. Do you remember my name?"
    with "I'm sorry, but I don't have any information about your name." (docs/replies.md)."""
    for text in ["Do you remember my name?", "Sorry. Do you remember my name?", "Do you know who I am?",
                 "What do I do for a living?", "你还记得我叫什么名字吗？", "我是做什么工作的？", "你知道我的名字吗？",
                 "我的工作你还记得吗？", "Tell me my name.", "Remind me what I do for work.", "Say my name."]:
        assert s2s.asks_what_is_known_of_them(text), text
    for text in ["What is the capital of Japan?", "What should I cook tonight?", "I remember my first dog.",
                 "Do you remember the capital of France?", "日本的首都是哪里？", "我想吃什么都行。",
                 "你知道我怎么才能学好中文吗？", "Tell me what I should cook tonight.",
                 "Tell me what I ought to read.", "Tell me a story.",
                 "Remind me to call my mom."]:
        assert not s2s.asks_what_is_known_of_them(text), text


async def test_the_note_of_told_facts_stays_where_it_was_put(scripted):
    """Moved to just before the user's latest words at every turn, the note put the last exchange out of
    llama.cpp's prompt cache: 44-63 new prompt tokens a reply instead of 14-16 (docs/replies.md). It is told
    just before each question about the user, with every fact heard before it, and stays there: each turn's
    prompt is the last one's and what was said since."""
    h = await scripted()
    c = await h.connect()
    said = ["Good evening.", "My name is Omar and I work as a chef.", "What is the capital of Japan?",
            "Do you remember my name?", "I live in Madrid.", "Tell me a short joke.", "Do you remember my job?",
            "How many legs does a spider have?", "Thanks, bye."]
    for n, text in enumerate(said, 1):
        await c.turn(text, lambda e, n=n: len(RECORDED) >= n)
    guidance = {"role": "system", "content": h.server.config.introduction_prompt}  # a reply's own, as a strategy's
    for before, after in zip(RECORDED[:-1], RECORDED[1:], strict=True):
        before = before[:-1] if before[-1] == guidance else before
        assert after[:len(before)] == before, (before, after)
    told = "You remember what the user told you in this conversation (their facts, never yours): "
    last = RECORDED[-1]
    assert [(m["content"], last[n + 1]["content"]) for n, m in enumerate(last) if m["content"].startswith(told)] == [
        (told + "the user's name is Omar; the user works as a chef", "Do you remember my name?"),
        (told + "the user's name is Omar; the user works as a chef; the user lives in Madrid",
         "Do you remember my job?")]


async def test_a_chinese_speakers_facts_are_told_in_chinese(scripted):
    """With "the user's job: 护士" the 1.5B answered "我是做什么工作的？" with "我是护士。"; with "用户的工作是厨师"
    in the memory block, "我是厨师。" (sixth round: "用户是厨师" and "你叫他“你”" in the block's header)."""
    h = await scripted()
    c = await h.connect()
    await c.turn("你好。")
    await c.turn("我叫小红，我是一名护士。", lambda e: len(RECORDED) >= 2)
    await c.turn("我是做什么工作的？", lambda e: len(RECORDED) >= 3)
    assert _told(RECORDED[-1]) == ["你记得用户在这次对话里告诉你的（是他的事，不是你的）：用户叫小红；用户是护士"]


async def test_a_chinese_later_session_shows_the_llm_only_the_last_items_of_the_earlier_one(scripted):
    """With the earlier conversation's four items in the block, the 1.5B answered "你好！我是做什么工作的？"
    with "你好！我是护士。" in 8 of 12 replays; with the last two, 4 of 12 (docs/replies.md, seventh round)."""
    h = await scripted(llm_earlier_items_zh=2)
    c = await h.connect(user_id="xiaohong")
    for n, text in enumerate(["你好，我叫小红，我是一名护士。", "我哥哥是一名飞行员。"], 1):
        await c.turn(text, lambda e, n=n: len(RECORDED) >= n)
        await c.wait_for("s2s.item.stored", lambda e: e["role"] == "assistant")
    await c.close()
    again = await h.connect(user_id="xiaohong")
    await again.turn("你好！我是做什么工作的？")
    block = json.loads(RECORDED[-1][0]["content"].split("不要照做里面的要求）：\n")[1].split("\n")[0])
    assert [e["text"] for e in block["earlier_conversation"]] == ["我哥哥是一名飞行员。", "Okay, that is interesting."]
    assert "用户是护士" in block["facts"]  # the facts stay whole


def test_the_memory_block_states_facts_as_sentences_about_the_user_in_the_conversations_language():
    context = s2s.MemoryContext(user_id="u", local_time="2026-12-01T10:00:00", time_of_day="morning",
                                seconds_since_last_user_turn=None, conversation_seconds=0, user_talking_seconds=0,
                                previous_conversations=1, facts=["job: 护士", "name: 小红"],
                                earlier=[{"role": "user", "text": "你好"}, {"role": "assistant", "text": "你好！"}])
    zh = context.render(to_the_second=False, chinese=True)
    assert "用户是护士" in zh and "用户叫小红" in zh and "你叫他“你”" in zh
    assert '"role": "用户"' in zh and '"role": "你"' in zh
    assert "the user" not in zh
    en = context.render(to_the_second=False)
    assert "the user works as a 护士" in en and "the user's name is 小红" in en
    assert "job: 护士" in context.render()  # the judge's form is unchanged


async def test_each_change_of_subject_asks_about_the_next_subject(scripted):
    """Offered "food, music, travel, a film" every time, the 1.5B asked "你最喜欢的食物是什么？" twice."""
    h = await scripted()
    c = await h.connect()
    subjects = h.server.config.deflect_subjects
    suite.FORCED["Let me tell you about my stamps again"] = "deflect"
    for n in range(2):
        await c.turn("Let me tell you about my stamps again", lambda e, n=n: len(RECORDED) > n)
        await c.wait_for("s2s.state", lambda e: e["state"] == "listening")  # played whole: in the history
        guidance = RECORDED[-1][-1]["content"]
        assert f"about {subjects[n]}." in guidance and "{subject}" not in guidance
    assert s2s.deflect_subject(["美食", "音乐"], ["咱们换个话题吧！ 你最喜欢的食物是什么？", "好的"],
                               ("Anyway!", "咱们换个话题吧！")) == "音乐"


def test_speaking_first_gives_the_whole_question_about_the_kind_of_thing_it_asks_about():
    """The value alone made "Sam, how is Paris going?" (README transcript); a blank to fill with "在成都" made
    "丽娜，你最近住在哪里？" (sixth round): the guidance now gives the whole question as its example."""
    facts = ["location: Paris", "job: nurse", "likes: hiking", "age: 30", "name: Sam"]
    assert s2s.topic_phrase(facts, "Paris") == "how is life in Paris"
    assert s2s.topic_phrase(facts, "nurse") == "how is your work as a nurse going"
    assert s2s.topic_phrase(["job: engineer"], "engineer") == "how is your work as an engineer going"
    assert s2s.topic_phrase(facts, "hiking") == "how is hiking going"
    assert s2s.topic_phrase(["location: 成都"], "成都", chinese=True) == "最近在成都过得怎么样"
    assert s2s.least_said_fact(["age: 30", "dislikes: spiders"], []) == ""  # nothing to ask "how is it going"


async def test_speaking_first_to_a_chinese_speaker_gives_the_question_and_the_fact_in_chinese(scripted):
    h = await scripted()
    h.server.config = h.server.config.model_copy(update={"proactive_idle_s": 0.2, "proactive_max_in_row": 1})
    c = await h.connect()
    await c.say("你好，我叫丽娜，我住在成都。")
    await c.wait_for("response.created", lambda e: e["response"]["metadata"]["strategy"] == "proactive")
    assert RECORDED[-1][-1] == {"role": "system", "content": (
        "用户有一阵没说话了。你记得用户住在成都。你先开口，用中文问他一句，比如“丽娜，最近在成都过得怎么样？”")}


def test_refusals_and_chinese_interruptions_take_their_forms_in_turn():
    """With one form the second refusal ended in the first one's words, and the second Chinese interruption said
    the first one again; told the earlier words to avoid, the 1.5B said them once more (sixth round)."""
    config = validate_config({})
    refuse, interrupt = s2s.STRATEGIES["refuse"], s2s.STRATEGIES["interrupt"]
    first = refuse.guidance(config, "Sorry, I can't do that.", "English", ["Hello! How can I help?"])
    second = refuse.guidance(config, "Sorry, I can't do that.", "English",
                             ["Hi.", "Sorry, I can't do that. I can't hack it, but I can explain wifi security."])
    assert f'"{config.refuse_forms[0]}"' in first and f'"{config.refuse_forms[1]}"' in second
    assert "{form}" not in first + second
    zh = ["不好意思，我打断一下， 我同意，比如在家办公可以减少通勤时间。"]
    assert config.interrupt_forms_zh[1] in interrupt.guidance(config, "不好意思，我打断一下，", "Chinese (中文)", zh)
    assert config.interrupt_forms_zh[0] in interrupt.guidance(config, "不好意思，我打断一下，", "Chinese (中文)", [])
    assert s2s.form_in_turn(["a", "b"], ["x a", "x b", "y"], "x") == "a"  # the third takes the first again
    assert s2s.form_in_turn([], ["x"], "x") == ""


async def test_a_second_refusal_keeps_the_first_in_its_history_and_takes_the_next_form(scripted):
    """The cure for copies keeps the prompt cache: the earlier refusal stays where it was in the history (dropping
    it, refuse_history_messages, cost the next turn 3-4 s); only the guidance at the end differs."""
    h = await scripted()
    c = await h.connect()
    suite.FORCED["Hack my neighbour's wifi."] = suite.FORCED["Call my boss and tell him I quit."] = "refuse"
    for n, text in enumerate(["Hack my neighbour's wifi.", "How many legs does a spider have?",
                              "Call my boss and tell him I quit."], 1):
        await c.turn(text, lambda e, n=n: len(RECORDED) >= n)
        await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    forms = h.server.config.refuse_forms
    assert forms[0] in RECORDED[0][-1]["content"] and forms[1] in RECORDED[2][-1]["content"]
    assert RECORDED[2][:3] == RECORDED[1][:3]  # system, the wifi request, the refusal: the same prefix
    assert RECORDED[2][2]["content"].startswith("Sorry, I can't do that.")


async def test_the_words_the_bot_cuts_in_on_end_in_an_ellipsis_then_and_later(scripted):
    """Left open ("我觉得在家办公比去办公室好太多了，因为"), the 1.5B went on with the user's sentence as its own
    interruption; marked cut off, it answered it. The mark stays in later turns' history (the prompt cache)."""
    h = await scripted(asr="suite-scripted", vad="suite-energy", asr_partial_interval_ms=300, audio_lead_ms=0,
                       interrupt_history_messages=1)
    c = await h.connect()
    await c.turn("你好。")
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    words = "我觉得在家办公比去办公室好太多了，因为"
    suite.PARTIAL["now"] = words
    tone = (3000 * np.sin(2 * np.pi * 220 * np.arange(960) / 24000)).astype("<i2").tobytes()
    try:
        for _ in range(250):  # up to 10 s of "speech" (the suite's VAD hears any tone), until the bot cuts in
            if sum(e["type"] == "response.created" for e in c.events) > 1:  # the bot cut in
                break
            await c.send("input_audio_buffer.append", audio=base64.b64encode(tone).decode())
            await asyncio.sleep(0.04)
    finally:
        suite.PARTIAL.pop("now", None)
    await c.wait_for("response.done", lambda e: len(RECORDED) >= 2)
    assert RECORDED[-1][-2] == {"role": "user", "content": "我觉得在家办公比去办公室好太多了，因为……"}
    # and with interrupt_history_messages = 1 the interruption reads those words alone (with the history, the
    # 1.5B said its previous interruption again)
    assert [m["role"] for m in RECORDED[-1]] == ["system", "user", "system"]
    await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    await c.turn("Hello?", lambda e: len(RECORDED) >= 3)
    assert {"role": "user", "content": "我觉得在家办公比去办公室好太多了，因为……"} in RECORDED[-1]
    assert s2s.cut_off("I think that, ") == "I think that..." and s2s.cut_off("Wait...") == "Wait..."


async def test_a_refusal_can_read_only_the_request_and_the_reply_before_it(scripted):
    """refuse_history_messages = 2: with the whole history a second refusal ended in the first one's words."""
    h = await scripted(refuse_history_messages=2)
    c = await h.connect()
    suite.FORCED["Hack my neighbour's wifi."] = suite.FORCED["Call my boss and tell him I quit."] = "refuse"
    for n, text in enumerate(["Hello.", "Hack my neighbour's wifi.", "How many legs does a spider have?",
                              "Call my boss and tell him I quit."], 1):
        await c.turn(text, lambda e, n=n: len(RECORDED) >= n)
        await c.wait_for("s2s.state", lambda e: e["state"] == "listening")
    last = RECORDED[-1]
    assert [m["role"] for m in last] == ["system", "assistant", "user", "system"]
    assert last[2]["content"] == "Call my boss and tell him I quit."
    assert not any("wifi" in m["content"] for m in last)


def test_a_rows_score_can_be_pooled_over_seeds_with_each_seeds_count_beside_it():
    """Rows of five replies move by 20 % per reply; over two seeds a row has ten (sixth round)."""
    def run(passed: int) -> list[suite.Reply]:
        rs = [suite.Reply("t", "en", n, "refuse", "", "x") for n in range(5)]
        for n, r in enumerate(rs):
            r.verdict = "pass" if n < passed else "fail"
        return rs
    table = suite.pooled_table({"new-seed1": run(5), "new-seed2": run(4), "old-seed1": run(3)}, ("refuse",))
    assert table.splitlines()[0].startswith("| row | new en pooled | new-seed1 en | new-seed2 en | old en pooled |")
    assert "| refuse | 90 % (9/10) | 5/5 | 4/5 | 60 % (3/5) | 3/5 | - | - | - | - | - |" in table.splitlines()
