"""Real-looking data for the index scale benchmark: vectors fitted to real chunk vectors, text
of realistic length, real questions.

Everything is cached under a work folder outside the repository (default /tmp/scale): the
dataset text is read from ../shared/datasets and never copied into the project.

- Real chunk-like vectors: every SQuAD 2.0 dev paragraph and every QuAC section cut into
  pieces of about 150 words, embedded by the packaged all-MiniLM-L6-v2.
- Synthetic vectors: drawn from a Gaussian mixture (full covariances) fitted to those real
  vectors, then re-normalised. A mixture spreads new points over the regions real text
  occupies instead of crowding noisy copies around a few real points (which makes
  near-ties that graph indexes find hard and real text does not have); `nn_stats` checks
  that nearest-neighbour cosines of a synthetic sample match the real ones at equal size.
- Text: passages of 100-200 words assembled from real SQuAD and QuAC sentences in random
  order, ten per synthetic article; the words and their frequencies are real, the passages
  are not, and a passage's text is unrelated to its vector (latency and recall do not need
  them to agree). The small sentence pool makes every term far more frequent than in a real
  million-passage archive, so BM25 postings are longer than real ones: pessimistic.
- Queries: real SQuAD questions, embedded beforehand one by one.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
SQUAD = DATASETS / "squad-v2.0-dev.json"
QUAC = DATASETS / "quac-dev-first3-half.json"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
PIECE_WORDS = 150
PASSAGE_WORDS = (100, 200)
PASSAGES_PER_ARTICLE = 10


@dataclass(frozen=True, slots=True)
class RealText:
    chunks: list[str]  # chunk-like texts: paragraphs and ~150-word pieces of sections
    sentences: list[str]
    titles: list[str]
    questions: list[str]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= 4]


def load_real_text() -> RealText:
    squad = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    quac = json.loads(QUAC.read_text(encoding="utf-8"))["data"]
    chunks: list[str] = []
    sentences: list[str] = []
    titles: list[str] = []
    questions: list[str] = []
    for article in squad:
        titles.append(article["title"].replace("_", " "))
        for p in article["paragraphs"]:
            chunks.append(p["context"].strip())
            sentences.extend(_sentences(p["context"]))
            questions.extend(q["question"].strip() for q in p["qas"] if not q["is_impossible"])
    for dialog in quac:
        context = dialog["context"].replace("CANNOTANSWER", "").strip()
        own = _sentences(context)
        sentences.extend(own)
        piece: list[str] = []
        for s in own:
            piece.append(s)
            if sum(len(x.split()) for x in piece) >= PIECE_WORDS:
                chunks.append(" ".join(piece))
                piece = []
        if sum(len(x.split()) for x in piece) >= PIECE_WORDS // 2:
            chunks.append(" ".join(piece))
    return RealText(chunks, sentences, titles, questions)


def embed_real(work: Path, n_queries: int, log=print) -> dict[str, np.ndarray]:
    """Real chunk vectors and question vectors (cached in work/real.npz)."""
    cache = work / "real.npz"
    if cache.exists():
        with np.load(cache) as data:
            return {k: data[k] for k in data.files}
    from index.embedder import load_embedder
    from index.settings import DEFAULT_EMBEDDING_MODEL

    text = load_real_text()
    embedder = load_embedder(DEFAULT_EMBEDDING_MODEL)
    t0 = time.perf_counter()
    chunks = embedder.encode_documents(text.chunks, batch_size=32)
    log(f"embedded {len(chunks)} real chunk-like texts in {time.perf_counter() - t0:.0f}s")
    rng = np.random.default_rng(7)
    picked = [text.questions[i] for i in rng.permutation(len(text.questions))[:n_queries]]
    qvecs = np.stack([embedder.encode_queries([q])[0] for q in picked])
    out = {"chunks": chunks.astype(np.float32), "queries": qvecs.astype(np.float32)}
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out, questions=np.array(picked))
    out["questions"] = np.array(picked)
    return out


# ---------------------------------------------------------------- the fitted distribution


@dataclass(frozen=True, slots=True)
class Mixture:
    weights: np.ndarray  # (k,)
    means: np.ndarray  # (k, d)
    chol: np.ndarray  # (k, d, d) lower Cholesky factors of the covariances

    def sample(self, n: int, seed: int) -> np.ndarray:
        """`n` unit vectors drawn from the mixture (then re-normalised), float32."""
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, self.weights)
        d = self.means.shape[1]
        out = np.empty((n, d), dtype=np.float32)
        at = 0
        for c, count in enumerate(counts):
            for start in range(0, count, 100_000):
                m = min(100_000, count - start)
                z = rng.standard_normal((m, d)).astype(np.float32)
                out[at : at + m] = z @ self.chol[c].T.astype(np.float32) + self.means[c]
                at += m
        out = out[rng.permutation(n)]
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def fit_mixture(real: np.ndarray, components: int, reg: float, seed: int = 0) -> Mixture:
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        components, covariance_type="full", reg_covar=reg, random_state=seed, max_iter=200
    ).fit(real)
    chol = np.linalg.cholesky(gm.covariances_)
    return Mixture(gm.weights_, gm.means_.astype(np.float32), chol)


def nn_stats(vectors: np.ndarray, against: np.ndarray | None = None) -> dict[str, float]:
    """Nearest-neighbour cosine (excluding self) and mean pairwise cosine."""
    other = vectors if against is None else against
    sims = vectors @ other.T
    if against is None:
        np.fill_diagonal(sims, -np.inf)
    nn = sims.max(axis=1)
    finite = sims[np.isfinite(sims)]
    return {
        "nn_p10": round(float(np.percentile(nn, 10)), 3),
        "nn_p50": round(float(np.percentile(nn, 50)), 3),
        "nn_p90": round(float(np.percentile(nn, 90)), 3),
        "mean_cos": round(float(finite.mean()), 3),
    }


# ---------------------------------------------------------------- text


def passages(text: RealText, n: int, seed: int) -> list[str]:
    """`n` passages of 100-200 words, each a run of random real sentences."""
    rng = np.random.default_rng(seed)
    sents = text.sentences
    lengths = np.array([len(s.split()) for s in sents])
    out: list[str] = []
    picks = rng.integers(0, len(sents), size=n * 12)
    targets = rng.integers(PASSAGE_WORDS[0], PASSAGE_WORDS[1] + 1, size=n)
    at = 0
    for target in targets:
        words = 0
        parts: list[str] = []
        while words < target:
            i = int(picks[at % len(picks)])
            at += 1
            parts.append(sents[i])
            words += int(lengths[i])
        out.append(" ".join(parts))
    return out
