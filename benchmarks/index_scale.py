"""How the index scales: indexing throughput, search latency and ANN recall.

Not a test: it prints figures (minutes on a small CPU). Run it from the repository root::

    .venv/bin/python benchmarks/index_scale.py                  # 10k and 100k vectors
    .venv/bin/python benchmarks/index_scale.py --large          # and 1M (~2 GB, many minutes)
    .venv/bin/python benchmarks/index_scale.py --threads 1      # steadier on a busy machine
    .venv/bin/python benchmarks/index_scale.py --json > scale.json

What is real and what is synthesised:

1. Indexing throughput is real: the 35 SQuAD 2.0 dev articles (read from
   ../shared/datasets, written to a temporary folder, never into the repository) go through
   `index.rebuild.rebuild` with the packaged all-MiniLM-L6-v2. Chunking + embedding and
   writing are timed from its progress callbacks, chunking alone by re-chunking the articles.
2. The base vectors are real: every chunk of that rebuild plus `--base-sentences` SQuAD
   sentences, embedded by the model.
3. Larger collections are synthesised from the base: each extra vector is a random base
   vector plus isotropic gaussian noise (`--noise` per dimension), re-normalised, i.e. a
   near-paraphrase of a real passage. The printout gives their mean cosine to their source.
   Latency depends only on the count and dimension; recall depends on the distribution.
   At 1M each real vector has ~190 noisy copies, a crowd of near-ties that real text does
   not have, so recall there is pessimistic; "ties counted" recall forgives a returned
   result that scores as high as the exact k-th.
4. The queries are real: `--queries` SQuAD questions, embedded by the model one at a time.
   "with embedding" adds each query's own embedding time to its FAISS time.
5. HNSW and IVF are built with the project's defaults (`index.ann.AnnConfig`), then swept
   over efSearch / nprobe, which are search-time settings (HNSW_EF_SEARCH, IVF_NPROBE).
6. End-to-end `Searcher.search` runs over an index written by the real store
   (`VersionWriter`: SQLite metadata, vectors, FAISS, BM25) whose text is real SQuAD text,
   each real article repeated under new ids until the chunk count is reached, and whose
   vectors for the repeats are synthesised as in 3. A real rebuild of 10k chunks would embed
   for many minutes on a small CPU, and only the vectors differ. "search" times our code
   with the query vectors computed beforehand; "measured live" embeds each query too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.ann import AnnConfig, build_index
from index.articles import load_articles
from index.chunking import ChunkerConfig, chunk_article
from index.embedder import load_embedder
from index.models import Article, Chunk
from index.rebuild import rebuild
from index.search import Searcher
from index.settings import DEFAULT_EMBEDDING_MODEL, IndexSettings
from index.store import VersionWriter, open_current

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "squad-v2.0-dev.json"
K = 10
KINDS = ("flat", "hnsw", "ivf")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


# ---------------------------------------------------------------- data


def load_squad(path: Path) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """Articles `{id, title, text}`, all paragraph sentences, and all questions."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    articles, sentences, questions = [], [], []
    for i, article in enumerate(data):
        paragraphs = [p["context"].strip() for p in article["paragraphs"]]
        articles.append(
            {
                "id": f"squad-{i:02d}",
                "title": article["title"].replace("_", " "),
                "text": "\n\n".join(paragraphs),
            }
        )
        for p in paragraphs:
            sentences.extend(s for s in _SENTENCE_END.split(p) if len(s) > 20)
        questions.extend(q["question"] for p in article["paragraphs"] for q in p["qas"])
    return articles, sentences, questions


