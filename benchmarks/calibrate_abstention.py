"""Calibrate the abstention threshold (ABSTAIN_THRESHOLD) on SQuAD 2.0 dev.

Half of the articles are indexed. Questions about them are on-corpus (the bot should
answer); questions about the other half are off-corpus (the articles do not know, and the
bot should say so). For each question it computes the answerer's evidence score and prints
the trade-off between answering on-corpus questions and abstaining on off-corpus ones, the
AUROC of each signal, and the threshold chosen: the highest one that still answers at least
`--min-answered` of on-corpus questions.

Usage::

    python benchmarks/calibrate_abstention.py --limit 1000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from squad_data import DEFAULT_DATASET, load_squad, write_articles

from bot.extractive import ExtractiveAnswerer
from bot.settings import Settings
from index.embedder import load_embedder
from index.rebuild import rebuild
from index.search import Searcher
from index.store import open_current


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    scores = np.concatenate([positive, negative])
    ranks = scores.argsort().argsort().astype(np.float64) + 1
    # average ranks for ties
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inverse, ranks)
    ranks = (sums / counts)[inverse]
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    parser = argparse.ArgumentParser(description="Calibrate ABSTAIN_THRESHOLD on SQuAD 2.0")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-bench/calibration"))
    parser.add_argument("--limit", type=int, default=1000, help="questions per side")
    parser.add_argument("--min-answered", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    records, questions = load_squad(args.dataset)
    indexed = {r["id"] for i, r in enumerate(records) if i % 2 == 0}
    folder = write_articles([r for r in records if r["id"] in indexed], args.work / "articles")
    settings = Settings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={"articles_dir": folder, "index_dir": args.work / "index"}
    )
    embedder = load_embedder(settings.embedding_model, settings.embedding_device)
    rebuild(settings, lambda: embedder)
    searcher = Searcher(open_current(settings.index_dir), embedder, settings.hybrid_dense_weight)
    answerer = ExtractiveAnswerer(settings.answer_max_sentences, settings.answer_max_words)

    rng = random.Random(args.seed)
    on = [q for q in questions if not q.impossible and q.article_id in indexed]
    off = [q for q in questions if not q.impossible and q.article_id not in indexed]
    on = rng.sample(on, min(args.limit, len(on)))
    off = rng.sample(off, min(args.limit, len(off)))

    def features(qs: list) -> dict[str, np.ndarray]:
        rows = []
        for q in qs:
            hits = searcher.search(q.text, settings.search_k)
            ranked = answerer.rank_sentences(q.text, hits, embedder)
            idf = searcher.term_weights(q.text)
            rows.append(
                (
                    answerer.evidence(q.text, hits, ranked, idf),
                    max((s.dense for s in ranked), default=0.0),
                    hits[0].dense_score or 0.0 if hits else 0.0,
                    answerer.coverage(q.text, hits, idf),
                )
            )
        arr = np.array(rows)
        return {
            "evidence": arr[:, 0],
            "best_sentence_cosine": arr[:, 1],
            "top_passage_cosine": arr[:, 2],
            "term_coverage": arr[:, 3],
        }

    f_on, f_off = features(on), features(off)
    aurocs = {name: auroc(f_on[name], f_off[name]) for name in f_on}
    table = []
    for t in np.round(np.arange(0.20, 0.81, 0.025), 3):
        answered = float((f_on["evidence"] >= t).mean())
        abstained = float((f_off["evidence"] < t).mean())
        table.append({"threshold": float(t), "on_answered": answered, "off_abstained": abstained})
    ok = [row for row in table if row["on_answered"] >= args.min_answered]
    chosen = max(ok, key=lambda r: r["threshold"]) if ok else table[0]
    out = {
        "on_corpus_questions": len(on),
        "off_corpus_questions": len(off),
        "auroc": aurocs,
        "tradeoff": table,
        "chosen": chosen,
        "min_answered": args.min_answered,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{len(on)} on-corpus vs {len(off)} off-corpus answerable SQuAD 2.0 dev questions")
    print("AUROC (on-corpus scored above off-corpus):")
    for name, value in aurocs.items():
        print(f"  {name:22} {value:.3f}")
    print()
    print("| threshold | on-corpus answered | off-corpus abstained |")
    print("|---|---|---|")
    for row in table:
        mark = " <- chosen" if row is chosen else ""
        print(
            f"| {row['threshold']:.3f} | {row['on_answered']:.3f} | "
            f"{row['off_abstained']:.3f} |{mark}"
        )
    print()
    print(
        f"chosen ABSTAIN_THRESHOLD={chosen['threshold']:.3f}: answers "
        f"{chosen['on_answered']:.1%} of on-corpus questions and abstains on "
        f"{chosen['off_abstained']:.1%} of off-corpus ones"
    )


if __name__ == "__main__":
    main()
