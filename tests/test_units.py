"""Pure parts of the server, without sockets: turn detector, clause chunker, audio codec, config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import s2s_server as s2s
from s2s_config import ConfigError, load_config, validate_config

FRAME = np.zeros(480, dtype=np.int16)  # 30 ms at 16 kHz


def detector(**overrides):
    """The default turn-taking component as a session makes it, with these knobs."""
    det = s2s.TurnDetector(load_config([], environ={}), frame_ms=30)
    settings = dict(threshold=0.5, min_speech_ms=150, barge_in_min_speech_ms=300, silence_ms=300,
                    prefix_padding_ms=90, max_utterance_ms=3000, pause_ms=120)
    for name, value in {**settings, **overrides}.items():
        setattr(det, name, value)
    det.reset()
    return det


def run(det, probs):
    """Feed frames whose sample values number them (frame i holds the value i) and collect events."""
    events = []
    for i, p in enumerate(probs):
        events += [(i, e) for e in det.push(np.full(480, i, dtype=np.int16), p)]
    return events


def test_turn_detector_starts_after_min_speech_and_keeps_the_prefix_padding():
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 12
    events = run(detector(), probs)
    kinds = [(i, e.kind) for i, e in events]
    assert kinds[0] == (14, "speech_started")  # 5 frames of 30 ms = 150 ms voiced, frames 10..14
    assert events[0][1].at_ms == 10 * 30  # the onset is dated at the first voiced frame
    stopped = next(e for _, e in events if e.kind == "speech_stopped")
    first_sample_frames = stopped.audio[::480]
    assert first_sample_frames[0] == 7  # 3 frames (90 ms) of prefix padding before frame 10
    assert first_sample_frames[-1] == 29  # the trailing silence is trimmed
    assert stopped.at_ms == 30 * 30  # end of the last voiced frame


def test_turn_detector_ignores_short_noise():
    probs = [0.0] * 5 + [0.9] * 3 + [0.0] * 20 + [0.9, 0.0] * 10
    assert run(detector(), probs) == []


def test_turn_detector_tolerates_one_unvoiced_frame_in_the_onset_window():
    probs = [0.0] * 5 + [0.9, 0.9, 0.1, 0.9, 0.9, 0.9] + [0.0] * 12
    assert [e.kind for _, e in run(detector(), probs)][0] == "speech_started"


def test_turn_detector_ends_the_turn_after_the_silence_window_and_reports_pauses():
    probs = [0.9] * 10 + [0.0] * 5 + [0.9] * 5 + [0.0] * 10
    kinds = [(i, e.kind) for i, e in run(detector(), probs)]
    assert kinds == [(4, "speech_started"), (13, "paused"), (15, "resumed"), (20 + 3, "paused"),
                     (29, "speech_stopped")]


def test_turn_detector_forces_a_stop_at_the_maximum_length():
    events = run(detector(max_utterance_ms=600), [0.9] * 40)
    (i, stopped) = next((i, e) for i, e in events if e.kind == "speech_stopped")
    assert [e.kind for _, e in events][:2] == ["speech_started", "speech_stopped"]
    assert i == 19 and len(stopped.audio) == 20 * 480  # frames 0..19: exactly 600 ms, not later


def test_a_barge_in_needs_more_speech_than_an_onset():
    short = [0.9] * 8 + [0.0] * 20  # 240 ms of speech: a turn, but too short to cut the bot off
    assert [e.kind for _, e in run(detector(), short)][:1] == ["speech_started"]
    talking = detector()
    talking.bot_speaking = True
    assert run(talking, short) == []
    kinds = [(i, e.kind) for i, e in run(talking, [0.9] * 12)]
    assert kinds == [(9, "speech_started"), (9, "barge_in")]  # 300 ms (10 frames) of speech


def test_turn_taking_ends_a_turn_when_asked():
    det = detector()
    run(det, [0.9] * 8)
    assert det.in_speech
    ended = det.end_turn_now()
    assert ended.kind == "speech_stopped" and len(ended.audio) == 8 * 480 and not det.in_speech
    assert det.end_turn_now() is None


@pytest.mark.parametrize(("stream", "clauses"), [
    (["Hello", " there", ", my friend.", " How are", " you?"], ["Hello there,", "my friend.", "How are you?"]),
    (["Hi,", " Bob. Pi is 3.14", " today!"], ["Hi, Bob.", "Pi is 3.14 today!"]),  # "Hi," is too short to cut
    (["你好，", "今天天气很好。", "我们去公园吧！"], ["你好，今天天气很好。", "我们去公园吧！"]),
    (["我觉得这个想法非常有意思，", "不过"], ["我觉得这个想法非常有意思，", "不过"]),
])
def test_clause_chunker_cuts_english_and_chinese(stream, clauses):
    chunker = s2s.ClauseChunker(min_chars=12, max_chars=180)
    out = [c for delta in stream for c in chunker.push(delta)] + chunker.flush()
    assert out == clauses


def test_clause_chunker_cuts_a_sentence_end_without_waiting_for_the_next_token():
    chunker = s2s.ClauseChunker(min_chars=12, max_chars=180)
    assert chunker.push("Sure.") == ["Sure."]
    assert chunker.push(" Call Dr.") == []  # an abbreviation: wait for the next token
    assert chunker.push(" Smith at 3.") == []  # "3." may be "3.14": wait
    assert chunker.push("14 pm.") == ["Call Dr. Smith at 3.14 pm."]


def test_clause_chunker_cuts_long_unpunctuated_text_at_a_space():
    chunker = s2s.ClauseChunker(min_chars=12, max_chars=40)
    text = " ".join(f"w{i}" + "x" * (i % 5) for i in range(30))  # words of different lengths, no punctuation
    out = chunker.push(text) + chunker.flush()
    assert len(out) > 1 and all(len(c) <= 40 for c in out)
    assert " ".join(out) == text  # every cut fell on a space: no word is split, none is lost


def test_speakable_strips_markdown():
    assert s2s.speakable("**Bold** and `code` and [a link](http://x)") == "Bold and code and"


def test_pcm16_codec_round_trips_and_rejects_junk():
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert np.array_equal(s2s.decode_pcm16(s2s.encode_pcm16(pcm)), pcm)
    with pytest.raises(s2s.AudioError):
        s2s.decode_pcm16("not base64!")
    with pytest.raises(s2s.AudioError):
        s2s.decode_pcm16("AAAA")  # 3 bytes


def test_stream_resampler_matches_length_over_many_chunks():
    r = s2s.StreamResampler(24000, 16000)
    out = [r.push(np.zeros(480, dtype=np.int16)) for _ in range(50)] + [r.push(np.zeros(0, np.int16), last=True)]
    assert abs(sum(len(o) for o in out) - 50 * 320) <= 2


async def test_a_rate_aware_voice_without_speak_at_says_so_instead_of_recursing():
    class HalfWritten(s2s.RateAwareTTS):  # no name: not registered
        pass

    tts = HalfWritten(load_config([], environ={}))
    for stream in (tts.synthesize("hi"), tts.synthesize_at("hi", rate_hz=24000)):
        with pytest.raises(NotImplementedError, match="HalfWritten .* must implement speak_at"):
            async for _ in stream:
                pass


def test_playback_clock_cuts_the_text_to_whole_clauses_and_a_share_of_the_next():
    clock = s2s.PlaybackClock()
    clock.sent(0, "One two.", at_ms=100)
    clock.sent(1000, "", at_ms=100)
    clock.sent(0, "three four five six", at_ms=110)
    clock.sent(1000, "", at_ms=120)
    assert clock.text_until(500) == "One"
    assert clock.text_until(1000) == "One two."
    assert clock.text_until(1500) == "One two. three four"
    assert clock.text_until(5000) == "One two. three four five six"
    assert clock.played_ms(at_ms=1600) == 1500  # real time from the first audio on the wire
    assert clock.heard_ms(5000, finished=True) == 2000  # never more than was sent, once sending ended
    assert clock.stop(at_ms=1600) == 1500 and clock.sent_ms == 1500 and clock.remaining_ms(1600) == 0
    chinese = s2s.PlaybackClock()
    chinese.sent(1000, "我们去公园吧", at_ms=0)
    assert chinese.text_until(500) == "我们去"
    stalled = s2s.PlaybackClock()  # 500 ms of audio, nothing for 500 ms more, then 500 ms again
    stalled.sent(500, "one", at_ms=0)
    stalled.sent(500, "two", at_ms=1000)
    assert stalled.played_until_at_ms == 1500 and stalled.played_ms(at_ms=1200) == 700  # not 1000: the stall


def test_config_precedence_is_defaults_file_env_command_line(tmp_path):
    file = tmp_path / "s.toml"
    file.write_text('vad_silence_ms = 700\nport = 9000\n')
    config = load_config(["--config", str(file), "--port", "9100"], environ={"S2S_VAD_SILENCE_MS": "800"})
    assert (config.vad_silence_ms, config.port) == (800, 9100)
    assert load_config(["--plugins", "a,b"], environ={}).plugins == ["a", "b"]


@pytest.mark.parametrize(("argv", "environ", "needle"), [
    ([], {"S2S_VAD_SILENCE": "5"}, "Did you mean: vad_silence_ms"),
    (["--vad-silence-ms", "ten"], {}, "valid integer"),
    (["--vad-silence-ms", "50"], {}, "greater than or equal to 100"),
    (["--wire-rate-hz", "8000"], {}, "16000 or 24000"),
    (["--log-level", "LOUD"], {}, "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    (["--whisper-window-s", "3"], {}, "whisper_window_s = '3': Input should be greater than or equal to 5"),
    ([], {"S2S_ASR_WINDOW_S": "10"}, "Did you mean: whisper_window_s"),  # a backend's setting has its name
    ([], {"S2S_INTERRUPT_FORMS": '["I agree, but ..."]'}, "interrupt_prompt has no {form}"),  # would be ignored
    (["--history-max-items", "6", "--history-drop-items", "8"], {},
     "history_drop_items (8) must not exceed history_max_items (6)"),  # would send no history at all
    (["--turn-audio-trust-min-turns", "9"], {},  # a backend's own rule (PredictiveTurnDetector.Settings)
     "turn_audio_trust_min_turns (9) must not exceed turn_audio_trust_turns (8"),  # the rule would be off
    ([], {"S2S_REFUSE_FORMS": "[]"}, "refuse_prompt asks for a {form} but refuse_forms is empty"),
    (["--memory-anonymous-keep-days", "0.01", "--max-session-s", "3600"], {},  # would expire a live session's words
     "memory_anonymous_keep_days (0.01 days) must be 0 (keep forever) or longer than max_session_s (3600 s)"),
    (["--barge-in-reaction-max-ms", "500"], {},  # a reaction would be cut sooner than words
     "barge_in_reaction_max_ms (500) must not be under barge_in_max_hold_ms (900)"),
])
def test_config_errors_name_the_valid_choices(argv, environ, needle):
    with pytest.raises(ConfigError) as info:
        load_config(argv, environ=environ)
    assert needle in str(info.value)


def test_a_check_across_settings_prints_its_message_alone():
    """A model validator's error has no setting name of its own: its line is the message, not " = {every
    override}: Value error, ..."."""
    with pytest.raises(ConfigError) as info:
        load_config(["--barge-in-reaction-max-ms", "500"], environ={})
    assert str(info.value).splitlines()[1:] == [
        "  barge_in_reaction_max_ms (500) must not be under barge_in_max_hold_ms (900)"]


