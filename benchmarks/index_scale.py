"""How the serving process scales: load time, memory, hybrid search latency and recall at 100k
and 1M chunks, per FAISS index type and vector storage.

Not a test: it prints figures (many minutes on a small CPU; the 1M indexes take long to
build). Run it from the repository root::

    .venv/bin/python benchmarks/index_scale.py                      # 100k chunks
    .venv/bin/python benchmarks/index_scale.py --large              # and 1M
    .venv/bin/python benchmarks/index_scale.py --kinds flat,ivf-sq8 --json > scale.json
    # the figures in docs/benchmarks.md: 100k with the defaults, then
    .venv/bin/python benchmarks/index_scale.py --sizes "" --large --large-kinds flat,ivf-sq8 \
        --queries 200 --warmup 40 --json

Everything expensive is cached under --work (default /tmp/scale): real vectors, synthetic
vectors, written versions, built indexes (with their build times); delete it to start over.

What is real and what is synthesised (`benchmarks/scale_data.py`):

1. Vectors are synthesised from a Gaussian mixture fitted to ~2,600 real chunk vectors
   (SQuAD 2.0 dev paragraphs and ~150-word pieces of QuAC sections, embedded by the
   packaged all-MiniLM-L6-v2), then re-normalised. The printout compares nearest-neighbour
   cosines of the real set and of a synthetic sample of the same size.
2. Text is passages of 100-200 words assembled from real SQuAD/QuAC sentences in random
   order (ten per article); a passage's text is unrelated to its vector. BM25 runs over it.
3. Queries are real SQuAD questions, embedded beforehand: latencies exclude the query
   embedding (a few ms; `benchmarks/embedding_backends.py`). "hybrid" is retrieval alone
   (`passages="chunks"`: FAISS, BM25, exact re-scoring, fusion, chunk metadata), what the
   index decides; "shaped" adds the bot's default passage shaping (sentences, merging,
   duplicate detection over whole article texts), a per-result cost that does not grow
   with the collection.
4. Everything is measured through the serving path: one version written by the real store
   (`VersionWriter`: SQLite, vectors.npy, BM25, flat FAISS) per size; each other index type
   is the same version with its own dense.faiss (the other files hard-linked, the manifest
   re-signed), opened by `open_current` and searched by `Searcher` (hybrid, k=10, shaped
   passages, the bot's default) in a fresh process whose page cache for the version was
   dropped first (`posix_fadvise(DONTNEED)`): "load" is open + FAISS + BM25 + Searcher,
   cold; RSS is VmRSS (anonymous + mapped file pages) of that process, which holds no
   embedding model. `--warmup` queries run before the timed ones. Each timed question is
   first searched shaped ("shaped": its BM25 postings, IVF lists and articles read from
   disk on first touch; page faults and KiB read per query are printed), then as bare
   chunks ("hybrid", pages now cached), then shaped again by a fresh `Searcher` ("shaped
   warm": no article cached in the process, the version in the page cache, as in a
   long-running bot on a machine whose memory holds it). So "hybrid" and "shaped warm"
   compare like with like; "shaped" adds the first reads from disk.
5. Recall@10 is the share of the exact (flat) index's top 10 chunks that the index returns,
   for hybrid search and for dense search alone, with `passages="chunks"`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scale_data import (
    PASSAGES_PER_ARTICLE,
    Mixture,
    embed_real,
    fit_mixture,
    load_real_text,
    nn_stats,
    passages,
)

from index import ann
from index.settings import DEFAULT_EMBEDDING_MODEL

K = 10
KINDS = ("flat", "hnsw-sq8", "ivf-sq8", "ivf-pq", "ivf", "hnsw", "hnsw-fp16")
SIZES = (100_000,)
LARGE = 1_000_000
MIXTURE_COMPONENTS = 64
MIXTURE_REG = 5e-5


def rss() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = round(int(line.split()[1]) / 1024, 1)  # MiB
    return out


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


# ---------------------------------------------------------------- data


def mixture(work: Path, real: np.ndarray, log) -> tuple[Mixture, dict[str, Any]]:
    cache = work / "mixture.npz"
    if cache.exists():
        with np.load(cache) as d:
            mix = Mixture(d["weights"], d["means"], d["chol"])
    else:
        t0 = time.perf_counter()
        mix = fit_mixture(real, MIXTURE_COMPONENTS, MIXTURE_REG)
        np.savez(cache, weights=mix.weights, means=mix.means, chol=mix.chol)
        log(f"fitted a {MIXTURE_COMPONENTS}-component mixture in {time.perf_counter() - t0:.0f}s")
    sample = mix.sample(len(real), seed=99)
    stats = {
        "real": nn_stats(real),
        "synthetic": nn_stats(sample),
        "synthetic_to_real": nn_stats(sample, real),
        "real_count": len(real),
    }
    log(f"nearest-neighbour cosine among {len(real)} vectors (p10 / p50 / p90; mean pairwise):")
    for name in ("real", "synthetic", "synthetic_to_real"):
        s = stats[name]
        log(
            f"  {name:18} {s['nn_p10']:.3f} / {s['nn_p50']:.3f} / {s['nn_p90']:.3f};"
            f" {s['mean_cos']:.3f}"
        )
    return mix, stats


def synthetic_vectors(work: Path, mix: Mixture, size: int) -> np.ndarray:
    path = work / f"vectors-{size}.npy"
    if not path.exists():
        np.save(path, mix.sample(size, seed=size))
    return np.load(path, mmap_mode="r")


def write_base(work: Path, size: int, vectors: np.ndarray, log) -> Path:
    """The flat version of `size` chunks, written by the real store (cached)."""
    from index.embedder import canonical_model_name
    from index.models import Article, Chunk
    from index.store import VersionWriter, current_version_name

    root = work / str(size) / "flat"
    if current_version_name(root) is not None:
        return root
    shutil.rmtree(root, ignore_errors=True)
    text = load_real_text()
    t0 = time.perf_counter()
    writer = VersionWriter(root, vectors.shape[1])
    bodies = passages(text, size, seed=size)
    for a, first in enumerate(range(0, size, PASSAGES_PER_ARTICLE)):
        own = bodies[first : first + PASSAGES_PER_ARTICLE]
        aid = f"synthetic-{a:07d}"
        chunks, at = [], 0
        for i, body in enumerate(own):
            chunks.append(Chunk(aid, i, at, at + len(body), body, int(len(body.split()) * 1.3)))
            at += len(body) + 2
        article = Article(aid, text.titles[a % len(text.titles)], "\n\n".join(own), aid, aid)
        writer.add(article, f"{a:064x}", chunks, np.asarray(vectors[first : first + len(own)]))
    manifest = writer.publish(
        {"model": canonical_model_name(DEFAULT_EMBEDDING_MODEL), "chunker": {}},
        ann.AnnConfig(index_type="flat"),
        256,
    )
    log(f"wrote the {manifest.chunks:,}-chunk version in {time.perf_counter() - t0:.0f}s")
    return root


def build_index_file(work: Path, size: int, kind: str, vectors: np.ndarray, log) -> float:
    """Build the index of `kind` into work/<size>/<kind>.faiss (cached); its build seconds."""
    import faiss

    path = work / str(size) / f"{kind}.faiss"
    done = path.with_suffix(".json")
    if done.exists():
        return float(json.loads(done.read_text())["build_s"])
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    index, built = ann.build_index(np.asarray(vectors), ann.AnnConfig(index_type=kind))
    build_s = time.perf_counter() - t0
    assert built == kind
    faiss.write_index(index, str(path))
    done.write_text(json.dumps({"build_s": round(build_s, 2)}))
    log(f"  built {kind} over {size:,} vectors in {build_s:.0f}s")
    return build_s


def build(work: Path, size: int, kind: str, vectors: np.ndarray, log) -> tuple[Path, float]:
    """The version of `kind`: the flat one with its own dense.faiss (other files linked)."""
    from index.store import _manifest_digest, current_version_dir, file_digest

    base = current_version_dir(work / str(size) / "flat")
    if kind == "flat":
        info = json.loads((base / "manifest.json").read_text())
        return base.parent.parent, float(info["build_seconds"])
    build_s = build_index_file(work, size, kind, vectors, log)
    folder = work / str(size) / kind
    if (folder / "CURRENT").exists():
        return folder, build_s
    shutil.rmtree(folder, ignore_errors=True)
    version = folder / "versions" / base.name
    for path in base.rglob("*"):
        rel = path.relative_to(base)
        if path.is_dir():
            (version / rel).mkdir(parents=True, exist_ok=True)
        elif rel.name not in ("dense.faiss", "manifest.json"):
            (version / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, version / rel)
    os.link(work / str(size) / f"{kind}.faiss", version / "dense.faiss")
    data = json.loads((base / "manifest.json").read_text())
    data["index_type"] = kind
    data["files"]["dense.faiss"] = {
        "size": (version / "dense.faiss").stat().st_size,
        "sha256": file_digest(version / "dense.faiss"),
    }
    data.pop("checksum", None)
    data["checksum"] = _manifest_digest(data)
    (version / "manifest.json").write_text(json.dumps(data, indent=2))
    (folder / "CURRENT").write_text(base.name + "\n")
    return folder, build_s


def drop_cache(root: Path) -> None:
    """Evict the version's files from the page cache: the next open reads from disk."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# ---------------------------------------------------------------- the serving process


