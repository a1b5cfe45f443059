"""Fit and calibrate the abstention model (bot/abstention.py, ABSTAIN_THRESHOLD) on SQuAD 2.0.

The collection is built so that off-corpus questions include the hard kind, which share names
and topic with what is indexed:

- a third of the 35 Wikipedia articles are left out entirely: their questions are
  off-corpus ("off", the easy kind: another topic);
- of every other article only the even paragraphs are indexed: questions about the even
  paragraphs are on-corpus ("on"); questions about the odd ones are off-corpus ("hard": same
  names, a fact the index does not hold), leaving out any whose gold answer appears anywhere
  in the article's indexed text (it might be answerable there).

Off-corpus questions that name something the index holds (a capitalised word of the
question found in the indexed text) are also reported apart ("off sharing a name"): the
issue's "off-corpus questions that share names with the indexed articles".

Articles are split in two halves by a hash of their title. The model is fitted on the
`train` half; the threshold is chosen there as the highest that still answers
`--min-answered` of on-corpus questions; every figure printed for the `test` half comes
from articles neither saw. `--write` saves the model to bot/abstention_model.json.

Usage::

    python benchmarks/calibrate_abstention.py --limit 600 [--write] [--json]
    # keep the passages and ranked sentences: a change to the features re-fits in seconds
    python benchmarks/calibrate_abstention.py --limit 250 --cache /tmp/calibration.pickle
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from squad_data import DEFAULT_DATASET

from bot import abstention
from bot.extractive import ExtractiveAnswerer
from bot.followups import named_terms
from bot.settings import Settings
from index.embedder import load_embedder
from index.rebuild import rebuild
from index.search import Searcher
from index.store import open_current

KINDS = ("on", "off", "hard")


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    kind: str  # on | off | hard
    half: str  # train | test


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    scores = np.concatenate([positive, negative])
    ranks = scores.argsort().argsort().astype(np.float64) + 1
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inverse, ranks)
    ranks = (sums / counts)[inverse]
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def build_collection(dataset: Path, folder: Path) -> list[Case]:
    """Write the indexed half of SQuAD dev as articles; every usable question with its kind."""
    data = json.loads(dataset.read_text(encoding="utf-8"))["data"]
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    with (folder / "squad.jsonl").open("w", encoding="utf-8") as fh:
        for i, article in enumerate(data):
            title = article["title"].replace("_", " ")
            half = "train" if zlib.crc32(title.encode()) % 2 == 0 else "test"
            left_out = i % 3 == 2
            kept = [p["context"].strip() for j, p in enumerate(article["paragraphs"]) if j % 2 == 0]
            indexed_text = "\n\n".join(kept)
            if not left_out:
                fh.write(json.dumps({"id": f"squad-{i:02d}", "title": title, "text": indexed_text}))
                fh.write("\n")
            low = indexed_text.lower()
            for j, p in enumerate(article["paragraphs"]):
                for q in p["qas"]:
                    if q["is_impossible"]:
                        continue
                    answers = [a["text"].lower() for a in q.get("answers", []) if a["text"]]
                    if left_out:
                        kind = "off"
                    elif j % 2 == 0:
                        kind = "on"
                    elif any(a in low for a in answers):
                        continue
                    else:
                        kind = "hard"
                    cases.append(Case(q["question"], kind, half))
    return cases


def fit(x: np.ndarray, y: np.ndarray, names: list[str]) -> abstention.EvidenceModel:
    from sklearn.linear_model import LogisticRegression  # benchmark-only (sentence-transformers')

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    lr = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced")
    lr.fit((x - mean) / scale, y)
    return abstention.EvidenceModel(
        tuple(names),
        tuple(round(float(v), 6) for v in mean),
        tuple(round(float(v), 6) for v in scale),
        tuple(round(float(v), 6) for v in lr.coef_[0]),
        round(float(lr.intercept_[0]), 6),
    )


def rates(p: np.ndarray, kinds: np.ndarray, t: float) -> dict[str, float]:
    out = {"on_answered": float((p[kinds == "on"] >= t).mean())}
    off = np.isin(kinds, ["off", "off_named", "hard"])
    out["off_declined"] = float((p[np.isin(kinds, ["off", "off_named"])] < t).mean())
    out["off_named_declined"] = float((p[kinds == "off_named"] < t).mean())
    out["hard_declined"] = float((p[kinds == "hard"] < t).mean())
    out["all_off_declined"] = float((p[off] < t).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Fit and calibrate abstention on SQuAD 2.0")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-bench/calibration-v2"))
    parser.add_argument("--limit", type=int, default=600, help="questions per kind and half")
    parser.add_argument("--min-answered", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="save the fitted model")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--features", help="fit on these (comma-separated); default: all")
    parser.add_argument(
        "--cache", type=Path, help="keep each question's passages and ranked sentences here"
    )
    args = parser.parse_args()

    cases = build_collection(args.dataset, args.work / "articles")
    rng = random.Random(args.seed)
    sample: list[Case] = []
    for half in ("train", "test"):
        for kind in KINDS:
            group = [c for c in cases if c.kind == kind and c.half == half]
            sample += rng.sample(group, min(args.limit, len(group)))

    settings = Settings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={"articles_dir": args.work / "articles", "index_dir": args.work / "index"}
    )
    embedder = load_embedder(settings.embedding_model, settings.embedding_device)
    rebuild(settings, lambda: embedder)
    searcher = Searcher(open_current(settings.index_dir), embedder, settings.hybrid_dense_weight)
    answerer = ExtractiveAnswerer(settings.answer_max_sentences, settings.answer_max_words)

    names = args.features.split(",") if args.features else list(abstention.FEATURES)
    if unknown := set(names) - set(abstention.FEATURES):
        parser.error(f"unknown features: {', '.join(sorted(unknown))}")
    unseen = math.log(1 + (searcher.stored.size + 0.5) / 0.5)  # BM25 idf of an unseen word
    rows = []
    shares_name: list[bool] = []
    # what the features are computed from, kept so that a change to the features alone is
    # re-fitted in seconds (`--cache`), not after 40 minutes of search and ranking
    found: dict[str, Any] = {}
    if args.cache and args.cache.exists():
        with args.cache.open("rb") as fh:
            found = pickle.load(fh)
    for c in sample:
        if c.text not in found:
            found[c.text] = (
                (hits := searcher.search(c.text, settings.search_k)),
                answerer.rank_sentences(c.text, hits, embedder),
                searcher.term_weights(c.text),
            )
        hits, ranked, idf = found[c.text]
        f = abstention.features(c.text, hits, ranked, idf)
        rows.append([f[n] for n in names])
        # the "off-corpus questions that share names with the indexed articles"
        shares_name.append(any(idf.get(t, unseen) < unseen - 1e-9 for t in named_terms(c.text)))
    if args.cache:
        with args.cache.open("wb") as fh:
            pickle.dump(found, fh)
    x = np.array(rows)
    kinds = np.array(
        [c.kind + ("_named" if c.kind == "off" and named else "") for c, named in
         zip(sample, shares_name, strict=True)]
    )  # fmt: skip
    halves = np.array([c.half for c in sample])
    train, test = halves == "train", halves == "test"

    model = fit(x[train], kinds[train] == "on", names)
    p = np.array([model.probability(dict(zip(names, r, strict=True))) for r in x])
    on_train = np.sort(p[train & (kinds == "on")])
    chosen = float(np.floor(on_train[int((1 - args.min_answered) * len(on_train))] * 1000) / 1000)

    test_on, test_off = p[test & (kinds == "on")], p[test & (kinds != "on")]
    out = {
        "questions": {
            f"{h}_{k}": int(((halves == h) & (kinds == k)).sum())
            for h in ("train", "test")
            for k in (*KINDS, "off_named")
        },
        "auroc_test": {
            "model": auroc(test_on, test_off),
            "model_off": auroc(test_on, p[test & np.isin(kinds, ["off", "off_named"])]),
            "model_off_named": auroc(test_on, p[test & (kinds == "off_named")]),
            "model_hard": auroc(test_on, p[test & (kinds == "hard")]),
            **{
                n: auroc(x[test & (kinds == "on"), i], x[test & (kinds != "on"), i])
                for i, n in enumerate(names)
            },
        },
        "threshold": chosen,
        "train": rates(p[train], kinds[train], chosen),
        "test": rates(p[test], kinds[test], chosen),
        "tradeoff_test": [
            {"threshold": float(t), **rates(p[test], kinds[test], float(t))}
            for t in np.round(np.arange(0.05, 0.951, 0.05), 3)
        ],
        "model": model.to_json(),
    }
    if args.write:
        abstention.MODEL_PATH.write_text(json.dumps(model.to_json(), indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print("questions:", out["questions"])
    print("AUROC on the test half (on-corpus scored above off-corpus):")
    for name, value in out["auroc_test"].items():
        print(f"  {name:26} {value:.3f}")
    print()
    print("| threshold | on-corpus answered | off declined | off sharing a name declined | "
          "hard declined | all off declined |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for row in out["tradeoff_test"]:
        print(
            f"| {row['threshold']:.2f} | {row['on_answered']:.3f} | {row['off_declined']:.3f} | "
            f"{row['off_named_declined']:.3f} | {row['hard_declined']:.3f} | "
            f"{row['all_off_declined']:.3f} |"
        )
    print()
    for half in ("train", "test"):
        r = out[half]
        print(
            f"{half}: ABSTAIN_THRESHOLD={chosen:.3f} answers {r['on_answered']:.1%} on-corpus, "
            f"declines {r['off_declined']:.1%} off-topic, {r['hard_declined']:.1%} hard "
            f"off-corpus ({r['all_off_declined']:.1%} of all off-corpus)"
        )
    if args.write:
        print(f"model written to {abstention.MODEL_PATH}")


if __name__ == "__main__":
    main()