def synthesise(base: np.ndarray, n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """`n` unit vectors: the base first, then noisy re-normalised copies of random base rows.

    Returns the vectors and the mean cosine of the synthesised rows to their source.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    real = min(n, len(base))
    out[:real] = base[:real]
    cosines = []
    for start in range(real, n, 65_536):
        stop = min(n, start + 65_536)
        src = base[rng.integers(0, len(base), stop - start)]
        block = src + rng.normal(0.0, noise, src.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        cosines.append(np.einsum("ij,ij->i", block, src))
        out[start:stop] = block
    mean_cos = float(np.concatenate(cosines).mean()) if cosines else 1.0
    return out, mean_cos


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


# ---------------------------------------------------------------- stages


def measure_indexing(embedder, articles: list[dict[str, str]], work: Path) -> dict[str, Any]:
    """A real rebuild of the SQuAD articles, plus chunking alone timed on the same articles."""
    folder = work / "squad-articles"
    folder.mkdir()
    with (folder / "squad.jsonl").open("w", encoding="utf-8") as fh:
        for a in articles:
            fh.write(json.dumps(a) + "\n")
    marks: dict[str, float] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        marks.setdefault(stage, time.perf_counter())

    settings = IndexSettings(articles_dir=folder, index_dir=work / "squad-index")
    started = time.perf_counter()
    report = rebuild(settings, lambda: embedder, on_progress=on_progress)
    total = time.perf_counter() - started
    chunk_and_embed = marks["write"] - marks["chunk"]
    write = marks["done"] - marks["write"]

    loaded = load_articles(folder).articles
    config = ChunkerConfig(
        settings.chunk_tokens, settings.chunk_overlap_tokens, embedder.max_seq_length
    )
    t0 = time.perf_counter()
    n_chunks = sum(len(chunk_article(a, embedder.tokenizer, config)) for a in loaded)
    chunking = time.perf_counter() - t0
    embedding = max(chunk_and_embed - chunking, 1e-9)

    stored = open_current(settings.index_dir)
    try:
        vectors = np.array(stored.vectors)
        tokens = stored.db.execute("SELECT AVG(tokens), MAX(tokens) FROM chunks").fetchone()
    finally:
        stored.close()
    assert n_chunks == report.chunks
    return {
        "articles": report.articles,
        "chunks": report.chunks,
        "mean_tokens_per_chunk": round(float(tokens[0]), 1),
        "max_tokens_per_chunk": int(tokens[1]),
        "rebuild_s": round(total, 2),
        "chunking_s": round(chunking, 2),
        "embedding_s": round(embedding, 2),
        "writing_s": round(write, 2),
        "rebuild_chunks_per_s": round(report.chunks / total, 1),
        "chunking_chunks_per_s": round(report.chunks / chunking, 1),
        "embedding_chunks_per_s": round(report.chunks / embedding, 1),
        "chunk_plus_embed_chunks_per_s": round(report.chunks / chunk_and_embed, 1),
        "_vectors": vectors,
        "_settings": settings,
    }


def embed_sentences(embedder, sentences: list[str], limit: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(1)
    picked = [sentences[i] for i in rng.permutation(len(sentences))[:limit]]
    started = time.perf_counter()
    vectors = embedder.encode_documents(picked, batch_size=64)
    return vectors, time.perf_counter() - started


def embed_one_by_one(embedder, questions: list[str]) -> tuple[np.ndarray, list[float]]:
    """Each question embedded alone, as a live search does; vectors and seconds per query."""
    vectors, seconds = [], []
    for q in questions:
        t0 = time.perf_counter()
        vectors.append(embedder.encode_queries([q])[0])
        seconds.append(time.perf_counter() - t0)
    return np.stack(vectors), seconds


def time_queries(index: faiss.Index, qvecs: np.ndarray, embed_s: list[float]) -> dict[str, Any]:
    """Single-query FAISS latency; "with embedding" adds each query's own embedding time."""
    faiss_s = []
    ids = np.empty((len(qvecs), K), dtype=np.int64)
    scores = np.empty((len(qvecs), K), dtype=np.float32)
    for i in range(len(qvecs)):
        t0 = time.perf_counter()
        found_scores, found = index.search(qvecs[i : i + 1], K)
        faiss_s.append(time.perf_counter() - t0)
        ids[i], scores[i] = found[0], found_scores[0]
    return {
        "faiss_only": percentiles(faiss_s),
        "with_query_embedding": percentiles([a + b for a, b in zip(faiss_s, embed_s, strict=True)]),
        "_ids": ids,
        "_scores": scores,
    }


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = [len(set(a[a >= 0]) & set(e[e >= 0])) / K for a, e in zip(approx, exact, strict=True)]
    return round(float(np.mean(hits)), 4)


def tie_recall_at_k(approx_scores: np.ndarray, exact_scores: np.ndarray) -> float:
    """Share of returned results scoring at least the exact k-th (within float error).

    Near-duplicates make ties at the k-th place common; this counts a tied stand-in as found,
    which plain id recall does not. FAISS returns exact inner products for HNSW and IVF-Flat.
    """
    kth = exact_scores[:, -1:] - 1e-5
    return round(float(np.mean(approx_scores >= kth)), 4)


def measure_ann(
    pool: np.ndarray,
    sizes: list[int],
    qvecs: np.ndarray,
    embed_s: list[float],
    kinds: list[str],
    ef_construction: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    # the project's defaults: HNSW M=32, efConstruction=80, efSearch=128; IVF nprobe=32
    config = AnnConfig(hnsw_ef_construction=ef_construction)
    rows = []
    for size in sizes:
        vectors = pool[:size]
        exact_ids = exact_scores = np.empty(0)
        for kind in kinds:
            t0 = time.perf_counter()
            index, resolved = build_index(vectors, dataclasses.replace(config, index_type=kind))
            build_s = time.perf_counter() - t0
            timing = time_queries(index, qvecs, embed_s)
            row: dict[str, Any] = {
                "size": size,
                "index": resolved,
                "build_s": round(build_s, 2),
                "faiss_only": timing["faiss_only"],
                "with_query_embedding": timing["with_query_embedding"],
            }
            if kind == "flat":
                exact_ids, exact_scores = timing["_ids"], timing["_scores"]
                row["recall_at_10"] = row["tie_recall_at_10"] = 1.0
            else:
                row["recall_at_10"] = recall_at_k(timing["_ids"], exact_ids)
                row["tie_recall_at_10"] = tie_recall_at_k(timing["_scores"], exact_scores)
            if kind == "hnsw":
                row["ef_construction"] = ef_construction
            if kind == "ivf":
                row["nlist"] = int(index.nlist)
                row["nprobe"] = int(index.nprobe)
            rows.append(row)
            log(
                f"  {size:>9,} {resolved:5} build {build_s:7.2f}s  "
                f"faiss p50 {row['faiss_only']['p50_ms']:7.3f} ms p95 "
                f"{row['faiss_only']['p95_ms']:7.3f} ms | with embedding p50 "
                f"{row['with_query_embedding']['p50_ms']:6.1f} ms p95 "
                f"{row['with_query_embedding']['p95_ms']:6.1f} ms | recall@10 "
                f"{row['recall_at_10']:.4f} (ties counted {row['tie_recall_at_10']:.4f})"
            )
            sweep = SWEEPS.get(kind)
            if sweep is not None:
                row["sweep"] = _sweep(index, kind, sweep, qvecs, exact_ids, exact_scores, log)
            del index
    return rows


SWEEPS = {"hnsw": (64, 128, 256, 512), "ivf": (8, 32, 128)}  # efSearch, nprobe


def _sweep(
    index: faiss.Index,
    kind: str,
    values: tuple[int, ...],
    qvecs: np.ndarray,
    exact_ids: np.ndarray,
    exact_scores: np.ndarray,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Recall and latency as the search-time knob (efSearch or nprobe) varies."""
    name = "efSearch" if kind == "hnsw" else "nprobe"
    out = []
    for value in values:
        if kind == "hnsw":
            index.hnsw.efSearch = value
        else:
            index.nprobe = min(value, index.nlist)
        timing = time_queries(index, qvecs, [0.0] * len(qvecs))
        entry = {
            name: value,
            **timing["faiss_only"],
            "recall_at_10": recall_at_k(timing["_ids"], exact_ids),
            "tie_recall_at_10": tie_recall_at_k(timing["_scores"], exact_scores),
        }
        out.append(entry)
        log(
            f"            {name} {value:>4}: faiss p50 {entry['p50_ms']:7.3f} ms p95 "
            f"{entry['p95_ms']:7.3f} ms | recall@10 {entry['recall_at_10']:.4f} (ties counted "
            f"{entry['tie_recall_at_10']:.4f})"
        )
    return out


def measure_end_to_end(
    embedder,
    squad_index: Path,
    target: int,
    noise: float,
    questions: list[str],
    qvecs: np.ndarray,
    embed_s: list[float],
    work: Path,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """`Searcher.search` over a `target`-chunk index written by the real store."""
    source = open_current(squad_index)
    try:
        stored_articles = source.articles()
        texts = {a.id: source.article_text(a.id) for a in stored_articles}
        chunks = {a.id: source.stored_chunks(a) for a in stored_articles}
        base = np.array(source.vectors)
    finally:
        source.close()
    rng = np.random.default_rng(2)
    rows = []
    for kind in ("flat", "hnsw"):
        root = work / f"e2e-{target}-{kind}"
        writer = VersionWriter(root, embedder.dimension)
        copy = 0
        while writer.chunk_count < target:
            for a in stored_articles:
                if writer.chunk_count >= target:
                    break
                own = base[a.first_chunk : a.first_chunk + a.n_chunks]
                if copy:
                    own = own + rng.normal(0.0, noise, own.shape).astype(np.float32)
                    own /= np.linalg.norm(own, axis=1, keepdims=True)
                aid = f"{a.id}~{copy}"
                article = Article(aid, a.title, texts[a.id], a.source, a.path)
                moved = [
                    Chunk(aid, c.ordinal, c.start, c.end, c.text, c.tokens) for c in chunks[a.id]
                ]
                writer.add(article, a.hash, moved, own)
            copy += 1
        t0 = time.perf_counter()
        manifest = writer.publish(
            {"model": embedder.name, "chunker": {}},
            AnnConfig(index_type=kind),
            embedder.max_seq_length,
        )
        publish_s = time.perf_counter() - t0
        stored = open_current(root)
        cached = Searcher(stored, CachedQueries(embedder, questions, qvecs))
        cached.search(questions[0], k=5)  # load FAISS and BM25 outside the timing
        for mode in ("hybrid", "dense", "lexical"):
            samples = []
            for q in questions:
                t0 = time.perf_counter()
                cached.search(q, k=5, mode=mode)
                samples.append(time.perf_counter() - t0)
            plus = (
                samples
                if mode == "lexical"
                else [a + b for a, b in zip(samples, embed_s, strict=True)]
            )
            row: dict[str, Any] = {
                "size": manifest.chunks,
                "index": kind,
                "mode": mode,
                "publish_s": round(publish_s, 2),
                "search_only": percentiles(samples),
                "with_query_embedding": percentiles(plus),
            }
            line = (
                f"  {manifest.chunks:>9,} {kind:5} {mode:8} search p50 "
                f"{row['search_only']['p50_ms']:7.2f} ms p95 {row['search_only']['p95_ms']:7.2f}"
                f" ms | with embedding p50 {row['with_query_embedding']['p50_ms']:6.1f} ms p95 "
                f"{row['with_query_embedding']['p95_ms']:6.1f} ms"
            )
            if mode == "hybrid":
                live = Searcher(stored, embedder)
                measured = []
                for q in questions:
                    t0 = time.perf_counter()
                    live.search(q, k=5, mode=mode)
                    measured.append(time.perf_counter() - t0)
                row["measured_with_embedding"] = percentiles(measured)
                line += (
                    f" | measured live p50 {row['measured_with_embedding']['p50_ms']:6.1f} ms p95"
                    f" {row['measured_with_embedding']['p95_ms']:6.1f} ms"
                )
            rows.append(row)
            log(line)
        log(f"  ({kind} version written by VersionWriter.publish in {publish_s:.1f}s)")
        stored.close()
    return rows


class CachedQueries:
    """The real embedder's query vectors, computed beforehand: times our search code alone."""

    def __init__(self, embedder, questions: list[str], vectors: np.ndarray) -> None:
        self.name = embedder.name
        self.dimension = embedder.dimension
        self.max_seq_length = embedder.max_seq_length
        self.tokenizer = embedder.tokenizer
        self._vectors = dict(zip(questions, vectors, strict=True))

    def encode_documents(self, texts, *, batch_size: int = 64, progress: bool = False):
        raise NotImplementedError

    def encode_queries(self, texts) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="vector counts, comma-separated")
    parser.add_argument("--large", action="store_true", help="also 1,000,000 vectors")
    parser.add_argument("--queries", type=int, default=200, help="SQuAD questions timed")
    parser.add_argument("--base-sentences", type=int, default=4000)
    parser.add_argument("--noise", type=float, default=0.025, help="per-dimension sigma")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="index types (flat is always measured)"
    )
    parser.add_argument(
        "--hnsw-ef-construction",
        type=int,
        default=AnnConfig().hnsw_ef_construction,
        help="HNSW build effort (HNSW_EF_CONSTRUCTION)",
    )
    parser.add_argument("--e2e-sizes", default="10000", help="chunks for Searcher.search")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch and FAISS threads (0: library defaults); 1 is faster on a busy machine",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (the log goes to stderr)"
    )
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.large and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    e2e_sizes = [int(s) for s in args.e2e_sizes.split(",") if s]
    kinds = ["flat", *(k for k in args.kinds.split(",") if k in KINDS and k != "flat")]

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    results: dict[str, Any] = {
        "machine": {
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "faiss": faiss.__version__,
            "faiss_threads": faiss.omp_get_max_threads(),
        },
        "model": DEFAULT_EMBEDDING_MODEL,
    }
    articles, sentences, questions = load_squad(args.dataset)
    rng = np.random.default_rng(3)
    picked = [questions[i] for i in rng.permutation(len(questions))[: args.queries]]

    t0 = time.perf_counter()
    embedder = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu")
    import torch

    results["machine"]["torch_threads"] = torch.get_num_threads()
    log(f"model loaded in {time.perf_counter() - t0:.1f}s; {results['machine']}")

    with tempfile.TemporaryDirectory(prefix="index-scale-") as tmp:
        work = Path(tmp)
        log("\n== indexing throughput (real: SQuAD dev, 35 articles, through rebuild()) ==")
        indexing = measure_indexing(embedder, articles, work)
        chunk_vectors = indexing.pop("_vectors")
        settings = indexing.pop("_settings")
        log(
            f"  {indexing['articles']} articles -> {indexing['chunks']} chunks (mean "
            f"{indexing['mean_tokens_per_chunk']} word pieces, max "
            f"{indexing['max_tokens_per_chunk']}); rebuild {indexing['rebuild_s']}s = "
            f"{indexing['rebuild_chunks_per_s']} chunks/s overall"
        )
        log(
            f"  chunking {indexing['chunking_s']}s ({indexing['chunking_chunks_per_s']} "
            f"chunks/s), embedding {indexing['embedding_s']}s "
            f"({indexing['embedding_chunks_per_s']} chunks/s), chunking + embedding "
            f"{indexing['chunk_plus_embed_chunks_per_s']} chunks/s, writing "
            f"{indexing['writing_s']}s"
        )
        sent_vectors, sent_s = embed_sentences(embedder, sentences, args.base_sentences)
        indexing["sentences_embedded"] = len(sent_vectors)
        indexing["sentences_per_s"] = round(len(sent_vectors) / sent_s, 1)
        log(
            f"  {len(sent_vectors)} SQuAD sentences embedded at "
            f"{indexing['sentences_per_s']} sentences/s (short inputs)"
        )
        results["indexing"] = indexing

        base = np.concatenate([chunk_vectors, sent_vectors]).astype(np.float32)
        pool, mean_cos = synthesise(base, max(sizes), args.noise)
        results["vectors"] = {
            "real": len(base),
            "real_chunks": len(chunk_vectors),
            "real_sentences": len(sent_vectors),
            "synthesised": max(0, max(sizes) - len(base)),
            "noise_sigma": args.noise,
            "mean_cosine_synthetic_to_source": round(mean_cos, 4),
        }
        log(
            f"\n== vectors: {len(base):,} real ({len(chunk_vectors)} chunks + "
            f"{len(sent_vectors)} sentences); the rest up to {max(sizes):,} synthesised "
            f"(gaussian sigma {args.noise}/dim, mean cosine to source {mean_cos:.3f}) =="
        )
        qvecs, embed_s = embed_one_by_one(embedder, picked)
        results["query_embedding"] = percentiles(embed_s)
        log(
            f"  {len(picked)} real SQuAD questions as queries; embedding one query: "
            f"p50 {results['query_embedding']['p50_ms']} ms, "
            f"p95 {results['query_embedding']['p95_ms']} ms"
        )

        log(
            f"\n== FAISS search, k={K}, single queries, project defaults; 'with embedding' "
            "adds each query's own embedding time =="
        )
        results["ann"] = measure_ann(
            pool, sizes, qvecs, embed_s, kinds, args.hnsw_ef_construction, log
        )
        del pool

        results["end_to_end"] = []
        for target in e2e_sizes:
            log(
                f"\n== Searcher.search, k=5, over {target:,} chunks written by the real store "
                f"(real SQuAD text, repeats' vectors synthesised) =="
            )
            results["end_to_end"] += measure_end_to_end(
                embedder, settings.index_dir, target, args.noise, picked, qvecs, embed_s, work, log
            )
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    log(f"\nload average (1, 5, 15 min) at end: {results['machine']['load_average_at_end']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