def test_the_command_line_exits_2_on_bad_settings_and_help_lists_every_option():
    for argv in (["--port", "-1"], ["--nope", "1"], ["--asr", "nope"]):
        result = subprocess.run([sys.executable, "s2s_server.py", *argv], capture_output=True, text=True)
        assert result.returncode == 2, (argv, result.stderr)
    assert "choose one of: fake" in result.stderr
    help_text = subprocess.run([sys.executable, "s2s_server.py", "--help"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "10000"}).stdout
    from s2s_config import config_model
    for name in config_model().model_fields:
        assert "--" + name.replace("_", "-") in help_text
    whisper = help_text.split("asr whisper settings:")[1].split(" settings:")[0]  # a backend's own, under its name
    assert "--whisper-window-s" in whisper and "--vad-silence-ms" not in whisper
    assert "Registered: fake, funasr-ws, hf-whisper, openai-asr, paraformer, whisper." in help_text


def test_a_taken_backend_name_is_refused_unless_replacement_is_asked_for():
    with pytest.raises(s2s.RegistryError, match=r"already registered by s2s_server.FakeASR; .*Impostor must"):
        class Impostor(s2s.ASR):
            name = "fake"
    assert s2s.REGISTRY["asr"]["fake"] is s2s.FakeASR

    class Replacement(s2s.ASR):
        name = "fake"
        replace = True

    try:
        assert s2s.REGISTRY["asr"]["fake"] is Replacement
    finally:
        s2s.REGISTRY["asr"]["fake"] = s2s.FakeASR


