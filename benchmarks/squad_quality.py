"""Answer-quality benchmark on SQuAD 2.0 dev: retrieval hit@k, answer rate, abstention, latency.

Usage::

    python benchmarks/squad_quality.py                 # all 5,928 answerable questions
    python benchmarks/squad_quality.py --limit 1000    # a fixed random sample, faster
    python benchmarks/squad_quality.py --json

Each of the 35 articles is indexed as one document (title, then paragraphs). A retrieval hit
at k: one of the top k passages belongs to the question's article and contains a gold
answer. An answer counts when the default answer's quoted text contains a gold answer.
Prints a Markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from squad_data import DEFAULT_DATASET, contains_answer, load_squad, write_articles

from bot.extractive import ExtractiveAnswerer
from bot.settings import Settings
from index.embedder import load_embedder
from index.rebuild import rebuild
from index.search import MODES, Searcher
from index.store import open_current


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-bench/squad"))
    parser.add_argument("--limit", type=int, default=0, help="sample this many questions")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cold-sample", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    records, questions = load_squad(args.dataset)
    articles = write_articles(records, args.work / "articles")
    settings = settings.model_copy(
        update={"articles_dir": articles, "index_dir": args.work / "index"}
    )
    embedder = load_embedder(settings.embedding_model, settings.embedding_device)
    report = rebuild(settings, lambda: embedder)
    searcher = Searcher(open_current(settings.index_dir), embedder, settings.hybrid_dense_weight)

    answerable = [q for q in questions if not q.impossible]
    impossible = [q for q in questions if q.impossible]
    rng = random.Random(args.seed)
    if args.limit:
        answerable = rng.sample(answerable, min(args.limit, len(answerable)))
        impossible = rng.sample(impossible, min(args.limit, len(impossible)))

    results: dict[str, dict[str, float]] = {}
    texts = [q.text for q in answerable]
    hybrid_hits = None
    for mode in MODES:
        started = time.perf_counter()
        batches = searcher.search_batch(texts, 5, mode)
        elapsed = time.perf_counter() - started
        hit_at = {1: 0, 3: 0, 5: 0}
        for q, hits in zip(answerable, batches, strict=True):
            for k in hit_at:
                if any(
                    h.article_id.rpartition("#")[2] == q.article_id  # ids are "<file>#<id>"
                    and contains_answer(h.text, q.answers)
                    for h in hits[:k]
                ):
                    hit_at[k] += 1
        n = len(answerable)
        results[mode] = {f"hit@{k}": v / n for k, v in hit_at.items()}
        results[mode]["ms_per_query"] = 1000 * elapsed / n
        if mode == "hybrid":
            hybrid_hits = batches

    answerer = ExtractiveAnswerer(
        settings.answer_max_sentences, settings.answer_max_words, settings.abstain_threshold
    )
    correct = found = 0
    latencies: list[float] = []
    assert hybrid_hits is not None
    for q in answerable:
        started = time.perf_counter()
        hits = searcher.search(q.text, settings.search_k)
        ans = answerer.answer(q.text, hits, embedder, searcher.term_weights(q.text))
        latencies.append(time.perf_counter() - started)
        quoted = " ".join(c.quote for c in ans.citations)
        if ans.found:
            found += 1
            if contains_answer(quoted, q.answers):
                correct += 1
    abstained_impossible = sum(
        not answerer.answer(
            q.text,
            searcher.search(q.text, settings.search_k),
            embedder,
            searcher.term_weights(q.text),
        ).found
        for q in impossible
    )
    # Cold latency: no sentence-embedding cache, as for questions about passages nobody
    # asked about before (the figure above profits from SQuAD's ~5 questions a paragraph).
    cold_answerer = ExtractiveAnswerer(
        settings.answer_max_sentences,
        settings.answer_max_words,
        settings.abstain_threshold,
        cache_size=0,
    )
    cold: list[float] = []
    for q in answerable[: args.cold_sample]:
        started = time.perf_counter()
        hits = searcher.search(q.text, settings.search_k)
        cold_answerer.answer(q.text, hits, embedder, searcher.term_weights(q.text))
        cold.append(time.perf_counter() - started)
    n = len(answerable)
    summary = {
        "questions_answerable": n,
        "questions_unanswerable": len(impossible),
        "index": {"articles": report.articles, "chunks": report.chunks},
        "retrieval": results,
        "answer_contains_gold": correct / n,
        "answered_share": found / n,
        "abstained_on_unanswerable": abstained_impossible / max(1, len(impossible)),
        "ask_latency_ms": {
            "p50": 1000 * percentile(latencies, 50),
            "p95": 1000 * percentile(latencies, 95),
            "mean": 1000 * statistics.fmean(latencies),
        },
        "ask_latency_cold_ms": {
            "p50": 1000 * percentile(cold, 50),
            "p95": 1000 * percentile(cold, 95),
            "n": len(cold),
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"SQuAD 2.0 dev: {n} answerable questions, {report.chunks} chunks of 35 articles")
    print()
    print("| mode | hit@1 | hit@3 | hit@5 | ms/query (batched) |")
    print("|---|---|---|---|---|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['hit@1']:.3f} | {r['hit@3']:.3f} | {r['hit@5']:.3f} "
            f"| {r['ms_per_query']:.1f} |"
        )
    print()
    print(f"default answer contains a gold answer: {summary['answer_contains_gold']:.3f}")
    print(f"answered (not abstained), answerable: {summary['answered_share']:.3f}")
    print(
        "abstained on SQuAD 2.0 unanswerable (same articles): "
        f"{summary['abstained_on_unanswerable']:.3f}"
    )
    lat = summary["ask_latency_ms"]
    print(f"ask latency (search + answer): p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
    cold_lat = summary["ask_latency_cold_ms"]
    print(
        f"ask latency, no sentence cache ({cold_lat['n']} questions): "
        f"p50 {cold_lat['p50']:.0f} ms, p95 {cold_lat['p95']:.0f} ms"
    )


if __name__ == "__main__":
    main()
