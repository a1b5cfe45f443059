"""Incremental writing: a plain rebuild writes changes onto copies of the published version.

What must hold: the result searches exactly like a full rebuild of the same articles (same
hits, same scores, in every mode), removed articles are gone, holes are bounded, and a
rebuild killed at any phase leaves the published version serving and byte for byte intact.

Retrieval is judged with the real model (the session `embedder`); the kill tests check store
bookkeeping only, so their subprocesses use `HashEmbedder` (deterministic vectors from the
words, the real tokenizer) instead of paying for a model load each.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import bm25s
import numpy as np
import pytest

from index import rebuild as rebuild_module
from index import store
from index.lexical import LexicalIndex
from index.lexical_terms import build_bm25, count_terms
from index.rebuild import rebuild
from index.search import Searcher
from index.settings import DEFAULT_EMBEDDING_MODEL, IndexSettings
from index.store import current_version_name, open_current, versions_dir

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

PLACES = ["harbour", "glacier", "orchard", "observatory", "vineyard", "lighthouse", "quarry"]
EVENTS = [
    ("flood", "water rose over the quay and the pumps ran all night"),
    ("festival", "musicians played until dawn and the lanterns were lit"),
    ("strike", "workers walked out over pay and the gates stayed shut"),
    ("discovery", "a survey team found old coins buried under the soil"),
]
QUERIES = [
    "when did the water rise over the quay?",
    "who found coins under the soil",
    "lanterns and musicians at dawn",
    "workers walked out over pay",
    "the lighthouse keeper's report",
    "glacier festival",
    "vineyard harvest figures",
    "orchard strike gates",
]


def make_articles(n: int, salt: str = "") -> dict[str, str]:
    """n short articles, distinct enough that no two chunks tie in any score."""
    out = {}
    for i in range(n):
        place = PLACES[i % len(PLACES)]
        event, detail = EVENTS[(i // len(PLACES)) % len(EVENTS)]
        out[f"n{i:03d}.txt"] = (
            f"The {place} {event} number {i}{salt}\n"
            f"At the {place}, the {event} of week {i} drew a crowd: {detail}. "
            f"Reporter {i} counted {i * 7 + 3} people near the {place} gate. "
            f"Officials said the {event} would be remembered as item {i}."
        )
    return out


def write(folder: Path, articles: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")


def settings_for(base: Path, **overrides) -> IndexSettings:
    return IndexSettings(articles_dir=base / "articles", index_dir=base / "index", **overrides)


def change(folder: Path) -> None:
    """Edit two articles, delete two, add two."""
    for name in ("n003.txt", "n011.txt"):
        path = folder / name
        path.write_text(path.read_text() + " A late correction was issued on Friday.")
    for name in ("n005.txt", "n017.txt"):
        (folder / name).unlink()
    write(folder, {k.replace("n", "z"): v for k, v in make_articles(2, " (new)").items()})


def hits(root: Path, embedder) -> list[list[tuple[str, int, int, str, float]]]:
    stored = open_current(root, checksums=True)
    try:
        stored.verify()
        searcher = Searcher(stored, embedder)
        return [
            [(h.article_id, h.start, h.end, h.text, round(h.score, 5)) for h in found]
            for mode in ("hybrid", "dense", "lexical")
            for found in searcher.search_batch(QUERIES, k=4, mode=mode)
        ]
    finally:
        stored.close()


def digests(version: Path) -> dict[str, str]:
    return {
        p.relative_to(version).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(version.rglob("*"))
        if p.is_file()
    }


class HashEmbedder:
    """Vectors from the words (each word a fixed random direction), the real tokenizer.

    Named as the default model so that the index it builds is extended, not rebuilt.
    """

    name = DEFAULT_EMBEDDING_MODEL
    dimension = 32
    max_seq_length = 256

    def __init__(self) -> None:
        from index.embedder import FastTokenizer, resolve_model_path

        path, _ = resolve_model_path(DEFAULT_EMBEDDING_MODEL)
        self.tokenizer = FastTokenizer(Path(path) / "tokenizer.json", self.max_seq_length)

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for word in text.lower().split():
            seed = zlib.crc32(word.encode("utf-8"))
            v += np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def encode_documents(self, texts, *, batch_size: int = 64, progress: bool = False):
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._one(t) for t in texts])

    def encode_queries(self, texts):
        return self.encode_documents(texts)


# ---------------------------------------------------------------- the same as a full rebuild


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    base = tmp_path_factory.mktemp("incr")
    write(base / "articles", make_articles(24))
    report = rebuild(settings_for(base), lambda: embedder)
    assert report.published and not report.incremental
    return base


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> IndexSettings:
    shutil.copytree(built / "articles", tmp_path / "articles")
    shutil.copytree(built / "index", tmp_path / "index")
    return settings_for(tmp_path)


def full_twin(settings: IndexSettings, tmp_path: Path, embedder) -> IndexSettings:
    """The same articles rebuilt with --full in another folder."""
    twin = settings.model_copy(update={"index_dir": tmp_path / "twin"})
    report = rebuild(twin, lambda: embedder, full=True)
    assert report.published and not report.incremental
    return twin


@pytest.mark.parametrize("kind", ["auto", "hnsw"])
def test_incremental_searches_like_a_full_rebuild(copy, tmp_path: Path, embedder, kind: str):
    settings = copy.model_copy(update={"index_type": kind})
    if kind != "auto":  # lay the base out as HNSW first (no model needed)
        assert rebuild(settings, lambda: embedder).published
    before = open_current(settings.index_dir)
    old = {a.id: a for a in before.articles()}
    old_vectors = np.array(before.vectors)
    before.close()

    change(settings.articles_dir)
    report = rebuild(settings, lambda: embedder)
    assert report.published and report.incremental and not report.full
    assert (report.added, report.updated, report.removed) == (2, 2, 2)
    assert set(report.phases) >= {"plan", "chunk", "embed", "sqlite", "vectors", "bm25", "ann"}

    twin = full_twin(settings, tmp_path, embedder)
    assert hits(settings.index_dir, embedder) == hits(twin.index_dir, embedder)

    stored = open_current(settings.index_dir, checksums=True)
    try:
        m, t = stored.manifest, open_current(twin.index_dir).manifest
        assert (m.articles, m.chunks, m.index_type) == (t.articles, t.chunks, t.index_type)
        assert m.rows is not None and m.rows > m.chunks, "the removed rows stay as holes"
        assert stored.dense.ntotal == stored.size == m.rows == len(stored.vectors)
        articles = {a.id: a for a in stored.articles()}
        assert "n005.txt" not in articles and "n017.txt" not in articles
        assert {"z000.txt", "z001.txt"} <= set(articles)
        for aid, a in articles.items():  # unchanged articles kept their rows and vectors
            if aid in old and aid not in ("n003.txt", "n011.txt"):
                assert (a.row, a.first_chunk) == (old[aid].row, old[aid].first_chunk)
                rows = slice(a.first_chunk, a.first_chunk + a.n_chunks)
                assert np.array_equal(stored.vectors[rows], old_vectors[rows])
        gone = [
            r
            for aid in ("n003.txt", "n005.txt", "n011.txt", "n017.txt")
            for r in range(old[aid].first_chunk, old[aid].first_chunk + old[aid].n_chunks)
        ]
        twin_stored = open_current(twin.index_dir)
        try:  # shaping data: the carried kept, the retired gone, the new ones written
            ours, theirs = (
                {
                    k: (v.word_filter, v.sentences.tolist())
                    for k, v in x.shaping(list(articles)).items()
                }
                for x in (stored, twin_stored)
            )
            assert ours == theirs and set(ours) == set(articles)
            assert not stored.shaping(["n005.txt", "n017.txt"])
        finally:
            twin_stored.close()
        assert not stored.chunk_rows(gone), "retired rows have no chunk"
        assert not np.any(stored.vectors[gone]), "and no vector"
        assert not np.any(stored.lexical.scores("correction friday people gate")[gone])
    finally:
        stored.close()


def test_incremental_on_incremental_then_whole_once_holes_pass_the_share(
    copy, tmp_path: Path, embedder, monkeypatch
):
    settings = copy
    monkeypatch.setattr(rebuild_module, "MAX_HOLE_SHARE", 0.5)  # a small collection
    change(settings.articles_dir)
    assert rebuild(settings, lambda: embedder).incremental
    (settings.articles_dir / "n001.txt").unlink()
    (settings.articles_dir / "n002.txt").write_text("Short note\nThe quarry reopened.")
    report = rebuild(settings, lambda: embedder)
    assert report.incremental and (report.removed, report.updated) == (1, 1)
    twin = full_twin(settings, tmp_path, embedder)
    assert hits(settings.index_dir, embedder) == hits(twin.index_dir, embedder)

    monkeypatch.setattr(rebuild_module, "MAX_HOLE_SHARE", 0.2)
    (settings.articles_dir / "n004.txt").unlink()
    report = rebuild(settings, lambda: embedder)
    assert report.published and not report.incremental, "too many holes: written whole"
    stored = open_current(settings.index_dir)
    try:
        assert stored.manifest.rows is None and stored.size == stored.manifest.chunks
    finally:
        stored.close()
    rebuild(twin, lambda: embedder, full=True)
    assert hits(settings.index_dir, embedder) == hits(twin.index_dir, embedder)


def test_a_base_without_term_counts_is_written_whole(copy, embedder, monkeypatch):
    version = store.current_version_dir(copy.index_dir)
    stored = open_current(copy.index_dir)
    assert store.has_term_counts(stored)
    stored.close()
    (copy.articles_dir / "n000.txt").unlink()
    # as a version written before term counts were kept
    monkeypatch.setattr(rebuild_module, "has_term_counts", lambda stored: False)
    report = rebuild(copy, lambda: embedder)
    assert report.published and not report.incremental and report.removed == 1
    assert (versions_dir(copy.index_dir) / version.name).is_dir()


def test_bm25_from_term_counts_scores_like_bm25s():
    docs = [
        "The cat sat on the mat.", "the of and", "Dogs and cats living together, cats!",
        "Bread is leavened by a starter of yeast", "starter dough bread bread",
    ]  # fmt: skip
    reference = LexicalIndex.build(docs)
    vocab: dict[str, int] = {}
    terms = count_terms(docs, vocab)
    ours = LexicalIndex(build_bm25(np.arange(len(docs)), terms, vocab, len(docs)), len(docs))
    ours.check()
    for query in ("cat mat", "bread starter", "dogs living", "yeast"):
        assert np.array_equal(reference.scores(query), ours.scores(query)), query
    assert reference.idf(["cat", "zzz"]) == ours.idf(["cat", "zzz"])
    # with holes: rows 1, 3, 6 of 7 hold documents 0, 2, 4; the rest score 0
    kept = [0, 2, 4]
    partial = LexicalIndex.build([docs[i] for i in kept])
    holes = build_bm25(np.array([1, 3, 6]), [terms[i] for i in kept], vocab, 7)
    assert isinstance(holes, bm25s.BM25)
    spread = LexicalIndex(holes, 7)
    spread.check()
    scores = spread.scores("cat bread")
    assert np.array_equal(scores[[1, 3, 6]], partial.scores("cat bread"))
    assert not scores[[0, 2, 4, 5]].any()
    assert spread.scores("mat") is not None and spread.scores("zzzz") is None


# ---------------------------------------------------------------- killed at every phase


KILLER = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_incremental import HashEmbedder
from index import store
from index.rebuild import rebuild
from index.settings import IndexSettings

where, when = sys.argv[2].split(":")
original = store.VersionWriter._phase
real_replace = os.replace

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def phase(self, name):
    from contextlib import contextmanager
    @contextmanager
    def wrapped():
        print("phase", name, flush=True)
        if (name, when) == (where, "enter"):
            die()
        with original(self, name):
            yield
        if (name, when) == (where, "exit"):
            die()
    return wrapped()

def replace(src, dst, **kwargs):
    real_replace(src, dst, **kwargs)
    if where == "renamed" and Path(src).name.startswith(store.TMP_PREFIX):
        die()

store.VersionWriter._phase = phase
store.os.replace = replace
base = Path(sys.argv[1])
settings = IndexSettings(articles_dir=base / "articles", index_dir=base / "index")
embedder = HashEmbedder()
report = rebuild(settings, lambda: embedder)
print("finished", report.incremental, flush=True)
"""