def test_importing_the_server_starts_nothing():
    code = ("import threading, sys; import s2s_server; "
            "print(threading.active_count(), 'torch' in sys.modules, 'faster_whisper' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "False", "False"]


def test_client_event_parser_reports_codes():
    with pytest.raises(s2s.ProtocolError) as info:
        s2s.parse_client_event(json.dumps({"type": "session.update", "session": {"instructions": 5}}))
    assert info.value.code == "invalid_event" and "instructions" in info.value.message
    deep = "[" * 100000 + "]" * 100000
    with pytest.raises(s2s.ProtocolError):
        s2s.parse_client_event(deep)


def test_server_event_json_is_strict_json_and_falls_back_to_json_for_what_orjson_refuses():
    strict = s2s.event_json({"type": "x", "ms": float("nan"), "words": "你好"})
    assert strict == '{"type":"x","ms":null,"words":"你好"}'.encode()
    text = s2s.event_json({"type": "x", "big": 2**70, "f": np.float64(1.5)})  # orjson refuses both: json writes them
    assert json.loads(text) == {"type": "x", "big": 2**70, "f": 1.5}


def test_the_default_policy_turns_judgements_into_plans_without_a_session():
    policy = s2s.DefaultPolicy(load_config([], environ={}))
    on = s2s.Moment(text="x", strategies=frozenset(s2s.switchable_strategies()))
    judged = lambda action, confidence=0.9: s2s.Judgement(action=action, confidence=confidence)  # noqa: E731
    assert policy.on_turn(judged("refuse"), on).strategy == "refuse"
    switched_off = policy.on_turn(judged("refuse"), s2s.Moment(strategies=frozenset({"reply"})))
    assert switched_off.strategy == "reply" and "switched off" in switched_off.reason
    assert policy.on_turn(judged("silence"), s2s.Moment(proactive=False, strategies=on.strategies)).strategy == "reply"
    stray = policy.on_turn(judged("interrupt"), on)  # a partial-transcript action on a finished turn
    assert stray.strategy == "reply" and "does not answer a completed turn" in stray.reason
    assert policy.on_turn(judged("block", 0.8), on).strategy == "block"
    unsure = policy.on_turn(judged("block", 0.36), on)  # a block cannot be undone: not on a guess
    assert unsure.strategy == "silence" and "judged block at only 0.36" in unsure.reason
    no_silence = s2s.Moment(text="x", strategies=frozenset({"reply", "block"}))
    assert policy.on_turn(judged("block", 0.36), no_silence).strategy == "reply"
    assert policy.on_partial(judged("none"), on).action == "none"
    assert policy.on_partial(judged("interrupt"), on).strategy == "interrupt"
    assert policy.on_partial(judged("interrupt", 0.1), on).strategy is None  # not sure enough
    talking = s2s.Moment(strategies=on.strategies, bot_active=True)
    assert policy.on_partial(judged("interrupt"), talking).strategy is None
    assert policy.quiet_after_s(on) == policy.config.proactive_idle_s
    assert policy.on_quiet(on).strategy == "proactive"
    tired = s2s.Moment(strategies=on.strategies, spoke_first_in_row=policy.config.proactive_max_in_row)
    assert policy.quiet_after_s(tired) is None and policy.on_quiet(tired).strategy is None


def test_a_strategy_is_defined_once_and_a_taken_name_is_refused():
    refuse = s2s.STRATEGIES["refuse"]
    config = load_config([], environ={})
    assert refuse.opener(config, "do my homework") == config.refuse_template_en
    assert refuse.opener(config, "帮我写作业") == config.refuse_template_zh
    said = config.model_copy(update={"refuse_prompt": "You said {template} in {language}.",
                                     "refuse_prompt_zh": "你说了{template}"})
    assert refuse.guidance(said, "No.", "English") == "You said No. in English."
    assert refuse.guidance(said, "不。", "Chinese (中文)") == "你说了不。"  # a Chinese speaker: the Chinese twin
    assert refuse.max_tokens(config) == config.guided_max_tokens
    assert s2s.STRATEGIES["reply"].max_tokens(config) == config.llm_max_tokens
    with pytest.raises(s2s.RegistryError, match="already defined"):
        s2s.add_strategy(s2s.Strategy("refuse", "Refuse again"))
    assert s2s.add_strategy(refuse, replace=True) is refuse


def test_plugins_are_read_before_the_rest_from_the_command_line_environment_or_file(tmp_path):
    from s2s_config import plugins_named

    toml, jsonf = tmp_path / "s.toml", tmp_path / "s.json"
    toml.write_text('plugins = ["a"]\n')
    jsonf.write_text('{"plugins": ["e"]}')
    assert plugins_named([], environ={}) == []
    assert plugins_named(["--config", str(toml)], environ={}) == ["a"]
    assert plugins_named(["--config", str(jsonf)], environ={}) == ["e"]
    assert plugins_named(["--config", str(toml)], environ={"S2S_PLUGINS": "b, c"}) == ["b", "c"]
    assert plugins_named(["--port", "1", "--plugins", "d"], environ={"S2S_PLUGINS": "b"}) == ["d"]


def test_a_setting_has_one_owner():
    from s2s_config import BackendSettings, add_settings

    class Shared(BackendSettings):
        vad_silence_ms: int = 1

    class Whispers(BackendSettings):
        whisper_window_s: int = 1

    with pytest.raises(ConfigError, match="'vad_silence_ms' of asr clash is already a setting of the shared"):
        add_settings("asr clash", Shared)
    with pytest.raises(ConfigError, match="already a setting of asr whisper"):
        add_settings("asr clash", Whispers)


def test_main_config_imports_the_plugins_first_and_exits_2_on_errors(capsys):
    from s2s_config import main_config

    imported = []
    config = main_config(["--plugins", "mine", "--port", "0"], import_plugins=imported.extend,
                         choices=lambda: {"asr": ["fake"]})
    assert imported == ["mine"] and config.plugins == ["mine"]

    def missing(modules):
        raise ImportError(f"No module named {modules[0]!r}")

    for argv, hook in ((["--plugins", "nope"], missing), (["--port", "-1"], None)):
        with pytest.raises(SystemExit) as exit_info:
            main_config(argv, import_plugins=hook)
        assert exit_info.value.code == 2
    assert "No module named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("opener", "deltas", "said"), [
    ("Sorry to cut in, but", ["Sorry", " to", " cut", " in,", " but", " I", " disagree."], " I disagree."),
    ("Sorry, I can't do that.", ["Sorry, I can't", " do that. It", " is your work."], "It is your work."),
    ("不好意思，我打断一下，", ["不好", "意思，我打断一下，", "狗", "很可爱。"], "狗很可爱。"),
    ("Sorry to cut in, but", ["Sorry", " to", " say", " this."], "Sorry to say this."),  # not the opener
    ("Sorry to cut in, but", ["Sorry"], "Sorry"),  # the stream ended while it could still have been
    ("", ["Hello", " there."], "Hello there."),
])
def test_the_llm_repeating_the_spoken_opener_is_dropped(opener, deltas, said):
    echo = s2s.OpenerEcho(opener)
    assert "".join(echo.push(d) for d in deltas) + echo.flush() == said