class CachedQueries:
    """Query vectors computed beforehand, so the timings are of our search code alone."""

    name = DEFAULT_EMBEDDING_MODEL

    def __init__(self, questions: list[str], vectors: np.ndarray) -> None:
        self._vectors = dict(zip(questions, vectors, strict=True))
        self.dimension = vectors.shape[1]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])


def serve(root: Path, work: Path, queries: int, warmup: int, rescore: int) -> dict[str, Any]:
    """In a fresh process: open, load, search; timings, RSS and the top-10 chunk rows."""
    t_import = time.perf_counter()
    from index.search import Searcher
    from index.store import open_current

    imported = time.perf_counter() - t_import
    with np.load(work / "real.npz") as d:
        questions = [str(q) for q in d["questions"]][:queries]
        qvecs = d["queries"][:queries]
    cached = CachedQueries(questions, qvecs)
    rss_start = rss()
    t0 = time.perf_counter()
    stored = open_current(root, ann.AnnConfig(index_type="auto", rescore=rescore))
    stored.dense  # noqa: B018
    stored.lexical  # noqa: B018
    searcher = Searcher(stored, cached)
    load_s = time.perf_counter() - t0
    rss_load = rss()
    first: list[float] = []
    for q in questions[:warmup]:
        t = time.perf_counter()
        searcher.search(q, k=K)
        first.append(time.perf_counter() - t)
    timed: list[float] = []
    cpu: list[float] = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for q in questions[warmup:]:
        t, c = time.perf_counter(), time.process_time()
        searcher.search(q, k=K)
        timed.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    after = resource.getrusage(resource.RUSAGE_SELF)
    first_touch = {  # per query: what reading the pages of its terms, lists and articles cost
        "user_ms": round((after.ru_utime - before.ru_utime) / max(len(timed), 1) * 1e3, 2),
        "sys_ms": round((after.ru_stime - before.ru_stime) / max(len(timed), 1) * 1e3, 2),
        "major_faults": round((after.ru_majflt - before.ru_majflt) / max(len(timed), 1), 1),
        "read_kib": round((after.ru_inblock - before.ru_inblock) / 2 / max(len(timed), 1), 1),
    }
    rss_after = rss()
    chunks = Searcher(stored, cached, passages="chunks")
    top: dict[str, list[list[str]]] = {}
    retrieval: dict[str, list[float]] = {}
    retrieval_cpu: dict[str, list[float]] = {}
    for mode in ("hybrid", "dense"):
        top[mode], retrieval[mode], retrieval_cpu[mode] = [], [], []
        for q in questions:
            t, c = time.perf_counter(), time.process_time()
            top[mode].append([h.chunk_id for h in chunks.search(q, k=K, mode=mode)])
            retrieval[mode].append(time.perf_counter() - t)
            retrieval_cpu[mode].append(time.process_time() - c)
    # The same questions again through a fresh Searcher (no article cached in the process),
    # now that the page cache holds what they read: a long-running bot on a machine whose
    # memory holds the version. The passes above read their pages from disk first.
    warm_searcher = Searcher(stored, cached)
    warm: list[float] = []
    warm_cpu: list[float] = []
    for q in questions[warmup:]:
        t, c = time.perf_counter(), time.process_time()
        warm_searcher.search(q, k=K)
        warm.append(time.perf_counter() - t)
        warm_cpu.append(time.process_time() - c)
    return {
        "index_type": stored.manifest.index_type,
        "import_s": round(imported, 2),
        "load_s": round(load_s, 3),
        "rss_mib_start": rss_start,
        "rss_mib_after_load": rss_load,
        "rss_mib_after_queries": rss_after,
        "warmup": {"queries": len(first), **percentiles(first)},
        "hybrid": {"queries": len(timed), **percentiles(timed)},
        "hybrid_chunks": {"queries": len(timed), **percentiles(retrieval["hybrid"][warmup:])},
        "dense_chunks": {"queries": len(timed), **percentiles(retrieval["dense"][warmup:])},
        "cpu": {
            "hybrid_chunks": percentiles(retrieval_cpu["hybrid"][warmup:]),
            "dense_chunks": percentiles(retrieval_cpu["dense"][warmup:]),
            "hybrid_shaped": percentiles(cpu),
            "hybrid_shaped_warm": percentiles(warm_cpu),
        },
        "hybrid_warm": {"queries": len(warm), **percentiles(warm)},
        "first_touch": first_touch,
        "_top": top,
    }


