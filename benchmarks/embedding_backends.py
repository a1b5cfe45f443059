"""Embedding backends side by side: indexing speed and what retrieval keeps or loses.

Usage::

    python benchmarks/embedding_backends.py                 # Markdown table
    python benchmarks/embedding_backends.py --paragraphs 600 --json

For each backend (`torch` fp32, `onnx` fp32, `onnx-int8` in the configuration for this CPU,
`openvino` fp32; see `index/embedder.py`) it prints:

* chunks/s: embedding SQuAD 2.0 dev paragraphs (title prepended, as the index embeds a chunk,
  ~150 words each, so close to a real chunk's 200 word pieces). The machine is shared and
  noisy, so the paragraphs are embedded in rounds, every backend once per round in a rotating
  order, and each backend's time is summed over the rounds: a burst of load from elsewhere
  then costs every backend alike. The load average is printed with the figures, and so is
  chunks per CPU-second of this process (all its threads), which load elsewhere disturbs
  less than the wall clock does;
* SQuAD hit@1 / hit@5: for answerable dev questions, the paragraph that holds the answer is
  the nearest (among the top five) by dense cosine over all paragraphs embedded;
* news hit@1 / hit@5: for `benchmarks/data/news_retrieval`, the chunks of the index's own
  chunker (same tokenizer for every backend), a chunk among the top k holds the whole
  evidence (one or two sentences);
* cosine: mean cosine of the backend's paragraph vectors to the torch fp32 ones.

The default backend is the fastest whose hit@1 and hit@5 stay within half a point of torch.
The dataset is read from ../shared/datasets and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.squad_data import DEFAULT_DATASET
from index.articles import load_articles
from index.chunking import ChunkerConfig, chunk_article, embedding_inputs
from index.embedder import BACKENDS, Embedder, cpu_quantization, document_input, load_embedder
from index.settings import DEFAULT_EMBEDDING_MODEL

NEWS = Path(__file__).resolve().parent / "data" / "news_retrieval"
MARGIN = 0.005  # half a point


def squad(path: Path, paragraphs: int, questions: int, seed: int) -> tuple[list[str], list]:
    """The first `paragraphs` paragraphs (title + text) and up to `questions` answerable
    questions about them, as (question, paragraph index) pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    texts: list[str] = []
    asked: list[tuple[str, int]] = []
    for article in data:
        title = article["title"].replace("_", " ")
        for p in article["paragraphs"]:
            if len(texts) == paragraphs:
                break
            idx = len(texts)
            texts.append(document_input(title, p["context"].strip()))
            asked.extend((q["question"], idx) for q in p["qas"] if not q["is_impossible"])
    random.Random(seed).shuffle(asked)
    return texts, asked[:questions]