def test_before_serving_what_is_loaded_leaves_the_garbage_collector_and_young_passes_come_less_often():
    import gc

    thresholds = gc.get_threshold()
    try:
        s2s.settle_garbage_collector(s2s.Config(gc_young_threshold=5000))
        assert gc.get_threshold() == (5000, *thresholds[1:]) and gc.get_freeze_count() > 0
        gc.set_threshold(*thresholds)
        s2s.settle_garbage_collector(s2s.Config(gc_young_threshold=0))  # 0: Python's own
        assert gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def test_the_models_load_with_the_openmp_wait_policy_in_their_environment(monkeypatch, tmp_path):
    """OMP_WAIT_POLICY is read by an OpenMP runtime once, when it loads: it must be in the environment before
    any model loads (spinning waits made two llama.cpp threads ten times slower on 2 shared cores)."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    seen: list[str | None] = []

    class Watching(s2s.FakeLLM):
        def load(self):
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
            super().load()

    config = validate_config({"asr": "fake", "llm": "fake", "tts": "fake", "judge": "off", "data_dir": str(tmp_path)})
    components = s2s.build_components(config)
    components.llm = Watching(config)
    await s2s.load_components(components)
    s2s.close_components(components)
    assert seen == ["PASSIVE"]
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    s2s.apply_openmp_wait_policy(s2s.Config(openmp_wait_policy="inherit"))
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # inherit: the environment's, untouched


def test_llamacpp_uses_every_core_unless_told(monkeypatch):
    """Two passive threads on 2 cores: 1396 ms voice to voice against 1789 with one (docs/latency.md)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert s2s.llamacpp_thread_counts(validate_config({})) == (2, 2)
    assert s2s.llamacpp_thread_counts(validate_config({"llamacpp_threads": 1})) == (1, 1)
    assert s2s.llamacpp_thread_counts(validate_config({"llamacpp_prompt_threads": 1})) == (2, 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))  # a big host: capped
    assert s2s.llamacpp_thread_counts(validate_config({})) == (8, 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})  # a container pinned to one CPU of many
    assert s2s.llamacpp_thread_counts(validate_config({})) == (1, 1)


