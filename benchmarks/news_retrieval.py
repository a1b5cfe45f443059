"""Passage retrieval on news-like articles: is the evidence whole in the passages returned?

Usage::

    python benchmarks/news_retrieval.py            # prints a Markdown table
    python benchmarks/news_retrieval.py --json --details

The articles in `benchmarks/data/news_retrieval/articles/` are fictional wire copy written
for this benchmark: a few overlapping stories (a dock strike, a flood, a data breach, a
football club, an election, a central bank) in which the same people and places recur, so
that many passages share a question's names while only one holds its answer. Three are
syndicated copies of another article with a different headline, header and boilerplate
(`syndication.json`). `questions.jsonl` holds news-quiz questions, paraphrased rather than
copied from the text, each with its evidence: one sentence, or two consecutive ones.

Per question and system: evidence@k, a passage among the top k holds the whole evidence
(spacing ignored, so a paragraph break between the two sentences does not matter); article@5,
the question's article (or a syndicated copy of it) is among the top 5. Systems:

* `bm25-200w`: plain BM25 (bm25s, with the index's own tokenisation) over windows of
  200 words with a stride of 100, title prepended, overlapping windows of one article
  collapsed to the best, as a reference a search engine would start from;
* the index's own modes (`lexical`, `dense`, `hybrid`), once on bare chunks
  (`passages="chunks"`, what search returned before passages were shaped) and once with the
  default shaping (`passages="shaped"`).

Passage length matters to a fair reading (a longer passage holds more), so the mean words
per returned passage are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bm25s
import numpy as np

from index.articles import load_articles
from index.embedder import load_embedder
from index.lexical import document_terms, query_terms
from index.rebuild import rebuild
from index.search import MODES, PASSAGES, Searcher
from index.settings import IndexSettings
from index.store import open_current

DATA = Path(__file__).resolve().parent / "data" / "news_retrieval"
K = 5


@dataclass(frozen=True, slots=True)
class Passage:
    article_id: str
    text: str


def normal(text: str) -> str:
    return " ".join(text.split())


def holds(passage: str, evidence: list[str]) -> bool:
    return normal(" ".join(evidence)) in normal(passage)


class WindowBM25:
    """Plain BM25 over fixed word windows of every article."""

    def __init__(self, articles: list, words: int = 200, stride: int = 100) -> None:
        self.windows: list[tuple[str, int, int, str]] = []  # article id, start, end, text
        for a in articles:
            spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", a.text)]
            for i in range(0, max(len(spans) - words + stride, 1), stride):
                part = spans[i : i + words]
                if not part:
                    break
                s, e = part[0][0], part[-1][1]
                self.windows.append((a.id, s, e, a.text[s:e]))
        docs = [f"{a_title}\n{w[3]}" for w, a_title in self._titled(articles)]
        self.retriever = bm25s.BM25()
        self.retriever.index([document_terms(d) for d in docs], show_progress=False)
        self.vocab = self.retriever.vocab_dict

    def _titled(self, articles: list) -> list[tuple[tuple[str, int, int, str], str]]:
        titles = {a.id: a.title for a in articles}
        return [(w, titles[w[0]]) for w in self.windows]

    def search(self, query: str, k: int) -> list[Passage]:
        known = [t for t in query_terms(query) if t in self.vocab]
        if not known:
            return []
        scores = np.asarray(self.retriever.get_scores(known))
        out: list[Passage] = []
        taken: dict[str, list[tuple[int, int]]] = {}
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] <= 0:
                break
            aid, s, e, text = self.windows[int(i)]
            spans = taken.setdefault(aid, [])
            if any(s < te and ts < e for ts, te in spans):
                continue
            spans.append((s, e))
            out.append(Passage(aid, text))
            if len(out) == k:
                break
        return out


def score(
    questions: list[dict], results: list[list[Passage]], same: dict[str, set[str]]
) -> dict[str, float]:
    n = len(questions)
    ev1 = ev5 = art5 = 0
    words: list[int] = []
    for q, hits in zip(questions, results, strict=True):
        ok_articles = same[q["article"]]
        ev1 += bool(hits) and holds(hits[0].text, q["evidence"])
        ev5 += any(holds(h.text, q["evidence"]) for h in hits[:K])
        art5 += any(h.article_id in ok_articles for h in hits[:K])
        words.extend(len(h.text.split()) for h in hits[:K])
    return {
        "evidence@1": ev1 / n,
        "evidence@5": ev5 / n,
        "article@5": art5 / n,
        "words_per_passage": float(np.mean(words)) if words else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=None, help="index folder (default: temp)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--details", action="store_true", help="list the misses at 1")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="news-retrieval-"))
    settings = IndexSettings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={"articles_dir": args.data / "articles", "index_dir": work / "index"}
    )
    questions = [
        json.loads(line)
        for line in (args.data / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    copies: dict[str, str] = json.loads((args.data / "syndication.json").read_text())["copies"]
    same: dict[str, set[str]] = {}
    for q in questions:
        a = q["article"]
        same[a] = {a} | {c for c, orig in copies.items() if orig == a}

    embedder = load_embedder(settings.embedding_model, settings.embedding_device)
    report = rebuild(settings, lambda: embedder)
    stored = open_current(settings.index_dir)
    texts = [q["question"] for q in questions]

    table: dict[str, dict[str, float]] = {}
    misses: dict[str, list[str]] = {}
    articles = load_articles(settings.articles_dir).articles
    bm25 = WindowBM25(articles)
    runs: dict[str, list[list[Passage]]] = {"bm25-200w": [bm25.search(t, K) for t in texts]}
    for passages in PASSAGES:
        searcher = Searcher(stored, embedder, settings.hybrid_dense_weight, passages=passages)
        for mode in MODES:
            batches = searcher.search_batch(texts, K, mode)
            runs[f"{mode} ({passages})"] = [
                [Passage(h.article_id, h.text) for h in hits] for hits in batches
            ]
    for name, results in runs.items():
        table[name] = score(questions, results, same)
        misses[name] = [
            q["question"]
            for q, hits in zip(questions, results, strict=True)
            if not (hits and holds(hits[0].text, q["evidence"]))
        ]

    if args.json:
        out: dict = {"questions": len(questions), "chunks": report.chunks, "systems": table}
        if args.details:
            out["misses_at_1"] = misses
        print(json.dumps(out, indent=2))
        return
    print(
        f"News retrieval: {len(questions)} questions over {report.articles} articles "
        f"({report.chunks} chunks)"
    )
    print()
    print("| system | evidence@1 | evidence@5 | article@5 | words/passage |")
    print("|---|---|---|---|---|")
    for name, r in table.items():
        print(
            f"| {name} | {r['evidence@1']:.3f} | {r['evidence@5']:.3f} | {r['article@5']:.3f} "
            f"| {r['words_per_passage']:.0f} |"
        )
    if args.details:
        for name, qs in misses.items():
            print(f"\n{name}: {len(qs)} misses at 1")
            for q in qs:
                print(f"- {q}")


if __name__ == "__main__":
    main()