def news(tokenizer_from: Embedder) -> tuple[list[str], list[str], list[dict]]:
    """Chunk texts as embedded, their plain texts, and the questions with their evidence."""
    articles = load_articles(NEWS / "articles").articles
    config = ChunkerConfig(200, 40, tokenizer_from.max_seq_length)
    inputs: list[str] = []
    plain: list[str] = []
    for article in articles:
        chunks = chunk_article(article, tokenizer_from.tokenizer, config)
        inputs.extend(embedding_inputs(article.title, chunks, tokenizer_from.tokenizer))
        plain.extend(c.text for c in chunks)
    questions = [
        json.loads(line)
        for line in (NEWS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return inputs, plain, questions


def normal(text: str) -> str:
    return " ".join(text.split())


def hits_at(ranked: np.ndarray, ok: list[set[int]]) -> tuple[float, float]:
    at1 = np.mean([r[0] in good for r, good in zip(ranked, ok, strict=True)])
    at5 = np.mean([bool(set(r[:5].tolist()) & good) for r, good in zip(ranked, ok, strict=True)])
    return float(at1), float(at5)


def top(queries: np.ndarray, docs: np.ndarray, k: int = 5) -> np.ndarray:
    scores = queries @ docs.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--paragraphs", type=int, default=1200)
    parser.add_argument("--questions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--cache", type=Path, default=None, help="ONNX cache (default: temp)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if backends[0] != "torch":
        backends = ["torch", *[b for b in backends if b != "torch"]]  # the reference
    cache = args.cache or Path(tempfile.mkdtemp(prefix="embedding-cache-"))
    load_before = os.getloadavg()

    models: dict[str, Embedder] = {}
    load_s: dict[str, float] = {}
    for b in backends:  # the first ONNX load also exports (and quantizes): timed apart
        started = time.perf_counter()
        models[b] = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", b, cache)
        load_s[b] = time.perf_counter() - started

    paragraphs, asked = squad(args.dataset, args.paragraphs, args.questions, seed=0)
    news_inputs, news_plain, news_questions = news(models["torch"])
    ok_news = [
        {i for i, text in enumerate(news_plain) if normal(" ".join(q["evidence"])) in normal(text)}
        for q in news_questions
    ]

    seconds = dict.fromkeys(backends, 0.0)
    cpu = dict.fromkeys(backends, 0.0)
    vectors: dict[str, list[np.ndarray]] = {b: [] for b in backends}
    bounds = np.linspace(0, len(paragraphs), args.rounds + 1).astype(int)
    for r in range(args.rounds):
        part = paragraphs[bounds[r] : bounds[r + 1]]
        order = backends[r % len(backends) :] + backends[: r % len(backends)]
        for b in order:
            started, cpu_started = time.perf_counter(), time.process_time()
            vectors[b].append(models[b].encode_documents(part, batch_size=args.batch_size))
            seconds[b] += time.perf_counter() - started
            cpu[b] += time.process_time() - cpu_started

    reference = np.concatenate(vectors["torch"])
    rows: dict[str, dict[str, float | str | None]] = {}
    for b in backends:
        docs = np.concatenate(vectors[b])
        q = models[b].encode_queries([a[0] for a in asked])
        s1, s5 = hits_at(top(q, docs), [{a[1]} for a in asked])
        nq = models[b].encode_queries([x["question"] for x in news_questions])
        nd = models[b].encode_documents(news_inputs, batch_size=args.batch_size)
        n1, n5 = hits_at(top(nq, nd), ok_news)
        rows[b] = {
            "quantization": getattr(models[b], "quantization", None),
            "chunks_per_s": len(paragraphs) / seconds[b],
            "speedup": seconds["torch"] / seconds[b],
            "chunks_per_cpu_s": len(paragraphs) / cpu[b],
            "cpu_speedup": cpu["torch"] / cpu[b],
            "squad_hit1": s1, "squad_hit5": s5, "news_hit1": n1, "news_hit5": n5,
            "cosine_to_fp32": float(np.mean(np.sum(docs * reference, axis=1))),
            "load_s": load_s[b],
        }  # fmt: skip
    ref = rows["torch"]
    within = [
        b for b in backends
        if all(float(rows[b][m]) >= float(ref[m]) - MARGIN  # type: ignore[arg-type]
               for m in ("squad_hit1", "squad_hit5", "news_hit1", "news_hit5"))
    ]  # fmt: skip
    best = max(within, key=lambda b: float(rows[b]["chunks_per_s"]))  # type: ignore[arg-type]
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, int8 preset "
        f"{cpu_quantization()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "paragraphs": len(paragraphs),
        "squad_questions": len(asked),
        "news_chunks": len(news_inputs),
        "news_questions": len(news_questions),
        "fastest_within_half_a_point": best,
    }
    if args.json:
        print(json.dumps({**meta, "backends": rows}, indent=2))
        return
    print(
        f"Embedding backends: {meta['paragraphs']} SQuAD 2.0 dev paragraphs "
        f"({meta['squad_questions']} questions), {meta['news_chunks']} news chunks "
        f"({meta['news_questions']} questions); {meta['machine']}; load average "
        f"{meta['load_average_before'][0]} before, {meta['load_average_after'][0]} after"
    )
    print()
    print(
        "| backend | chunks/s | vs torch | chunks/CPU-s | vs torch | SQuAD hit@1 | SQuAD hit@5 "
        "| news hit@1 | news hit@5 | cosine to fp32 | first load s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b, r in rows.items():
        label = f"{b} ({r['quantization']})" if r["quantization"] else b
        print(
            f"| {label} | {r['chunks_per_s']:.1f} | {r['speedup']:.2f}x "
            f"| {r['chunks_per_cpu_s']:.1f} | {r['cpu_speedup']:.2f}x | {r['squad_hit1']:.3f} "
            f"| {r['squad_hit5']:.3f} | {r['news_hit1']:.3f} | {r['news_hit5']:.3f} "
            f"| {r['cosine_to_fp32']:.4f} | {r['load_s']:.1f} |"
        )
    print()
    print(f"Fastest within half a point of torch fp32 on every hit@k: {best}")


if __name__ == "__main__":
    main()