def test_llamacpp_close_does_not_wait_for_a_read_nobody_waits_for_but_for_a_reply(caplog):
    """A stop does not wait for the prompt step of a read that serves only a later session (`prime_for` with
    `give_way`: 1.6 s of a 1.9 s stop): close() returns while it runs, keeps the model loaded for it and says so
    (`left_running`, on which the process exits without freeing it). A reply's call is waited for. Each call
    here stands in for a llama.cpp prompt step, and ends when the test says."""
    llm = s2s.LlamaCppLLM(validate_config({}))
    llm._server = model = object()  # the loaded model, as close() frees it: dropped
    in_step, step_done = threading.Event(), threading.Event()

    def one_step(*args, **kwargs):
        with llm._server_in_use():
            in_step.set()
            step_done.wait(30)
        return {"stopped": 1}

    llm._prime_kept = one_step
    read = threading.Thread(target=llm.prime_for, args=("sam", []), kwargs={"give_way": lambda: False})
    read.start()
    assert in_step.wait(10)
    with caplog.at_level("INFO"):
        llm.close()
    assert llm.left_running and llm._server is model and read.is_alive()
    assert "a read for a later session stops at its next prompt step by itself" in caplog.text
    assert "still running" not in caplog.text  # not given up on after 10 s: not waited for at all
    step_done.set()
    read.join(10)
    # A reply's call (here a plain prime) is waited for, and then the model is freed.
    llm = s2s.LlamaCppLLM(validate_config({}))
    llm._server = object()
    in_step.clear()
    step_done.clear()
    reply = threading.Thread(target=one_step)
    reply.start()
    assert in_step.wait(10)
    closed = threading.Thread(target=llm.close)
    closed.start()
    closed.join(0.3)  # a while to see that it does not return: nothing tells it waits
    assert closed.is_alive() and llm._server is not None
    step_done.set()
    closed.join(10)
    reply.join(10)
    assert not llm.left_running and llm._server is None


