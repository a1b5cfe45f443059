"""FAISS vs Milvus Lite on SQuAD 2.0 dev: retrieval hit@1/hit@5 and search latency side by side.

Usage::

    python benchmarks/milvus_parity.py                # a fixed sample of 1,000 questions
    python benchmarks/milvus_parity.py --limit 0      # all 5,928 answerable questions
    python benchmarks/milvus_parity.py --json

The 35 articles are indexed once into each store with `python -m index rebuild`'s code
(`VECTOR_STORE=faiss`, then `milvus` into a Milvus Lite file); chunks are embedded once and
shared, so both stores hold the very same vectors. A hit at k is what
`benchmarks/squad_quality.py` counts: one of the top k passages belongs to the question's
article and contains a gold answer. Query vectors are computed up front, so the latency is
the store's search plus passage shaping (one query at a time, as the bot asks), not the model.
Prints a Markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from squad_data import DEFAULT_DATASET, contains_answer, load_squad, write_articles

from index.cli import open_searcher
from index.embedder import Embedder, load_embedder
from index.rebuild import rebuild
from index.search import MODES, Searcher
from index.settings import IndexSettings


class CachedEmbedder:
    """The model, remembering every text it embedded: the second store reuses the vectors."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self._docs: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        for name in ("name", "dimension", "max_seq_length", "tokenizer", "backend"):
            setattr(self, name, getattr(inner, name, None))
        self.quantization = getattr(inner, "quantization", None)

    def encode_documents(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._docs))
        if missing:
            vectors = self._inner.encode_documents(missing, **kwargs)
            self._docs.update(zip(missing, vectors, strict=True))
        return np.stack([self._docs[t] for t in texts]).astype(np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._queries))
        if missing:
            self._queries.update(zip(missing, self._inner.encode_queries(missing), strict=True))
        return np.stack([self._queries[t] for t in texts]).astype(np.float32)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(searcher: Searcher, questions: list, mode: str) -> dict[str, float]:
    hits1 = hits5 = 0
    latencies: list[float] = []
    for q in questions:
        started = time.perf_counter()
        hits = searcher.search(q.text, 5, mode)  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - started)
        good = [
            h.article_id.rpartition("#")[2] == q.article_id and contains_answer(h.text, q.answers)
            for h in hits
        ]
        hits1 += any(good[:1])
        hits5 += any(good[:5])
    n = len(questions)
    return {
        "hit@1": hits1 / n,
        "hit@5": hits5 / n,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-bench/milvus"))
    parser.add_argument("--limit", type=int, default=1000, help="questions sampled; 0: all")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    records, questions = load_squad(args.dataset)
    articles = write_articles(records, args.work / "articles")
    base = IndexSettings(  # type: ignore[call-arg]
        _env_file=None, articles_dir=articles, index_dir=args.work / "index"
    )
    milvus = base.model_copy(
        update={"vector_store": "milvus", "milvus_uri": str(args.work / "milvus.db")}
    )
    embedder = CachedEmbedder(load_embedder(base.embedding_model, base.embedding_device))
    builds: dict[str, float] = {}
    for name, settings in (("faiss", base), ("milvus", milvus)):
        started = time.perf_counter()
        report = rebuild(settings, lambda: embedder)  # type: ignore[arg-type, return-value]
        builds[name] = time.perf_counter() - started
    chunks = report.chunks

    answerable = [q for q in questions if not q.impossible]
    if args.limit:
        answerable = random.Random(args.seed).sample(answerable, min(args.limit, len(answerable)))
    embedder.encode_queries([q.text for q in answerable])  # the model is not what is timed

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, settings in (("faiss", base), ("milvus", milvus)):
        searcher = open_searcher(settings, embedder)  # type: ignore[arg-type]
        searcher.search(answerable[0].text, 5)  # warm up (Milvus loads its collections)
        results[name] = {mode: measure(searcher, answerable, mode) for mode in MODES}

    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).date().isoformat(),
        "questions": len(answerable),
        "chunks": chunks,
        "build_seconds": builds,
        "results": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"SQuAD 2.0 dev: {len(answerable)} answerable questions, {chunks} chunks of 35 "
        f"articles; {summary['machine']}, {summary['date']}"
    )
    print()
    print("| mode | store | hit@1 | hit@5 | search p50 ms | search p95 ms |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        for name in ("faiss", "milvus"):
            r = results[name][mode]
            print(
                f"| {mode} | {name} | {r['hit@1']:.3f} | {r['hit@5']:.3f} | "
                f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} |"
            )
    for mode in MODES:
        f, m = results["faiss"][mode], results["milvus"][mode]
        print(
            f"\n{mode}: milvus - faiss = {100 * (m['hit@1'] - f['hit@1']):+.1f} points hit@1, "
            f"{100 * (m['hit@5'] - f['hit@5']):+.1f} points hit@5",
            end="",
        )
    print()
    print(
        f"\nbuild (chunks embedded once, shared): faiss {builds['faiss']:.0f} s, "
        f"milvus lite {builds['milvus']:.0f} s"
    )


if __name__ == "__main__":
    main()
