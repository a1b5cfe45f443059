"""VECTOR_STORE=milvus on Milvus Lite: rebuild, incremental rebuild, hybrid search, delete,
answers with citations, and one-line errors for a Milvus that cannot be used.

One Milvus Lite file serves the module (starting it is the slow part); each test writes its
own collections, named after the test.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
pytest.importorskip("milvus_lite", reason="the milvus extra is not installed")

from bot.cli import cli as bot_cli
from bot.service import QAService
from bot.settings import Settings
from index.article_cache import CACHE_FILE
from index.cli import cli as index_cli
from index.cli import open_searcher
from index.errors import EmbedderUnavailable, IndexNotBuilt, RebuildBusy
from index.live import LiveIndex, published_version
from index.milvus_lock import RebuildLease, milvus_rebuild_lock
from index.milvus_store import MilvusStore, milvus_config
from index.rebuild import rebuild
from index.settings import IndexSettings

ARTICLES = {
    "harbour.txt": (
        "Harbour dredging resumes at Port Velmora\n"
        "Dredging of the silted channel at Port Velmora resumed on Monday after a two-month "
        "pause. The harbour master, Ilse Marrow, said the barge Kestrel would remove forty "
        "thousand cubic metres of mud before the autumn grain ships arrive.\n\n"
        "Fishermen had complained that low tides left their boats stranded on the sandbar."
    ),
    "orchard.txt": (
        "Frost damages the Tallow Valley apple orchards\n"
        "A late frost in the Tallow Valley destroyed most of the apple blossom this spring. "
        "Growers lit braziers between the rows overnight, but temperatures fell to minus six "
        "degrees. The cooperative expects the smallest harvest in twenty years.\n\n"
        "Cider makers say they will buy fruit from neighbouring counties instead."
    ),
    "observatory.txt": (
        "Hilltop observatory opens its new telescope\n"
        "The Brannock Hill observatory unveiled a refurbished reflecting telescope with a "
        "ninety-centimetre mirror. Astronomers plan to survey comets from the outer solar "
        "system, and the public may book evening viewings every Friday.\n\n"
        "The mirror was reground by a workshop in the north after forty years of service."
    ),
    "bakery.txt": (
        "Village bakery wins regional sourdough prize\n"
        "Pellham's only bakery took first place in the regional sourdough competition with a "
        "rye loaf fermented for thirty hours. The baker, Tomas Quill, credits a starter his "
        "grandmother kept alive since the nineteen-fifties."
    ),
}


class CountingEmbedder:
    """The real model, counting the chunk texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.embedded: list[str] = []
        for name in ("name", "dimension", "max_seq_length", "tokenizer"):
            setattr(self, name, getattr(inner, name))
        for name in ("backend", "quantization"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def encode_documents(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        self.embedded.extend(texts)
        return self._inner.encode_documents(texts, **kwargs)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._inner.encode_queries(texts)


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


def write_articles(folder: Path, articles: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def milvus_settings(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, **extra
) -> IndexSettings:
    return IndexSettings(
        articles_dir=tmp_path / "articles",
        index_dir=tmp_path / "index",
        vector_store="milvus",
        milvus_uri=lite_uri,
        milvus_collection=request.node.name.replace("[", "_").replace("]", "").replace("-", "_"),
        **extra,
    )


def never() -> Callable[[], object]:
    def load():
        raise AssertionError("the model was loaded although nothing needed embedding")

    return load


def test_rebuild_and_hybrid_search_in_milvus(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder
) -> None:
    write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)
    report = rebuild(settings, lambda: embedder)
    assert (report.articles, report.added, report.published) == (4, 4, True)
    assert report.chunks >= 4
    # nothing of the FAISS store is written locally, only the article cache
    assert [p.name for p in (tmp_path / "index").iterdir()] == [CACHE_FILE]

    searcher = open_searcher(settings, embedder)
    assert searcher.version == report.version and searcher.stored.size == report.chunks
    for mode in ("hybrid", "dense", "lexical"):
        hits = searcher.search("Who is the harbour master at Port Velmora?", k=3, mode=mode)
        assert hits and hits[0].article_id == "harbour.txt", (mode, hits)
        assert "Ilse Marrow" in hits[0].text
    # a paraphrase with no shared word is found by the dense side of the hybrid search
    hits = searcher.search("cold weather ruined the fruit trees", k=2)
    assert hits[0].article_id == "orchard.txt"
    assert hits[0].dense_score is not None and 0 < hits[0].dense_score <= 1.0001
    # the Hit contract of the FAISS store: a verbatim slice of the article with its offsets
    top = hits[0]
    text = searcher.stored.article_text(top.article_id)
    assert text is not None and text[top.start : top.end] == top.text
    assert top.chunk_id.startswith("orchard.txt#") and top.title.startswith("Frost damages")
    # idf comes from Milvus: a word of one article weighs more than one of several
    idf = searcher.term_weights("telescope mirror forty")
    assert idf["telescop"] > idf["forti"] > 0
    # chunk rows number an article's chunks consecutively, as passage shaping expects
    articles = {a.id: a for a in searcher.stored.articles()}
    assert set(articles) == set(ARTICLES)
    harbour = articles["harbour.txt"]
    rows = searcher.stored.chunk_rows(range(harbour.first_chunk, harbour.first_chunk + 3))
    assert len(rows) == harbour.n_chunks
    assert all(m["article_id"] == "harbour.txt" for m in rows.values())


def test_incremental_rebuild_touches_only_changed_and_deleted_articles(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder
) -> None:
    folder = write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)
    first = rebuild(settings, lambda: embedder)
    before = {a.id: a for a in open_searcher(settings, embedder).stored.articles()}

    again = rebuild(settings, never())  # nothing changed: no model, no new version
    assert (again.unchanged, again.published, again.version) == (4, False, first.version)

    (folder / "orchard.txt").write_text(
        ARTICLES["orchard.txt"].replace("minus six", "minus eleven"), encoding="utf-8"
    )
    (folder / "bakery.txt").unlink()
    counting = CountingEmbedder(embedder)
    report = rebuild(settings, lambda: counting)
    assert (report.updated, report.removed, report.unchanged, report.added) == (1, 1, 2, 0)
    assert report.published and report.version != first.version
    assert counting.embedded and all(t.startswith("Frost damages") for t in counting.embedded)

    searcher = open_searcher(settings, embedder)
    after = {a.id: a for a in searcher.stored.articles()}
    assert set(after) == {"harbour.txt", "orchard.txt", "observatory.txt"}
    for kept in ("harbour.txt", "observatory.txt"):  # untouched: same rows, same hash
        assert after[kept] == before[kept]
    assert after["orchard.txt"].hash != before["orchard.txt"].hash
    assert after["orchard.txt"].first_chunk == before["orchard.txt"].first_chunk
    assert searcher.stored.size == sum(a.n_chunks for a in after.values())

    hits = searcher.search("How cold did it get in the Tallow Valley?", k=3)
    assert hits[0].article_id == "orchard.txt" and "minus eleven" in hits[0].text
    assert not any(h.article_id == "bakery.txt" for h in searcher.search("sourdough rye", k=5))
    assert searcher.stored.article_text("bakery.txt") is None

    added = rebuild(settings, lambda: embedder)  # and back: a new article gets new rows
    assert added.added == 0 and added.published is False
    write_articles(folder, {"bakery.txt": ARTICLES["bakery.txt"]})
    back = rebuild(settings, lambda: embedder)
    assert (back.added, back.unchanged) == (1, 3)
    bakery = next(
        a for a in open_searcher(settings, embedder).stored.articles() if a.id == "bakery.txt"
    )
    assert bakery.first_chunk not in {a.first_chunk for a in after.values()}


def test_the_service_answers_the_seed_canary_from_milvus(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder, seeds_dir: Path
) -> None:
    settings = Settings(
        articles_dir=seeds_dir,
        index_dir=tmp_path / "index",
        vector_store="milvus",
        milvus_uri=lite_uri,
        milvus_collection="canary",
    )
    service = QAService(settings, embedder=embedder)
    with pytest.raises(IndexNotBuilt):
        service.live.get()
    assert published_version(settings) is None
    report = service.reindex()
    assert report.published and published_version(settings) == report.version
    answer = service.answer("what did Obama say to Putin?")
    assert answer.found and "cut it out" in answer.text
    cited = answer.citations[0]
    assert cited.article_id == "000_39a60bc8d7f6d11b.txt"
    text = service.live.get().stored.article_text(cited.article_id)
    assert text is not None and text[cited.start : cited.end] == cited.quote


def test_a_serving_process_follows_a_rebuild_elsewhere(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder
) -> None:
    folder = write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)
    first = rebuild(settings, lambda: embedder)
    live = LiveIndex(
        settings.index_dir, lambda: embedder, poll_seconds=0, milvus=milvus_config(settings)
    )
    assert live.get().version == first.version
    write_articles(
        folder, {"mill.txt": "Old mill restored\nThe watermill at Crannoch grinds again."}
    )
    second = rebuild(settings, lambda: embedder)  # as the operator's cron job would
    searcher = live.get()
    assert searcher.version == second.version
    assert searcher.search("Crannoch watermill", k=1)[0].article_id == "mill.txt"


