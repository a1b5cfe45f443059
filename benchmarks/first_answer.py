"""How soon `python -m bot` answers its first question, as a user starting it sees it.

Usage::

    python benchmarks/first_answer.py                  # 5 timed runs after a warm-up
    python benchmarks/first_answer.py --runs 9 --json
    nice -n -5 python benchmarks/first_answer.py       # shielded from other load (root)

Each run starts the terminal chat exactly as a user would, `echo QUESTION | python -m bot`
(no DISCORD_TOKEN, no LLM, the sample articles of `articles/`), and reads its stdout as it
comes, with a timestamp per line. Two times are reported per run, from just before the
process is spawned:

* answer: the first line of the answer appearing (the line after the echoed
  `question> ...`), which is what a user waits for;
* exit: the process ending (shutdown included: threads joined, files closed).

Plus the process's user and system CPU seconds, which other load on a shared machine
disturbs less than the wall clock. One warm-up run first builds the index in a temporary
INDEX_DIR (and fills the model export cache if empty); it is not timed. Python's bytecode
cache is on (in a temporary PYTHONPYCACHEPREFIX), as in any ordinary installation, even
when this shell sets PYTHONDONTWRITEBYTECODE; `--no-bytecode-cache` measures without it.
The load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTION = "How much did the bridge repairs cost?"
PROMPT = "question> "  # bot/transports/terminal.py echoes each piped question after it
# Settings that would turn the run into something else (Discord, an LLM, other folders).
CLEARED_PREFIXES = ("DISCORD_", "LLM_", "INDEX_", "ARTICLES_", "VECTOR_STORE", "MILVUS_")


@dataclass(frozen=True, slots=True)
class Run:
    answer_s: float
    exit_s: float
    user_s: float
    sys_s: float
    answer: str


def child_env(tmp: Path, bytecode_cache: bool, pycache: Path | None = None) -> dict[str, str]:
    """The environment of a run in `tmp`: this repository's code, none of the shell's
    settings (nor a .env: the run's folder has none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        INDEX_DIR=str(tmp / "index"),
        ARTICLES_DIR=str(REPO / "articles"),
        CONVERSATIONS_DB=str(tmp / "conversations.sqlite"),
        FEEDBACK_DB=str(tmp / "feedback.sqlite"),
        HF_HUB_OFFLINE="1",
    )
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache or tmp / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(question: str, env: dict[str, str], cwd: Path) -> Run:
    """One start of the chat in `cwd`, timed from just before the spawn."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    errors: list[str] = []
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
    drain.start()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(question + "\n")
    proc.stdin.close()
    answer_s, answer = None, ""
    for line in proc.stdout:
        if answer_s is None and line.strip() and not line.startswith(PROMPT):
            answer_s, answer = time.perf_counter() - started, line.strip()
    code = proc.wait()
    exit_s = time.perf_counter() - started
    drain.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0 or answer_s is None:
        raise SystemExit(f"python -m bot failed (exit {code}): {''.join(errors)[-2000:]}")
    return Run(
        answer_s=answer_s,
        exit_s=exit_s,
        user_s=after.ru_utime - before.ru_utime,
        sys_s=after.ru_stime - before.ru_stime,
        answer=answer,
    )


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed runs (after one warm-up).")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode_cache",
        action="store_false",
        help="Run with PYTHONDONTWRITEBYTECODE=1 (every module compiled at each start).",
    )
    parser.add_argument(
        "--pycache-dir",
        type=Path,
        help="Keep the bytecode cache here (default: a temporary folder), so that the next "
        "benchmark's warm-up does not compile every installed module again.",
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="first-answer-") as tmp:
        env = child_env(Path(tmp), args.bytecode_cache, args.pycache_dir)
        warm = time.perf_counter()
        run_once(args.question, env, Path(tmp))  # builds the index (and bytecode cache)
        warm_s = time.perf_counter() - warm
        load_before = os.getloadavg()
        runs = [run_once(args.question, env, Path(tmp)) for _ in range(max(1, args.runs))]
        load_after = os.getloadavg()

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "nice": os.nice(0),
        "bytecode_cache": args.bytecode_cache,
        "question": args.question,
        "answer": runs[0].answer[:100],
        "warm_up_s": round(warm_s, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "runs": [asdict(r) | {"answer": None} for r in runs],
        "answer_s": summary([r.answer_s for r in runs]),
        "exit_s": summary([r.exit_s for r in runs]),
        "user_cpu_s": summary([r.user_s for r in runs]),
        "sys_cpu_s": summary([r.sys_s for r in runs]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['date']}, {result['machine']}, nice {result['nice']}, bytecode cache "
          f"{'on' if args.bytecode_cache else 'off'}")  # fmt: skip
    print(f"question: {args.question!r} -> {result['answer']!r}")
    print(f"warm-up (builds the index): {warm_s:.2f} s; load average before "
          f"{load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")  # fmt: skip
    print("\nrun | answer s | exit s | user CPU s | sys CPU s")
    print("---|---|---|---|---")
    for i, r in enumerate(runs, 1):
        print(f"{i} | {r.answer_s:.2f} | {r.exit_s:.2f} | {r.user_s:.2f} | {r.sys_s:.2f}")
    print("\n| | p50 | min | max |\n|---|---|---|---|")
    for key, label in (("answer_s", "answer printed, s"), ("exit_s", "start to exit, s"),
                       ("user_cpu_s", "user CPU, s"), ("sys_cpu_s", "system CPU, s")):  # fmt: skip
        s = result[key]
        print(f"| {label} | {s['p50']:.2f} | {s['min']:.2f} | {s['max']:.2f} |")


if __name__ == "__main__":
    main()
