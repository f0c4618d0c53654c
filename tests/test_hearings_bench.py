"""benchmarks/voicebench_s2s.py --save-hearings writes each hearing of speech over the agent where
benchmarks/backchannel_clips.py --replay / --pass-time read it back, with the standard library only (soundfile
is not a dependency: with it missing every traced hearing raised, and the server cut the agent on each)."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # its `from common import ...`

pytest.importorskip("voicebench")  # the adapter's module imports it (requirements-dev.txt)

from benchmarks import common  # noqa: E402
from benchmarks import voicebench_s2s as vb  # noqa: E402


def test_a_saved_hearing_reads_back_sample_for_sample(tmp_path: Path):
    pcm = (np.sin(np.arange(4800) / 7.0) * 12000).astype(np.int16)
    pcm[:3] = [-32768, 32767, 0]
    vb.save_hearing(tmp_path, pcm, "zh", ("Stop Stop", -0.41, "en"), started=12.5)
    vb.save_hearing(tmp_path, pcm[:160], None, None, started=13.0)
    rows = [json.loads(line) for line in (tmp_path / "hearings.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["file"] for r in rows] == ["h0000.wav", "h0001.wav"]
    assert rows[0] | {"file": None} == {"file": None, "language": "zh", "text": "Stop Stop", "logprob": -0.41,
                                        "sounds": "en", "at_s": 12.5, "duration_ms": 300}
    assert rows[1]["text"] == "" and rows[1]["logprob"] is None and rows[1]["sounds"] is None
    back = common.read_pcm16(tmp_path / rows[0]["file"])
    assert back.dtype == np.int16 and np.array_equal(back, pcm)
    assert np.array_equal(common.read_pcm16(tmp_path / rows[1]["file"]), pcm[:160])


def test_a_wav_that_is_not_mono_16_bit_is_refused(tmp_path: Path):
    import wave

    with wave.open(str(tmp_path / "stereo.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(64, dtype="<i2").tobytes())
    with pytest.raises(ValueError, match="mono 16-bit"):
        common.read_pcm16(tmp_path / "stereo.wav")


def test_the_clip_sets_max_hold_cut_comes_when_the_pass_that_heard_the_words_is_done():
    """benchmarks/backchannel_clips.py's `decide`, as `Session._on_frame`: speech voiced `barge_in_max_hold_ms`
    (900 ms) long is cut on the words the latest finished pass heard, at 900 ms or when that pass is done,
    whichever is later. Passes of 400 ms each: the first (180 -> 580 ms of audio) hears nothing, the second
    (580 -> 980) a word it is unsure of: the cut is at 980 ms, not 900; had the first heard it, at 900."""
    from benchmarks import backchannel_clips as bc
    from s2s_config import validate_config

    class Hearings:  # what each pass hears, by how much audio it has (samples, with 300 ms of silence first)
        def __init__(self, heard):
            self.heard = heard

        def hear(self, pcm, language, end, padding="features", window_s=None):
            return self.heard(end)

    config = validate_config({})
    pcm = (np.sin(np.arange(16000 * 2) / 7.0) * 12000).astype(np.int16)  # 2 s of sound, no pause
    late = Hearings(lambda end: ("", None) if end < 16 * (300 + 400) else ("Rock", -0.9))
    assert bc.decide(late, config, pcm, "en", 0, 400, True)[:2] == (True, 980)
    early = Hearings(lambda end: ("Rock", -0.9) if end < 16 * (300 + 400) else ("Roll", -0.9))
    assert bc.decide(early, config, pcm, "en", 0, 400, True)[:2] == (True, 900)


def options(**overrides) -> argparse.Namespace:
    """voicebench_s2s.py's options as its parser gives them, with `overrides`."""
    return argparse.Namespace(**{"fakes": False, "fake_reply": False, "latency_only": False,
                                 "pairs": len(vb.OVER_SPEECH), **overrides})


def test_over_speech_over_a_fake_llm_gets_a_reply_long_enough_to_talk_over():
    """With `--llm fake` and over-speech, the server's fake LLM says `LONG_FAKE_REPLY` (11.9 s of speech,
    English only; its own default, 5-6 s, had ended before 2 of 4 interruptions were played), unless the command
    line gives a reply of its own; without over-speech, or with the zero-latency fakes, the reply stays as it was."""
    from s2s_config import load_config

    def reply(args: argparse.Namespace, line: list[str]) -> str:
        return load_config(vb.server_base(args, line)).fake_llm_reply

    assert reply(options(), ["--llm", "fake"]) == vb.LONG_FAKE_REPLY
    assert "{user}" not in vb.LONG_FAKE_REPLY  # a Chinese question's words would switch the voice mid-reply
    assert len(vb.LONG_FAKE_REPLY.split()) > 2 * len(load_config([]).fake_llm_reply.split())
    assert reply(options(), ["--llm", "fake", "--fake-llm-reply", "Hi."]) == "Hi."
    assert reply(options(pairs=0), ["--llm", "fake"]) != vb.LONG_FAKE_REPLY
    assert reply(options(fakes=True), []) == "Sure. Here is a short answer."


def test_over_speech_played_while_the_agent_was_silent_is_named():
    """An interruption, backchannel or noise whose onset falls outside every stretch of the agent's speech (as
    voicebench's agent VAD found it) tested nothing, and the report names it; one inside a stretch, and a
    question turn, are not named."""
    turn = types.SimpleNamespace
    session = types.SimpleNamespace(agent_segments=[types.SimpleNamespace(start=1.0, end=5.0)], turns=[
        turn(id="interruption-stop", expect="stop", user_onset_s=6.2),
        turn(id="backchannel-uh-huh", expect="ignore", user_onset_s=2.2),
        turn(id="noise-door", expect="ignore", user_onset_s=5.5),
        turn(id="q1", expect="respond", user_onset_s=7.0)])
    assert vb.not_over_agent(session) == ["interruption-stop", "noise-door"]
