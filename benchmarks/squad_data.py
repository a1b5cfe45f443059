"""SQuAD 2.0 dev as a collection of articles, for the quality benchmark and calibration.

Each Wikipedia article becomes one document (title, then its paragraphs separated by blank
lines), written as JSONL into a work folder outside the repository: the dataset's text is
read from ../shared/datasets and never copied into the project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "squad-v2.0-dev.json"


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    article_id: str
    text: str
    answers: tuple[str, ...]
    impossible: bool


def load_squad(path: Path = DEFAULT_DATASET) -> tuple[list[dict[str, str]], list[Question]]:
    """Records `{id, title, text}` (one per article) and every question with its article."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    records: list[dict[str, str]] = []
    questions: list[Question] = []
    for i, article in enumerate(data):
        article_id = f"squad-{i:02d}"
        title = article["title"].replace("_", " ")
        text = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
        records.append({"id": article_id, "title": title, "text": text})
        for p in article["paragraphs"]:
            for q in p["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in q.get("answers", []) if a["text"]))
                questions.append(
                    Question(q["id"], article_id, q["question"], answers, bool(q["is_impossible"]))
                )
    return records, questions


def write_articles(records: list[dict[str, str]], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "squad.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return folder


def contains_answer(text: str, answers: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(a.lower() in low for a in answers)
