"""Follow-up questions on QuAC: does a conversation find the passage a follow-up is about?

Usage::

    python benchmarks/quac_conversations.py --limit 100     # a quick look
    python benchmarks/quac_conversations.py                 # all 500 dialogs, Markdown table
    python benchmarks/quac_conversations.py --json --set prior=0.2 --set turns=1

`../shared/datasets/quac-dev-first3-half.json` holds 500 QuAC dev dialogs (Choi et al.,
2018), each a Wikipedia section and the first three questions a person asked about it.
Every section is indexed as one article (no title: the dataset has none, so the title is
made from the text's start, as for any untitled article); the index is built once and
cached in the temp folder. Each dialog is then asked three ways, with the answering service
and its default settings:

* `alone`: each question on its own, as the bot answered before conversations;
* `naive`: the dialog's earlier questions prepended to the question (a baseline);
* `conversation`: the questions as one conversation (`QAService.answer(q, conversation=)`),
  each turn seeing the earlier turns and the answers the bot gave.

Figures, for the answerable questions 2 and 3 (the follow-ups) and for the first
questions: hit@1 and hit@5, the dialog's own section is the first / among the first five
passages the answer was chosen from; gold, the answer holds one of the annotators' spans
(case and spacing ignored); answered, the share not abstained. For the unanswerable
follow-ups: abstained, the share that got "the articles don't say".

With `LLM_BASE_URL` and `LLM_MODEL` set (read like the bot's own settings), every run
answers through that model, and the conversation run has it rewrite each follow-up to
stand alone before the search (`bot/condense.py`; `LLM_CONDENSE=false` measures the LLM
without the rewrite). The header names the model, and its answers are cached apart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.followups import FollowupWeights
from bot.models import Answer
from bot.service import QAService
from bot.settings import Settings
from index.embedder import load_embedder
from index.rebuild import rebuild
from index.sentences import answer_spans
from index.settings import DEFAULT_EMBEDDING_MODEL
from index.store import current_version_name

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "quac-dev-first3-half.json"
RUNS = ("alone", "naive", "conversation")
K = 5


@dataclass(frozen=True, slots=True)
class Dialog:
    id: str
    questions: tuple[str, ...]
    answers: tuple[tuple[str, ...], ...]
    unanswerable: tuple[bool, ...]


@dataclass(slots=True)
class Tally:
    n: int = 0
    hit1: int = 0
    hit5: int = 0
    gold: int = 0
    answered: int = 0
    unanswerable: int = 0
    abstained: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def add(self, answer: Answer, article: str, dialog: Dialog, turn: int) -> None:
        if dialog.unanswerable[turn]:
            self.unanswerable += 1
            self.abstained += not answer.found
            return
        top = [h.article_id for h in answer.retrieved[:K]]
        self.n += 1
        self.hit1 += bool(top) and top[0] == article
        self.hit5 += article in top
        self.gold += answer.found and contains_gold(answer.text, dialog.answers[turn])
        self.answered += answer.found

    def to_json(self) -> dict[str, float | int]:
        n = max(self.n, 1)
        return {
            "questions": self.n,
            "hit@1": round(self.hit1 / n, 3),
            "hit@5": round(self.hit5 / n, 3),
            "gold": round(self.gold / n, 3),
            "answered": round(self.answered / n, 3),
            "unanswerable": self.unanswerable,
            "abstained": round(self.abstained / max(self.unanswerable, 1), 3),
        }


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def contains_gold(text: str, answers: tuple[str, ...]) -> bool:
    """Whether the answer holds one of the gold spans, case, punctuation and spacing ignored."""
    low = _norm(re.sub(r"\[\d+\]", " ", text))
    return any((g := _norm(a)) and g in low for a in answers)


def load_dialogs(path: Path) -> tuple[list[dict[str, str]], list[Dialog]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    records = [{"id": d["id"], "text": d["context"].strip()} for d in data]
    dialogs = []
    for d in data:
        turns = d["turns"][:3]
        dialogs.append(
            Dialog(
                d["id"],
                tuple(t["question"] for t in turns),
                tuple(tuple(a for a in t["answers"] if a and a != "CANNOTANSWER") for t in turns),
                tuple(bool(t.get("unanswerable")) for t in turns),
            )
        )
    return records, dialogs


def build_index(records: list[dict[str, str]], work: Path, embedder) -> tuple[Path, str]:
    """The index of every section, built once and reused while the dataset is unchanged."""
    articles = work / "articles"
    articles.mkdir(parents=True, exist_ok=True)
    (articles / "quac.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    index = work / "index"
    if current_version_name(index) is None:
        settings = Settings(articles_dir=articles, index_dir=index)
        started = time.perf_counter()
        rebuild(settings, lambda: embedder)
        print(f"indexed {len(records)} sections in {time.perf_counter() - started:.0f}s",
              file=sys.stderr)  # fmt: skip
    return index, "quac.jsonl#"


def prewarm(service: QAService, texts: list[str]) -> None:
    """Embed every sentence of the sections in large batches before asking.

    The answerer embeds the candidate sentences of each question's passages and keeps them
    in its cache; batching them up front costs a fraction of embedding them question by
    question (the same vectors: only the benchmark's run time changes).
    """
    sentences = list(
        dict.fromkeys(t[s:e] for t in texts for s, e in answer_spans(t) if t[s:e].strip())
    )
    service.extractive.cache_size = max(service.extractive.cache_size, 2 * len(sentences))
    embedder = service.embedder()
    for i in range(0, len(sentences), 512):
        service.extractive._vectors(embedder, sentences[i : i + 512])


class Cache:
    """Standalone answers (the `alone` and `naive` runs), kept between runs of the script:
    only the conversation run changes while follow-ups are tuned. Keyed by the code's
    answering settings and the index version; delete the file after changing the answerer."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.found: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if row["key"] == key:
                    self.found[row["question"]] = row

    def answer(self, service: QAService, question: str) -> Answer:
        row = self.found.get(question)
        if row is None:
            a = service.answer(question)
            row = {
                "key": self.key,
                "question": question,
                "text": a.text,
                "found": a.found,
                "retrieved": [h.article_id for h in a.retrieved],
            }
            self.found[question] = row
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        hits = tuple(_Retrieved(article) for article in row["retrieved"])
        return Answer(question, row["text"], row["found"], retrieved=hits)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Retrieved:
    article_id: str


def settings_key(settings: Settings) -> str:
    from index.store import current_version_name

    fields_ = ("search_k", "abstain_threshold", "answer_max_sentences", "answer_max_words",
               "llm_base_url", "llm_model")  # fmt: skip
    parts = [str(getattr(settings, f)) for f in fields_]
    return "|".join([*parts, current_version_name(settings.index_dir) or ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--limit", type=int, default=None, help="Dialogs to ask (default all).")
    parser.add_argument("--runs", default=",".join(RUNS), help="Comma-separated runs.")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="Override a FollowupWeights field (for tuning).")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "quac-conv")
    args = parser.parse_args()

    records, dialogs = load_dialogs(args.dataset)
    import torch

    torch.set_num_threads(args.threads)  # a shared machine: more threads only contend
    embedder = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu")
    index, prefix = build_index(records, args.work, embedder)
    db = args.work / f"conversations-{os.getpid()}.sqlite"
    settings = Settings(index_dir=index, conversations_db=db)
    service = QAService(settings, embedder=embedder)
    weights = FollowupWeights()
    types = {f.name: f.type for f in fields(FollowupWeights)}
    for item in args.set:
        name, _, value = item.partition("=")
        weights = replace(weights, **{name: int(value) if types[name] == "int" else float(value)})
    service.followup_weights = weights

    cache = Cache(args.work / "standalone-answers.jsonl", settings_key(settings))
    chosen = dialogs[: args.limit] if args.limit else dialogs
    prewarm(service, [r["text"] for r in records if not args.limit or r["id"] in
                      {d.id for d in chosen}])  # fmt: skip
    runs = [r for r in args.runs.split(",") if r]
    first = {r: Tally() for r in runs}
    follow = {r: Tally() for r in runs}
    started = time.perf_counter()
    for d in chosen:
        article = prefix + d.id
        for run in runs:
            for turn, question in enumerate(d.questions):
                if run == "alone":
                    answer = cache.answer(service, question)
                elif run == "naive":
                    answer = cache.answer(service, " ".join([*d.questions[:turn], question]))
                else:
                    answer = service.answer(question, conversation=f"{run}:{d.id}")
                (first if turn == 0 else follow)[run].add(answer, article, d, turn)
    seconds = time.perf_counter() - started
    db.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    report = {
        "dialogs": len(chosen),
        "weights": {f.name: getattr(weights, f.name) for f in fields(weights)},
        "seconds": round(seconds, 1),
        "llm": settings.llm_model if settings.llm_enabled else None,
        "llm_condense": settings.llm_enabled and settings.llm_condense,
        "followups": {r: follow[r].to_json() for r in runs},
        "first": {r: first[r].to_json() for r in runs},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    llm = (
        f"LLM {settings.llm_model}, rewrite {'on' if settings.llm_condense else 'off'}"
        if settings.llm_enabled
        else "offline (no LLM)"
    )
    print(f"QuAC dev, {len(chosen)} dialogs ({seconds:.0f}s), {llm}\n")
    print("| questions | run | n | hit@1 | hit@5 | gold | answered | abstained (unanswerable) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, table in (("follow-ups (2, 3)", follow), ("first", first)):
        for r in runs:
            t = table[r].to_json()
            print(f"| {label} | {r} | {t['questions']} | {t['hit@1']:.3f} | {t['hit@5']:.3f} | "
                  f"{t['gold']:.3f} | {t['answered']:.3f} | {t['abstained']:.3f} "
                  f"(n={t['unanswerable']}) |")  # fmt: skip


if __name__ == "__main__":
    main()
