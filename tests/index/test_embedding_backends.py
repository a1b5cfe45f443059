"""Embedding backends: the ONNX export made once and reused, its vectors and tokenizer
faithful to the torch model, and an index never queried with another backend's vectors.

The int8 model is exported into the default cache (as the CLI would), once per machine; a
session fixture loads it once per run. The concurrent first use from two processes exports
into a fresh folder and is marked slow.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.embedder import (
    DEFAULT_BACKEND,
    FP32_FILE,
    cpu_quantization,
    default_cache_dir,
    ensure_exported,
    load_embedder,
    mappable_file,
    published_backend,
    quantized_file,
    resolve_backend,
    resolve_model_path,
)
from index.errors import IndexMismatch
from index.rebuild import rebuild
from index.search import Searcher
from index.settings import DEFAULT_EMBEDDING_MODEL, IndexSettings
from index.store import open_current

REPO = Path(__file__).resolve().parents[2]
ARTICLES = {
    "bridge.txt": "Harbour footbridge reopens\n"
    "The footbridge across the harbour reopened on Saturday after eight months of repairs "
    "that cost the town council 2.4 million euros. Cyclists must dismount on the span.",
    "orchard.txt": "Community orchard opens\n"
    "Residents may pick the apples and pears of the new community orchard on Sundays. "
    "Volunteers planted forty trees on the old railway embankment last spring.",
    "choir.txt": "Choir wins regional contest\n"
    "The town's youth choir won the regional contest with a programme of folk songs. "
    "Its conductor said the singers had rehearsed twice a week since January.",
}
TEXTS = [
    "How much did the bridge repairs cost?",
    "The footbridge across the harbour reopened after eight months of repairs.",
    "Café naïve — Ünïcode, 東京 and emoji 🎉 in one line",
    "word " * 400,  # longer than max_seq_length: truncated the same way
]


@pytest.fixture(scope="session")
def int8(embedder):
    """The packaged model on onnx-int8, from the default cache (exported there once)."""
    return load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx-int8")


@pytest.fixture(scope="session")
def fp32_onnx(int8):
    return load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx")


def write_articles(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")


def test_int8_preset_follows_the_cpu_flags():
    assert cpu_quantization({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "x86_64") == (
        "avx512_vnni"
    )
    assert cpu_quantization({"avx2", "avx512f", "avx512bw"}, "x86_64") == "avx512"
    assert cpu_quantization({"avx2", "fma"}, "x86_64") == "avx2"
    assert cpu_quantization({"asimd"}, "aarch64") == "arm64"
    assert cpu_quantization(set(), "arm64") == "arm64"


def test_auto_follows_the_index_else_the_measured_default():
    assert resolve_backend("auto", None) == DEFAULT_BACKEND
    assert resolve_backend("auto", "torch") == DEFAULT_BACKEND == "torch"
    assert resolve_backend("auto", "onnx") == "torch"  # fp32 either way: the faster builder
    # questions on an fp32 index: the same vectors from the backend that starts fastest
    assert resolve_backend("auto", "torch", serving=True) == "onnx"
    assert resolve_backend("auto", "onnx-int8") == "onnx-int8"
    assert resolve_backend("auto", "onnx-int8", serving=True) == "onnx-int8"
    assert resolve_backend("onnx", "torch") == "onnx"  # explicit wins: checked at search
    with pytest.raises(ValueError, match="unknown embedding backend"):
        resolve_backend("tensorrt")


def test_onnx_tokenizer_matches_the_transformers_one(embedder, int8):
    """Chunk boundaries and token counts must not depend on the backend."""
    for text in TEXTS:
        for kwargs in ({"add_special_tokens": False, "return_offsets_mapping": True},
                       {"add_special_tokens": True}):  # fmt: skip
            ours, theirs = int8.tokenizer(text, **kwargs), embedder.tokenizer(text, **kwargs)
            assert ours["input_ids"] == list(theirs["input_ids"]), text
            if kwargs.get("return_offsets_mapping"):
                assert [tuple(o) for o in ours["offset_mapping"]] == [
                    tuple(o) for o in theirs["offset_mapping"]
                ]
    assert int8.tokenizer(TEXTS)["input_ids"] == [
        list(i) for i in embedder.tokenizer(TEXTS)["input_ids"]
    ]


def test_onnx_vectors_match_torch_and_int8_stays_close(embedder, int8, fp32_onnx):
    reference = embedder.encode_documents(TEXTS)
    exact = fp32_onnx.encode_documents(TEXTS, batch_size=2)  # batches of mixed padding
    assert np.allclose(np.sum(exact * reference, axis=1), 1.0, atol=1e-4)
    approx = int8.encode_documents(TEXTS)
    assert approx.dtype == np.float32 and approx.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(approx, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(approx * reference, axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.985, cosines
    # int8 activations are scaled per batch, so a text's vector moves a little with the
    # texts embedded beside it; fp32 backends give the same vector alone or in a batch
    alone = int8.encode_queries([TEXTS[0]])[0]
    assert float(alone @ approx[0]) > 0.98
    assert np.allclose(fp32_onnx.encode_queries([TEXTS[0]])[0], exact[0], atol=1e-5)
    assert int8.encode_documents([]).shape == (0, 384)


def test_export_is_cached_and_reused(int8, caplog: pytest.LogCaptureFixture):
    model_path = Path(resolve_model_path(DEFAULT_EMBEDDING_MODEL)[0])
    preset = cpu_quantization()
    caplog.set_level(logging.INFO, logger="index.embedder")
    path = ensure_exported(model_path, default_cache_dir(), preset, name=DEFAULT_EMBEDDING_MODEL)
    assert path.name == quantized_file(preset) and (path.parent / FP32_FILE).is_file()
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}
    started = time.perf_counter()
    again = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx-int8")
    assert time.perf_counter() - started < 30  # a session load, no export (that took ~20 s)
    assert again.quantization == preset and again.backend == "onnx-int8"
    assert {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()} == before
    assert "exporting" not in caplog.text
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_onnx_queries_never_import_torch(int8, tmp_path: Path):
    """What makes a fast start: the query path loads ONNX Runtime and tokenizers only."""
    code = (
        "import sys\n"
        "from index.embedder import load_embedder\n"
        "from index.settings import DEFAULT_EMBEDDING_MODEL as M\n"
        "e = load_embedder(M, 'cpu', 'onnx-int8')\n"
        "v = e.encode_queries(['How much did the bridge repairs cost?'])\n"
        "assert v.shape == (1, 384), v.shape\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
        "if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_querying_with_another_backend_is_refused_with_the_fix(
    tmp_path: Path, embedder, int8, fp32_onnx
):
    write_articles(tmp_path / "articles")
    settings = IndexSettings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index")
    rebuild(settings, lambda: embedder)
    stored = open_current(settings.index_dir)
    try:
        assert stored.manifest.embedding_backend == "torch"
        assert stored.manifest.embedding_quantization is None
        assert published_backend(settings.index_dir) == ("torch", None)  # auto follows it
        with pytest.raises(IndexMismatch) as caught:
            Searcher(stored, int8)
        message = str(caught.value)
        assert "onnx-int8" in message and "torch" in message
        assert "rebuild --full" in message and "EMBEDDING_BACKEND=auto" in message
        # the fp32 backends make the same vectors: either may query a torch-built index
        for fp32 in (embedder, fp32_onnx):
            [hit] = Searcher(stored, fp32).search("How much did the bridge repairs cost?", 1)
            assert hit.article_id == "bridge.txt"
    finally:
        stored.close()


def test_a_rebuild_on_another_backend_reembeds_everything(tmp_path: Path, embedder, int8):
    """Vectors carried over from torch and new int8 ones would be silently mixed: a rebuild
    with another backend (auto's default after --full, or an explicit setting) redoes all."""
    write_articles(tmp_path / "articles")
    settings = IndexSettings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index")
    rebuild(settings, lambda: embedder)
    (tmp_path / "articles" / "new.txt").write_text(
        "Library extends opening hours\nThe library now opens until nine on weekdays.",
        encoding="utf-8",
    )
    report = rebuild(settings, lambda: int8)  # auto: the loaded model decides
    assert (report.added, report.updated, report.unchanged) == (1, 3, 0)
    stored = open_current(settings.index_dir)
    try:
        m = stored.manifest
        assert (m.embedding_backend, m.embedding_quantization) == ("onnx-int8", cpu_quantization())
        hits = Searcher(stored, int8).search("How much did the bridge repairs cost?", 1)
        assert hits and hits[0].article_id == "bridge.txt"
    finally:
        stored.close()
    # an explicit setting that differs from the index forces a full re-embed at planning
    explicit = settings.model_copy(update={"embedding_backend": "torch"})
    report = rebuild(explicit, lambda: embedder)
    assert report.full and report.unchanged == 0 and report.updated == 4
    # and the same backend again carries everything over
    report = rebuild(explicit, lambda: embedder)
    assert (report.unchanged, report.updated, report.published) == (4, 0, False)


@pytest.mark.slow
def test_two_processes_exporting_at_once_share_one_complete_export(tmp_path: Path):
    """First use by two processes at once (a bot and a cron rebuild): one exports, the other
    waits for it; both load the same complete files and no temporary file is left."""
    cache = tmp_path / "cache"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from index.embedder import load_embedder\n"
        "from index.settings import DEFAULT_EMBEDDING_MODEL as M\n"
        "e = load_embedder(M, 'cpu', 'onnx-int8', Path(sys.argv[1]))\n"
        "print(e.encode_queries(['a question']).shape)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "(1, 384)"
    [folder] = [p for p in cache.iterdir() if p.is_dir()]
    names = sorted(p.name for p in folder.iterdir())
    int8 = quantized_file(cpu_quantization())
    mapped = mappable_file(int8)  # the copy ONNX Runtime memory-maps, weights in .data
    assert names == sorted([".lock", FP32_FILE, int8, mapped, f"{mapped}.data"])
    assert sum("exporting" in err for _, err in outs) == 1  # one of them did the work