def _invoke(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return CliRunner().invoke(index_cli, args)


def _one_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ftp://milvus.example.org/db", "neither a server URL"),
        ("{tmp}/notes.txt/milvus.db", "cannot create"),
        ("{tmp}/milvus.sqlite", "must end in .db"),
    ],
)
def test_a_bad_milvus_uri_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    env = {"VECTOR_STORE": "milvus", "MILVUS_URI": uri.format(tmp=tmp_path)}
    line = _one_line(_invoke(["search", "anything"], env, monkeypatch))
    assert expected in line


def test_nothing_built_and_an_unreachable_server_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lite_uri: str
) -> None:
    env = {"VECTOR_STORE": "milvus", "MILVUS_URI": lite_uri, "MILVUS_COLLECTION": "never_built"}
    assert "run `python -m index rebuild` first" in _one_line(
        _invoke(["search", "anything"], env, monkeypatch)
    )
    env = {
        "VECTOR_STORE": "milvus",
        "MILVUS_URI": "http://127.0.0.1:9",  # the discard port: nothing listens
        "MILVUS_TOKEN": "s3cret-token-value",
        "MILVUS_TIMEOUT_SECONDS": "2",
    }
    line = _one_line(_invoke(["stats"], env, monkeypatch))
    assert "127.0.0.1:9" in line and "s3cret-token-value" not in line


