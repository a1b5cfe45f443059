"""Whether the passages found can answer the question: the evidence behind "I don't know".

Semantic similarity alone separates answerable from unanswerable questions poorly, and the
hard cases share words with the corpus: a question about the same people or topic as an
indexed article, asking a fact the article does not hold. Such a question finds its names
everywhere but misses the one rare word that carries the fact ("In what year was the
*second* treaty signed?"), and no single sentence holds it together with the names.

So the evidence is a small logistic model over signals that stay on one scale whatever the
corpus size (cosines and shares of the question's idf weight, never raw BM25 scores): how
close the best sentences are, how much of the question's weight the top passages, the best
passage and the best sentence (read with its article's title) hold, how rare the rarest
missing word is, and whether the best sentence has the kind of answer asked for. Its
weights are fitted by `benchmarks/calibrate_abstention.py` on one half of SQuAD 2.0 dev's
articles (on-corpus questions against off-corpus questions about unindexed articles and
about unindexed paragraphs of indexed ones), checked on the other half, and shipped in
`abstention_model.json`. The output is a probability that the articles answer, which
ABSTAIN_THRESHOLD cuts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from index.lexical import document_terms, query_terms
from index.models import Hit

MODEL_PATH = Path(__file__).with_name("abstention_model.json")

FEATURES: tuple[str, ...] = (
    "best_sentence_cosine",
    "chosen_sentence_cosine",
    "top_passage_cosine",
    "coverage_top3",
    "coverage_best_passage",
    "coverage_best_sentence_titled",
    "rarest_missing",
    "answer_type",
    "cosine_x_coverage",
)


class RankedSentence(Protocol):
    """What the answerer's sentence ranking gives per candidate (`extractive.Scored`)."""

    @property
    def dense(self) -> float: ...

    @property
    def typed(self) -> float: ...

    @property
    def text(self) -> str: ...

    @property
    def hit_index(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EvidenceModel:
    """Logistic regression over standardised `FEATURES`."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.intercept
        for name, mu, sd, w in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            z += w * (values[name] - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvidenceModel:
        model = cls(
            tuple(data["features"]),
            tuple(float(x) for x in data["mean"]),
            tuple(float(x) for x in data["scale"]),
            tuple(float(x) for x in data["coef"]),
            float(data["intercept"]),
        )
        if set(model.features) - set(FEATURES) or not (
            len(model.features) == len(model.mean) == len(model.scale) == len(model.coef)
        ):
            raise ValueError(f"{MODEL_PATH.name}: features do not match this version")
        return model


@cache
def shipped_model() -> EvidenceModel:
    return EvidenceModel.from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))


def features(
    question: str,
    hits: Sequence[Hit],
    ranked: Sequence[RankedSentence],
    idf: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The evidence signals for one question (all 0 when nothing was ranked)."""
    out = dict.fromkeys(FEATURES, 0.0)
    if not ranked or not hits:
        return out
    terms = list(dict.fromkeys(query_terms(question)))
    weight = {t: max((idf or {}).get(t, 1.0), 1e-6) for t in terms}
    total = sum(weight.values())

    def covered(present: set[str]) -> float:
        if not terms:
            return 0.0
        return sum(w for t, w in weight.items() if t in present) / total

    top3: set[str] = set()
    for h in hits[:3]:
        top3.update(document_terms(f"{h.title}\n{h.text}"))
    best_passage = set(document_terms(f"{hits[0].title}\n{hits[0].text}"))
    # A sentence is read under its article's title, as a reader of news reads it under the
    # headline: "The strike began at 6am on Monday" answers "When did the Harrowgate strike
    # begin?" in an article headed "Dockworkers walk out at Harrowgate port".
    titles = [set(document_terms(h.title)) for h in hits]
    by_sentence = max(
        (
            covered(
                set(document_terms(s.text))
                | (titles[s.hit_index] if s.hit_index < len(hits) else set())
            )
            for s in ranked[:8]
        ),
        default=0.0,
    )
    missing = [weight[t] for t in terms if t not in top3]
    best = max(s.dense for s in ranked)
    out.update(
        best_sentence_cosine=best,
        chosen_sentence_cosine=ranked[0].dense,
        top_passage_cosine=hits[0].dense_score or 0.0,
        coverage_top3=covered(top3),
        coverage_best_passage=covered(best_passage),
        coverage_best_sentence_titled=by_sentence,
        rarest_missing=max(missing) / max(weight.values()) if missing else 0.0,
        answer_type=ranked[0].typed,
    )
    out["cosine_x_coverage"] = best * out["coverage_top3"]
    return out


def evidence(
    question: str,
    hits: Sequence[Hit],
    ranked: Sequence[RankedSentence],
    idf: Mapping[str, float] | None = None,
    model: EvidenceModel | None = None,
) -> float:
    """Probability that the passages answer the question (0 when there are none)."""
    if not ranked or not hits:
        return 0.0
    return (model or shipped_model()).probability(features(question, hits, ranked, idf))