def test_an_openmp_runtime_loaded_before_the_policy_is_named_in_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(s2s, "openmp_runtimes_loaded", lambda: ["libgomp.so.1"])
    with caplog.at_level("WARNING"):
        s2s.apply_openmp_wait_policy(s2s.Config())
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "libgomp.so.1 already loaded with OMP_WAIT_POLICY=(unset)" in caplog.text


def test_openmp_runtimes_loaded_finds_one_that_a_model_library_loads():
    code = ("import s2s_server as s; before = s.openmp_runtimes_loaded(); import ctranslate2; "
            "print(before, s.openmp_runtimes_loaded())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout
    before, after = out.strip().split("] [")
    assert before == "[" and "libgomp" in after


async def test_an_asr_subclass_that_overrides_transcribe_alone_is_scored_on_its_own_words():
    """Turn-taking reads `transcribe_scored` at a pause: a plugin that changes `transcribe` only (hotwords,
    post-processing) must not have its parent's scored transcript used instead of its own words."""
    class Scored(s2s.ASR):
        async def transcribe(self, audio):
            yield "parent"

        async def transcribe_scored(self, audio):
            yield "parent", -0.1

    class Plugin(Scored):
        async def transcribe(self, audio):
            yield "plugin words"

    pieces = [p async for p in Plugin(s2s.Config()).transcribe_scored(np.zeros(1600, dtype=np.int16))]
    assert pieces == [("plugin words", None)]
    parent = [p async for p in Scored(s2s.Config()).transcribe_scored(np.zeros(1600, dtype=np.int16))]
    assert parent == [("parent", -0.1)]


def test_clauses_join_as_each_language_is_written():
    """No space after Chinese, nor before Chinese that goes on from a word or a number; a space elsewhere."""
    assert s2s.join_clauses(["北京有很多好玩的地方，", "比如故宫。"]) == "北京有很多好玩的地方，比如故宫。"
    assert s2s.join_clauses(["价格是100", "元。"]) == "价格是100元。"
    assert s2s.join_clauses(["Lovely today.", "今天很好，", "See you!"]) == "Lovely today. 今天很好，See you!"
    assert s2s.join_clauses(["Sure,", "here it is."]) == "Sure, here it is."


async def test_forget_user_refuses_an_anonymous_sessions_id_and_says_why_and_what_deletes_it(tmp_path, capsys):
    config = load_config(["--data-dir", str(tmp_path / "memory")], environ={})
    assert await s2s.forget_user(config, "anon-sess_0123456789abcdef0123") == 2
    said = capsys.readouterr().err
    assert "not a user id (letters" not in said  # the characters are fine: that was not why
    assert "anonymous session's" in said and "would keep its block" in said, said
    assert "--forget-anonymous deletes every anonymous session's rows" in said and "30 days" in said, said
    assert not (tmp_path / "memory").exists()  # refused before the memory is opened