def test_missing_pymilvus_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # what an absent package imports as
    env = {"VECTOR_STORE": "milvus", "MILVUS_URI": str(tmp_path / "other.db")}
    line = _one_line(_invoke(["search", "anything"], env, monkeypatch))
    assert "pip install -e '.[milvus]'" in line


def test_ask_json_answers_the_seed_canary_from_milvus(
    seeds_dir: Path, lite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m index rebuild` then `python -m bot ask --json`, as a user runs them."""
    env = {
        "VECTOR_STORE": "milvus",
        "MILVUS_URI": lite_uri,
        "MILVUS_COLLECTION": "ask_cli",
        "ARTICLES_DIR": str(seeds_dir),
    }
    built = _invoke(["rebuild", "--json", "--quiet"], env, monkeypatch)
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["published"] is True
    result = CliRunner().invoke(bot_cli, ["ask", "--json", "what did Obama say to Putin?"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"question", "answer", "found", "citations", "retrieved"}
    assert data["found"] is True and "cut it out" in data["answer"]
    first = data["citations"][0]
    assert first["n"] == 1 and "[1]" in data["answer"]
    assert first["article_id"] == "000_39a60bc8d7f6d11b.txt"
    assert first["chunk_id"] in {r["chunk_id"] for r in data["retrieved"]}
    seed = (seeds_dir / "000_39a60bc8d7f6d11b.txt").read_text(encoding="utf-8")
    assert first["quote"] in seed
    assert not Path("data").exists()  # nothing went to a local index folder


def test_stores_share_one_client_per_uri(lite_uri: str) -> None:
    from index.milvus_store import MilvusConfig

    a, b = MilvusStore(MilvusConfig(lite_uri, "x")), MilvusStore(MilvusConfig(lite_uri, "x"))
    assert a.client is b.client


def test_a_model_of_another_vector_family_re_embeds_everything(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder
) -> None:
    folder = write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)
    rebuild(settings, lambda: embedder)  # fp32 vectors
    (folder / "bakery.txt").write_text(ARTICLES["bakery.txt"] + " It sells out by nine.")
    int8 = CountingEmbedder(embedder)
    int8.backend, int8.quantization = "onnx-int8", "avx2"  # what an int8 model reports
    report = rebuild(settings, lambda: int8)
    assert (report.updated, report.unchanged, report.full) == (4, 0, True)
    assert {t.split("\n", 1)[0] for t in int8.embedded} == {
        text.split("\n", 1)[0] for text in ARTICLES.values()
    }
    searcher = open_searcher(settings, int8)  # type: ignore[arg-type]
    assert searcher.stored.meta.embedding_backend == "onnx-int8"  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the article cache


def _hits(settings: IndexSettings, embedder) -> list[list[tuple[str, int, int, float]]]:
    searcher = open_searcher(settings, embedder)
    questions = ["harbour master dredging", "frost in the valley", "telescope mirror"]
    return [
        [(h.article_id, h.start, h.end, round(h.score, 4)) for h in found]
        for mode in ("hybrid", "dense", "lexical")
        for found in (searcher.search(q, k=3, mode=mode) for q in questions)
    ]


def test_a_rebuild_parses_only_the_changed_file_and_writes_what_it_would_without(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder, caplog
) -> None:
    """The same two rebuilds into two collections, the second one's cache deleted between."""
    folder = write_articles(tmp_path / "articles", ARTICLES)
    cached = milvus_settings(tmp_path, lite_uri, request)
    fresh = cached.model_copy(
        update={"milvus_collection": f"{cached.milvus_collection}_fresh",
                "index_dir": tmp_path / "fresh"}
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="index.rebuild"):
        rebuild(cached, lambda: embedder)
        assert "article cache: 0 files reused, 4 parsed" in caplog.messages
        rebuild(fresh, lambda: embedder)
        (folder / "orchard.txt").write_text(
            ARTICLES["orchard.txt"].replace("minus six", "minus nine"), encoding="utf-8"
        )
        caplog.clear()
        report = rebuild(cached, lambda: embedder)
        assert "article cache: 3 files reused, 1 parsed" in caplog.messages
        (fresh.index_dir / CACHE_FILE).unlink()
        caplog.clear()
        assert rebuild(fresh, lambda: embedder).published
        assert "article cache: 0 files reused, 4 parsed" in caplog.messages
    assert (report.updated, report.unchanged, report.published) == (1, 3, True)
    assert {"plan", "write"} <= set(report.phases)

    a, b = open_searcher(cached, embedder).stored, open_searcher(fresh, embedder).stored
    assert a.articles() == b.articles()
    rows = [r for x in a.articles() for r in range(x.first_chunk, x.first_chunk + x.n_chunks)]
    assert a.chunk_rows(rows) == b.chunk_rows(rows)
    assert a.chunk_rows(rows, text=False) == {
        r: {k: v for k, v in m.items() if k != "text"} for r, m in b.chunk_rows(rows).items()
    }
    assert _hits(cached, embedder) == _hits(fresh, embedder)


# ---------------------------------------------------------------- one rebuild at a time


def test_a_second_rebuild_is_refused_while_one_runs(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder, monkeypatch
) -> None:
    write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)
    config = milvus_config(settings)
    assert config is not None
    with milvus_rebuild_lock(config, 60):  # a rebuild of this machine (the Lite file lock)
        with pytest.raises(RebuildBusy, match=r"^another rebuild of Milvus collection"):
            rebuild(settings, never())
        env = {
            "VECTOR_STORE": "milvus", "MILVUS_URI": lite_uri,
            "MILVUS_COLLECTION": settings.milvus_collection,
            "ARTICLES_DIR": str(tmp_path / "articles"),
        }  # fmt: skip
        line = _one_line(_invoke(["rebuild", "--json"], env, monkeypatch))  # as FAISS's
        assert "another rebuild of Milvus collection" in line and "try again" in line

    other = RebuildLease(MilvusStore(config), 60)  # one on another machine: only its row
    other.acquire()
    with pytest.raises(RebuildBusy, match=r"another rebuild .*pid \d+, lease until"):
        rebuild(settings, never())
    other.release()
    assert rebuild(settings, lambda: embedder).published
    assert other.claims() == []


def test_a_lapsed_lease_is_taken_over_and_its_holder_stops(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder
) -> None:
    write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)
    config = milvus_config(settings)
    assert config is not None
    # a rebuild killed two minutes ago (by its clock, its lease lapsed a minute ago)
    stale = RebuildLease(MilvusStore(config), 60, clock=lambda: time.time() - 120)
    stale.acquire()
    assert [c.owner for c in stale.claims()] == [stale.owner]
    assert rebuild(settings, lambda: embedder).published
    assert stale.claims() == [], "the lapsed row was deleted, the new one released"
    # were the old holder only stalled, it finds out at its next renewal and stops
    assert stale.renew() is False
    with pytest.raises(RebuildBusy, match="lost its lock"):
        stale.check()


def test_the_lease_is_renewed_while_a_rebuild_runs(
    lite_uri: str, request: pytest.FixtureRequest
) -> None:
    from index.milvus_store import MilvusConfig

    config = MilvusConfig(lite_uri, request.node.name)
    with milvus_rebuild_lock(config, 3) as lease:
        [before] = lease.claims()
        time.sleep(3.5)  # longer than the lease: only renewals keep it
        lease.check()
        [after] = lease.claims()
        assert after.owner == lease.owner and after.expires_at > before.expires_at
        with pytest.raises(RebuildBusy):
            RebuildLease(MilvusStore(config), 60).acquire()
    assert lease.claims() == []


def test_a_failed_rebuild_releases_the_lock_and_keeps_no_cache(
    tmp_path: Path, lite_uri: str, request: pytest.FixtureRequest, embedder
) -> None:
    write_articles(tmp_path / "articles", ARTICLES)
    settings = milvus_settings(tmp_path, lite_uri, request)

    def broken():
        raise EmbedderUnavailable("no model here")

    with pytest.raises(EmbedderUnavailable):
        rebuild(settings, broken)
    assert not (tmp_path / "index" / CACHE_FILE).exists(), "saved only after success"
    config = milvus_config(settings)
    assert config is not None
    assert RebuildLease(MilvusStore(config), 60).claims() == []
    assert rebuild(settings, lambda: embedder).published  # neither lock is left held
    assert (tmp_path / "index" / CACHE_FILE).is_file()
