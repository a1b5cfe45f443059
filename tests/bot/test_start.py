"""Starting `python -m bot`: the model loads while the rest starts, and nothing unneeded loads.

The first answer's latency itself is measured by `benchmarks/first_answer.py`, not here:
these tests check what makes it fast (which modules a start imports, the model preloaded
and handed over) and that the answer is the one the service gives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.formatting import answer_text
from bot.service import QAService
from bot.settings import Settings
from index.display import printable
from index.embedder import load_embedder
from index.settings import DEFAULT_EMBEDDING_MODEL

REPO = Path(__file__).resolve().parents[2]

# Imported only by what needs them: Discord, an LLM, building an index, Milvus, torch.
NOT_FOR_THE_TERMINAL = ("discord", "aiohttp", "httpx", "yaml", "frontmatter", "pymilvus", "torch")
# Not before `run` has started loading the model (nor for --help or a refused setting).
NOT_BEFORE_THE_MODEL = ("faiss", "bm25s", "scipy", "onnxruntime", *NOT_FOR_THE_TERMINAL)

PROBE = """
import sys
def loaded(names): return sorted(n for n in names if n in sys.modules)
import bot.cli
print(loaded(sys.argv[1].split(",")))
import bot.service, bot.transports.terminal
print(loaded(sys.argv[2].split(",")))
"""


def test_a_start_imports_only_what_the_terminal_chat_needs() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(NOT_BEFORE_THE_MODEL),
         ",".join(NOT_FOR_THE_TERMINAL)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    before_model, terminal = proc.stdout.splitlines()
    assert before_model == "[]", f"bot.cli imports {before_model}"
    assert terminal == "[]", f"the terminal chat imports {terminal}"


def test_a_start_over_a_built_index_answers_as_the_service_does(seed_index: Path) -> None:
    """The model is preloaded (the index exists) and handed to the service: same answer."""
    question = "What did Obama say to Putin?"
    proc = subprocess.run(
        [sys.executable, "-m", "bot"],
        input=f"{question}\n",
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "INDEX_DIR": str(seed_index)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "No DISCORD_TOKEN set: starting the terminal chat instead."
    onnx = load_embedder(DEFAULT_EMBEDDING_MODEL, "cpu", "onnx")  # what `auto` serves with
    service = QAService(Settings(index_dir=seed_index), embedder=onnx)
    expected = printable(answer_text(service.answer(question)))
    assert proc.stdout == f"question> {question}\n{expected}\n\n"
