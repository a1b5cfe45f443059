"""Answers on news-like text: does the answer quote the words a careful reader would?

Usage::

    python benchmarks/news_answers.py            # prints a Markdown table
    python benchmarks/news_answers.py --json --details

The articles in `benchmarks/data/news/articles/` are written for this benchmark in the style
of wire copy (invented people and places): attributions, direct and reported quotes,
second-hand accounts of what someone "told" someone else, and the site boilerplate of
scraped pages (newsletter and donation pitches, "Read more", cookie bars), once glued to
the first sentence. `questions.jsonl` holds questions of three kinds with their gold
answers:

* "say": what did X say / warn / promise; gold is a phrase of X's own words, where the
  article also holds someone else's account of X that shares more words with the question;
* "who": who said a quoted thing; gold is the speaker's name;
* "when": dates and figures (when, how much);
* "chitchat": greetings and thanks, which must get no quote and no citation.

An answer contains gold when the answer text (the quoted sentences) holds every phrase of
one of the gold alternatives (case and spacing ignored). The run goes through `QAService`,
the path every transport takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.service import QAService
from bot.settings import Settings
from index.embedder import load_embedder
from index.rebuild import rebuild

DATA = Path(__file__).resolve().parent / "data" / "news"
KINDS = ("say", "who", "when", "chitchat")


def normal(text: str) -> str:
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
    return " ".join(text.lower().split())


def contains_gold(text: str, gold: list[list[str]]) -> bool:
    t = normal(text)
    return any(all(normal(p) in t for p in alternative) for alternative in gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=None, help="index folder (default: temp)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--details", action="store_true", help="print every answer")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="news-answers-"))
    settings = Settings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={"articles_dir": args.data / "articles", "index_dir": work / "index"}
    )
    embedder = load_embedder(settings.embedding_model, settings.embedding_device)
    report = rebuild(settings, lambda: embedder)
    service = QAService(settings, embedder=embedder)
    questions = [
        json.loads(line)
        for line in (args.data / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]

    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = []
    for q in questions:
        answer = service.answer(q["question"])
        kind = q["kind"]
        t = totals[kind]
        t["n"] += 1
        numbers_per_article: dict[str, set[int]] = defaultdict(set)
        for c in answer.citations:
            numbers_per_article[c.article_id].add(c.n)
        one_number = all(len(ns) == 1 for ns in numbers_per_article.values())
        t["one_number_per_article"] += one_number
        if kind == "chitchat":
            ok = not answer.found and not answer.citations
        else:
            ok = answer.found and contains_gold(answer.text, q["gold"])
            t["found"] += answer.found
            cited = [c.article_id for c in answer.citations]
            t["right_article"] += bool(answer.found and cited and cited[0] == q["article"])
        t["ok"] += ok
        rows.append(
            {
                "question": q["question"],
                "kind": kind,
                "ok": ok,
                "found": answer.found,
                "answer": answer.text,
                "numbers": sorted({c.n for c in answer.citations}),
            }
        )

    graded = [k for k in KINDS if k != "chitchat" and k in totals]
    n_all = sum(totals[k]["n"] for k in graded)
    summary = {
        "articles": report.articles,
        "chunks": report.chunks,
        "questions": n_all,
        "answer_contains_gold": sum(totals[k]["ok"] for k in graded) / max(1, n_all),
        "by_kind": {
            k: {
                "n": totals[k]["n"],
                "answer_contains_gold": totals[k]["ok"] / totals[k]["n"],
                **(
                    {
                        "answered": totals[k]["found"] / totals[k]["n"],
                        "top_citation_right_article": totals[k]["right_article"] / totals[k]["n"],
                    }
                    if k != "chitchat"
                    else {}
                ),
            }
            for k in KINDS
            if k in totals
        },
        "chitchat_no_quote": (
            totals["chitchat"]["ok"] / totals["chitchat"]["n"] if "chitchat" in totals else None
        ),
        "one_number_per_article": sum(t["one_number_per_article"] for t in totals.values())
        / max(1, sum(t["n"] for t in totals.values())),
    }
    if args.json:
        out = {**summary, "answers": rows} if args.details else summary
        print(json.dumps(out, indent=2))
        return
    if args.details:
        for r in rows:
            mark = "ok " if r["ok"] else "MISS"
            print(f"{mark} [{r['kind']}] {r['question']}\n     {r['answer'][:300]}")
        print()
    print(
        f"News-like answers: {n_all} questions over {report.articles} articles "
        f"({report.chunks} chunks)"
    )
    print()
    print("| kind | questions | answer contains gold | answered | top citation right article |")
    print("|---|---|---|---|---|")
    for k in graded:
        b = summary["by_kind"][k]
        print(
            f"| {k} | {b['n']} | {b['answer_contains_gold']:.3f} | {b['answered']:.3f} "
            f"| {b['top_citation_right_article']:.3f} |"
        )
    print(f"| **all** | {n_all} | **{summary['answer_contains_gold']:.3f}** | | |")
    print()
    if summary["chitchat_no_quote"] is not None:
        print(f"small talk answered without a quote: {summary['chitchat_no_quote']:.3f}")
    print(f"answers citing each article under one number: {summary['one_number_per_article']:.3f}")


if __name__ == "__main__":
    main()
