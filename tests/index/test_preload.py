"""What makes the model ready soon after `python -m bot` starts.

The bot starts loading its model before importing the rest of itself (`bot/cli.py`),
choosing it from the published manifest read without the store; the service's lazy getter
then takes that load over instead of loading a second copy (a counting fake stands in for
the real load here). ONNX Runtime memory-maps the weights of a copy made once in the cache
instead of reading and copying them at every start.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import index.embedder as embedder_module
from index.embedder import (
    FP32_FILE,
    default_cache_dir,
    ensure_exported,
    load_embedder,
    mappable_file,
    peek_published_backend,
    preload_embedder,
    published_backend,
    resolve_model_path,
)
from index.errors import EmbedderUnavailable
from index.settings import DEFAULT_EMBEDDING_MODEL


class Loads:
    """Stands in for the real load: counts calls, returns a new object each time, and can
    be told to fail or to wait until released."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.failures = failures
        self.release = threading.Event()
        self.release.set()

    def __call__(self, *args: Any) -> object:
        self.calls.append(args)
        self.release.wait(10)
        if len(self.calls) <= self.failures:
            raise EmbedderUnavailable(f"load {len(self.calls)} failed")
        return object()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    fake = Loads()
    monkeypatch.setattr(embedder_module, "_load_embedder", fake)
    monkeypatch.setattr(embedder_module, "_preloaded", {})
    return fake


ARGS = ("some-model", "cpu", "onnx", None, None)


def test_the_first_matching_load_takes_the_preloaded_model(loads: Loads) -> None:
    loads.release.clear()  # still loading when it is asked for
    future = preload_embedder(*ARGS)
    threading.Timer(0.05, loads.release.set).start()
    model = load_embedder(*ARGS)
    assert model is future.result()
    assert len(loads.calls) == 1
    # handed over once: a later load is a load of its own
    assert load_embedder(*ARGS) is not model
    assert len(loads.calls) == 2


def test_a_load_with_other_arguments_leaves_the_preloaded_model(loads: Loads) -> None:
    future = preload_embedder("some-model", "cpu", "onnx")  # defaults as load_embedder's
    other = load_embedder("some-model", "cpu", "onnx-int8")
    assert other is not future.result()
    assert load_embedder("some-model", "cpu", "onnx") is future.result()
    assert loads.calls == [ARGS, ("some-model", "cpu", "onnx-int8", None, None)]


def test_a_failed_preload_is_loaded_again_where_the_model_is_needed(loads: Loads) -> None:
    loads.failures = 1
    future = preload_embedder(*ARGS)
    with pytest.raises(EmbedderUnavailable):
        future.result()
    model = load_embedder(*ARGS)
    assert model is not None and len(loads.calls) == 2


def test_when_loading_again_fails_too_its_own_error_is_raised(loads: Loads) -> None:
    loads.failures = 2
    preload_embedder(*ARGS)
    with pytest.raises(EmbedderUnavailable, match="load 2 failed"):
        load_embedder(*ARGS)


# ------------------------------------------------------- the manifest, read without the store


def test_the_peek_reads_what_the_store_publishes(seed_index: Path) -> None:
    assert peek_published_backend(seed_index) == published_backend(seed_index) is not None


def test_the_peek_gives_none_for_anything_unexpected(tmp_path: Path) -> None:
    root = tmp_path / "index"
    assert peek_published_backend(root) is None  # no folder
    root.mkdir()
    assert peek_published_backend(root) is None  # nothing published
    for pointer in ("missing-version", "../../etc", ".hidden", "", "\xff\xfe"):
        (root / "CURRENT").write_bytes(pointer.encode("latin-1"))
        assert peek_published_backend(root) is None, pointer
    version = root / "versions" / "v1"
    version.mkdir(parents=True)
    (root / "CURRENT").write_text("v1\n")
    for manifest in ("not json", "[1, 2]", "{}"):
        (version / "manifest.json").write_text(manifest)
        assert peek_published_backend(root) is None, manifest
    (version / "manifest.json").write_text(
        '{"embedding_backend": "onnx-int8", "embedding_quantization": "avx2"}'
    )
    assert peek_published_backend(root) == ("onnx-int8", "avx2")
    (version / "manifest.json").write_text('{"model": "m"}')  # before backends were recorded
    assert peek_published_backend(root) == ("torch", None)


def test_the_peek_never_waits_on_a_fifo(tmp_path: Path) -> None:
    root = tmp_path / "index"
    root.mkdir()
    os.mkfifo(root / "CURRENT")  # opening it for reading would block without O_NONBLOCK
    assert peek_published_backend(root) is None


# ------------------------------------------------------------ the weights, memory-mapped

TEXTS = ["How much did the bridge repairs cost?", "The footbridge reopened on Saturday."]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding only the fp32 export (copied from the user cache, made there if need
    be: exporting imports torch), so that this module makes the memory-mappable copy."""
    model_path = Path(resolve_model_path(DEFAULT_EMBEDDING_MODEL)[0])
    source = ensure_exported(model_path, default_cache_dir(), None, name=DEFAULT_EMBEDDING_MODEL)
    cache = tmp_path_factory.mktemp("cache")
    folder = cache / source.parent.name
    folder.mkdir()
    shutil.copy2(source, folder / FP32_FILE)
    return cache


def test_the_weights_are_mapped_from_a_copy_made_once(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = next(exported.iterdir())
    mapped = folder / mappable_file(FP32_FILE)
    data = folder / f"{mapped.name}.data"
    model = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx", exported)
    assert mapped.stat().st_size < 1_000_000 < 80_000_000 < data.stat().st_size
    mode = (folder / FP32_FILE).stat().st_mode
    assert mapped.stat().st_mode == data.stat().st_mode == mode  # readable as the export is
    assert not [p for p in folder.iterdir() if p.name.startswith((".staging", ".tmp"))]
    made = mapped.stat().st_mtime_ns
    again = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx", exported)
    assert mapped.stat().st_mtime_ns == made
    # the same vectors as from the whole file, bit for bit
    monkeypatch.setattr(embedder_module, "mappable_copy", lambda onnx_file: onnx_file)
    whole = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx", exported)
    vectors = model.encode_queries(TEXTS)
    assert np.array_equal(vectors, whole.encode_queries(TEXTS))
    assert np.array_equal(vectors, again.encode_queries(TEXTS))


def test_a_damaged_copy_falls_back_to_the_whole_file(
    exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = next(exported.iterdir())
    load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx", exported)  # makes the copy
    (folder / f"{mappable_file(FP32_FILE)}.data").write_bytes(b"truncated")
    caplog.set_level(logging.WARNING, logger="index.embedder")
    model = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx", exported)
    assert model.encode_queries(TEXTS).shape == (2, 384)
    assert "cannot load" in caplog.text
