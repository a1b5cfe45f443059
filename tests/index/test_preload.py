"""A model preloaded in the background is handed to the first load that asks for it.

`python -m bot` starts loading its model before importing the rest of itself
(`bot/cli.py`); the service's lazy getter then takes that load over instead of loading a
second copy. These tests stand a counting fake in for the real load.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import index.embedder as embedder_module
from index.embedder import load_embedder, preload_embedder
from index.errors import EmbedderUnavailable


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