WRITE_PHASES = ("sqlite", "bm25", "vectors", "ann", "checksums", "publish")  # in this order
# the start of each phase of writing (a phase's end is the next one's start), the moment
# between renaming the finished version into place and swapping CURRENT, and just after
KILL_POINTS = [
    *(f"{phase}:enter" for phase in WRITE_PHASES),
    "renamed:after",
    "publish:exit",
]


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hashed")
    write(base / "articles", make_articles(40))
    assert rebuild(settings_for(base), HashEmbedder).published
    return base


def run_killer(base: Path, point: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", KILLER, str(base), point, str(HERE)],
        cwd=base, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def assert_intact(settings: IndexSettings, version: str, files: dict[str, str]) -> None:
    assert current_version_name(settings.index_dir) == version
    folder = versions_dir(settings.index_dir) / version
    assert digests(folder) == files, "the published version was not touched"
    stored = open_current(settings.index_dir, checksums=True)
    try:
        stored.verify()
        found = Searcher(stored, HashEmbedder()).search("harbour flood number 0", k=2)
        assert found and all(h.text for h in found)
    finally:
        stored.close()


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_each_phase_the_published_version_serves_untouched(
    hashed: Path, tmp_path: Path, point: str
):
    shutil.copytree(hashed / "articles", tmp_path / "articles")
    shutil.copytree(hashed / "index", tmp_path / "index")
    settings = settings_for(tmp_path)
    version = current_version_name(settings.index_dir)
    files = digests(versions_dir(settings.index_dir) / version)
    change(settings.articles_dir)

    proc = run_killer(tmp_path, point)
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    if point == "publish:exit":  # killed once published: the new version serves
        published = current_version_name(settings.index_dir)
        assert published != version
        assert digests(versions_dir(settings.index_dir) / version) == files
        open_current(settings.index_dir, checksums=True).verify()
        assert not rebuild(settings, HashEmbedder).published, "nothing left to do"
        return
    assert_intact(settings, version, files)

    report = rebuild(settings, HashEmbedder)  # the next rebuild sweeps the debris and extends
    assert report.published and report.incremental
    assert not [p for p in versions_dir(settings.index_dir).iterdir() if p.name[0] == "."]
    if point != "renamed:after":  # else the orphaned new version counts as one of the kept
        assert digests(versions_dir(settings.index_dir) / version) == files, "kept, untouched"


@pytest.mark.slow
def test_killed_at_random_moments_at_scale(tmp_path: Path):
    """INCR_KILL_ARTICLES articles (default 3,000: ~8k chunks), 1% changes, incremental
    rebuilds SIGKILLed at random moments of their writing until ten kills have landed (a
    rebuild that publishes before its kill is checked, and the next change is made); then
    one is let finish.

    Run with `-s` to see the size, the phases the kills landed in and the times."""
    n = int(os.environ.get("INCR_KILL_ARTICLES", "3000"))
    rng = random.Random(0)
    articles = {
        f"a{i:05d}.txt": f"Article {i} about the {PLACES[i % 7]}\n"
        + " ".join(
            f"Sentence {j} of article {i} mentions the {rng.choice(PLACES)} and "
            f"{rng.choice(EVENTS)[1]}."
            for j in range(rng.randint(8, 30))
        )
        for i in range(n)
    }
    write(tmp_path / "articles", articles)
    settings = settings_for(tmp_path)
    initial = rebuild(settings, HashEmbedder)
    assert initial.published
    print(f"{n} articles, {initial.chunks} chunks, full rebuild {initial.seconds:.1f} s")
    version = current_version_name(settings.index_dir)
    assert version is not None
    files = digests(versions_dir(settings.index_dir) / version)

    def one_percent(round_: int) -> None:
        """Delete half of 1% of the articles, edit the other half, add five."""
        present = sorted(p.name for p in settings.articles_dir.iterdir())
        picked = rng.sample(present, max(n // 100, 4))
        for name in picked[::2]:
            (settings.articles_dir / name).unlink()
        for name in picked[1::2]:
            path = settings.articles_dir / name
            path.write_text(path.read_text() + f" It was revised in round {round_}.")
        fresh = {f"new{round_}_{i}.txt": f"New {i}\nThe quarry strike {i}." for i in range(5)}
        write(settings.articles_dir, fresh)

    one_percent(0)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    killed_in: list[str] = []
    published = 0
    for run in range(1, 41):
        if len(killed_in) == 10:
            break
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLER, str(tmp_path), "never:enter", str(HERE)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        # a random moment of a random phase: at any size, the kills spread over all of them
        target, seen = f"phase {rng.choice(WRITE_PHASES)}", ""
        while (line := proc.stdout.readline()) and not line.startswith(target):
            seen += line
        time.sleep(0.5 * rng.random() ** 2 if line else 0.0)  # mostly early: phases can be short
        proc.send_signal(signal.SIGKILL)
        # read on through proc.stdout: readline may have buffered lines that communicate()
        # would skip; the process is dead, so both pipes end at once
        out = seen + line + proc.stdout.read()
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=120)
        phases = [row.split()[1] for row in out.splitlines() if row.startswith("phase ")]
        if proc.returncode != 0 and current_version_name(settings.index_dir) == version:
            killed_in.append(phases[-1] if phases else "planning")
            assert_intact(settings, version, files)
            continue
        # it published before the kill landed: it finished, or was killed once CURRENT moved
        if proc.returncode == 0:
            assert "finished True" in out, err
        else:
            assert phases[-1] == "publish", (phases, err)
        old = versions_dir(settings.index_dir) / version  # gone if an orphan took its place
        assert not old.exists() or digests(old) == files, "kept, untouched"
        version = current_version_name(settings.index_dir)
        assert version is not None
        open_current(settings.index_dir, checksums=True).verify()
        files = digests(versions_dir(settings.index_dir) / version)
        published += 1
        one_percent(run)
    assert len(killed_in) == 10, killed_in
    report = rebuild(settings, HashEmbedder)
    print(f"killed in {killed_in}; {published} published before their kill; {report.seconds:.1f} s")
    assert report.published and report.incremental
    assert not [p for p in versions_dir(settings.index_dir).iterdir() if p.name[0] == "."]