def run_serving(root: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    drop_cache(root)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [
        sys.executable, __file__, "--serve", str(root), "--work", str(work),
        "--queries", str(args.queries), "--warmup", str(args.warmup),
        "--rescore", str(args.rescore),
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"serving {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    shares = [len(set(f) & set(e)) / max(len(e), 1) for f, e in zip(found, exact, strict=True)]
    return round(float(np.mean(shares)), 4)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--large", action="store_true", help=f"also {LARGE:,} chunks")
    parser.add_argument("--kinds", default=",".join(KINDS), help="index types measured")
    parser.add_argument("--large-kinds", default=None, help="index types at 1M (default: all)")
    parser.add_argument("--queries", type=int, default=300, help="SQuAD questions (with warmup)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rescore", type=int, default=ann.AnnConfig().rescore)
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads (OMP)")
    parser.add_argument(
        "--reuse-exact", action="store_true", help="skip flat: reuse its saved top 10s"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        print(json.dumps(serve(args.serve, args.work, args.queries, args.warmup, args.rescore)))
        return 0

    import faiss

    faiss.omp_set_num_threads(args.threads)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if not args.json:
            print(line, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    real = embed_real(work, max(args.queries, 600), log)
    mix, stats = mixture(work, real["chunks"], log)
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([LARGE] if args.large else [])
    rows: list[dict[str, Any]] = []
    for size in sizes:
        vectors = synthetic_vectors(work, mix, size)
        kinds = args.kinds.split(",")
        if size >= LARGE and args.large_kinds:
            kinds = args.large_kinds.split(",")
        write_base(work, size, vectors, log)
        exact: dict[str, list[list[str]]] | None = None
        saved = work / str(size) / f"exact-top-{args.queries}.json"
        if args.reuse_exact and saved.exists():
            exact = json.loads(saved.read_text())
        for kind in ["flat", *[k for k in kinds if k != "flat"]]:
            if kind == "flat" and exact is not None:
                continue  # --reuse-exact: the exact ranking of an earlier run
            root, build_s = build(work, size, kind, vectors, log)
            result = run_serving(root, work, args)
            top = result.pop("_top")
            if kind == "flat":
                exact = top
                saved.write_text(json.dumps(top))
            assert exact is not None
            row = {
                "chunks": size,
                "build_s": round(build_s, 1),
                "dense_faiss_mib": round(
                    sum(p.stat().st_size for p in root.rglob("dense.faiss")) / 2**20, 1
                ),
                **result,
                "recall_at_10": {m: recall(top[m], exact[m]) for m in ("hybrid", "dense")},
            }
            rows.append(row)
            log(
                f"{size:>9,} {row['index_type']:9} build {row['build_s']:7.1f}s"
                f" | load {row['load_s']:.3f}s | RSS {row['rss_mib_after_load']['VmRSS']:6.0f}"
                f" -> {row['rss_mib_after_queries']['VmRSS']:6.0f} MiB"
                f" (anon {row['rss_mib_after_queries']['RssAnon']:5.0f})"
                f" | hybrid p50/p95 {row['hybrid_chunks']['p50_ms']:.1f}/"
                f"{row['hybrid_chunks']['p95_ms']:.1f} ms, shaped {row['hybrid']['p50_ms']:.1f}/"
                f"{row['hybrid']['p95_ms']:.1f} (first {row['warmup']['p50_ms']:.1f}/"
                f"{row['warmup']['p95_ms']:.1f}); CPU {row['cpu']['hybrid_chunks']['p50_ms']:.1f}/"
                f"{row['cpu']['hybrid_chunks']['p95_ms']:.1f}, shaped "
                f"{row['cpu']['hybrid_shaped']['p50_ms']:.1f}/"
                f"{row['cpu']['hybrid_shaped']['p95_ms']:.1f}, shaped warm "
                f"{row['cpu']['hybrid_shaped_warm']['p50_ms']:.1f}/"
                f"{row['cpu']['hybrid_shaped_warm']['p95_ms']:.1f}"
                f" (first touch: {row['first_touch']['major_faults']:.0f} faults,"
                f" {row['first_touch']['read_kib']:.0f} KiB read per query)"
                f" | recall@10 hybrid {row['recall_at_10']['hybrid']:.3f}"
                f" dense {row['recall_at_10']['dense']:.3f}"
            )
    if args.json:
        print(
            json.dumps(
                {
                    "machine": {
                        "platform": platform.platform(),
                        "cpus": os.cpu_count(),
                        "faiss_threads": args.threads,
                    },
                    "date": datetime.now(UTC).isoformat(timespec="minutes"),
                    "nearest_neighbour_cosine": stats,
                    "rescore": args.rescore,
                    "rows": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
