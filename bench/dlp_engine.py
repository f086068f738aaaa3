"""DLP engine throughput and accuracy on the labelled corpus of `bench.dlp_corpus`.

``python -m bench.dlp_engine [--mb N] [--seed S] [--backend B ...] [--batch N]`` prints, per
backend, the engine's throughput (MB of UTF-8 text per second, one core) and precision,
recall and F1 per entity; ``run(mb)`` returns the same figures as a dict for the bench report.

What is timed is what the processor runs, two ways:

- per record: `Engine.scan_record` on each record, one engine call per record — what
  `hub.dlp.stage.DlpStage.protect` does for a single event;
- batched: `Engine.scan_records` on ``--batch`` records at a time (default 500, the
  processor's batch), one matcher pass per batch — what `DlpStage.protect_many` does, and
  what the processor's chains call.

Timing runs under the garbage-collector settings of the processor's stage process
(`hub.gc_policy`: start-up frozen, young threshold 50,000); ``--default-gc`` times with
CPython's defaults instead.

Every string field is scanned with its field name as context (free-text records are one
``notes`` field), at the policy's default threshold (``min_score`` 0.5), overlaps resolved.
Corpus generation, engine construction and sorting the findings for scoring are not timed;
the best of ``--repeat`` runs is kept. Wall-clock time is the figure (``mb_s``); process CPU
time is given too (``cpu_mb_s``), as the machine is shared and wall time then includes
other jobs' turns.

Matching rule: a finding is a true positive when its entity equals a label's entity in the
same text and the two spans overlap by at least half of the longer span (so "4111 1111"
out of a 19-character card number does not count, but a span off by a trailing character
does). Each label is matched at most once; unmatched findings are false positives,
unmatched labels false negatives.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from bench.dlp_corpus import Corpus, Label, generate_mb
from hub.dlp import native, registry
from hub.dlp.base import Finding
from hub.dlp.engine import Engine
from hub.gc_policy import streaming_gc

MIN_SCORE = 0.5
TARGET_MB_S = 20.0
BACKENDS = ("hyperscan", "re2", "re")
DEFAULT_GC = False  # --default-gc: time with CPython's collector defaults instead


def overlaps(finding: Finding, label: Label) -> bool:
    """At least half of the longer of the two spans is shared."""
    shared = min(finding.end, label.end) - max(finding.start, label.start)
    longest = max(finding.end - finding.start, label.end - label.start)
    return shared * 2 >= longest


def score(corpus: Corpus, found: list[list[list[Finding]]]) -> dict[str, dict[str, float]]:
    """Precision/recall/F1 per entity (and ``ALL``). ``found[record][field_no]`` lists the
    findings for that record's fields in order."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for record, per_field in zip(corpus.records, found, strict=True):
        for (name, _text), findings in zip(record.fields.items(), per_field, strict=True):
            fld = name if record.structured else None
            labels = [lb for lb in record.labels if lb.field == fld]
            used: set[int] = set()
            for f in findings:
                hit = next(
                    (
                        i
                        for i, lb in enumerate(labels)
                        if i not in used and lb.entity == f.entity and overlaps(f, lb)
                    ),
                    None,
                )
                if hit is None:
                    fp[f.entity] += 1
                else:
                    used.add(hit)
                    tp[f.entity] += 1
            for i, lb in enumerate(labels):
                if i not in used:
                    fn[lb.entity] += 1
    out: dict[str, dict[str, float]] = {}
    entities = sorted(set(tp) | set(fp) | set(fn))
    for entity in [*entities, "ALL"]:
        if entity == "ALL":
            t, p, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
        else:
            t, p, n = tp[entity], fp[entity], fn[entity]
        precision = t / (t + p) if t + p else 0.0
        recall = t / (t + n) if t + n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[entity] = {
            "tp": t,
            "fp": p,
            "fn": n,
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
        }
    return out


def scan_corpus(
    engine: Engine, corpus: Corpus, *, batch: int = 0
) -> tuple[float, float, list[list[list[Finding]]]]:
    """Wall and CPU seconds to scan every record — one `scan_record` call per record, or
    `scan_records` on `batch` records at a time — and the findings per field."""
    records = [record.fields for record in corpus.records]
    wall, cpu = time.perf_counter(), time.process_time()
    if batch:
        hits = [
            found
            for i in range(0, len(records), batch)
            for found in engine.scan_records(records[i : i + batch], min_score=MIN_SCORE)
        ]
    else:
        hits = [engine.scan_record(fields, min_score=MIN_SCORE) for fields in records]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    found: list[list[list[Finding]]] = []
    for record, record_hits in zip(corpus.records, hits, strict=True):
        by_field: dict[str, list[Finding]] = {}
        for ff in record_hits:
            by_field.setdefault(ff.field, []).append(ff.finding)
        found.append([by_field.get(name, []) for name in record.fields])
    return wall, cpu, found


def available_backends() -> list[str]:
    out = []
    for backend in BACKENDS:
        try:
            Engine([], backend=backend)  # type: ignore[arg-type]
        except (ImportError, ValueError):
            continue
        out.append(backend)
    return out


def gc_settings() -> AbstractContextManager[None]:
    """The garbage-collector settings of the processor's stage process, which runs the
    engine (`hub.gc_policy`, frozen start-up); CPython's defaults with ``--default-gc``."""
    return nullcontext() if DEFAULT_GC else streaming_gc(freeze=True)


def measure(
    engine: Engine, corpus: Corpus, *, repeat: int, batch: int = 0
) -> tuple[dict[str, float], list[list[list[Finding]]]]:
    """Best of `repeat` passes: seconds and MB/s (wall and CPU), and the findings."""
    size = corpus.size_bytes
    best_wall = best_cpu = float("inf")
    found: list[list[list[Finding]]] = []
    with gc_settings():
        for _ in range(repeat):
            wall, cpu, found = scan_corpus(engine, corpus, batch=batch)
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    figures = {
        "seconds": round(best_wall, 4),
        "mb_s": round(size / 1e6 / best_wall, 2),
        "cpu_seconds": round(best_cpu, 4),
        "cpu_mb_s": round(size / 1e6 / best_cpu, 2),
    }
    return figures, found


def run(
    mb: float = 2.0,
    *,
    seed: int = 7,
    backends: list[str] | None = None,
    repeat: int = 3,
    batch: int = 500,
) -> dict[str, Any]:
    """Throughput (MB/s, per record and batched) and accuracy per backend on a
    `mb`-megabyte corpus."""
    corpus = generate_mb(mb, seed)
    size = corpus.size_bytes
    recognizers = registry.load()
    result: dict[str, Any] = {
        "corpus": {
            "mb": round(size / 1e6, 3),
            "seed": seed,
            "records": len(corpus.records),
            "texts": sum(len(r.fields) for r in corpus.records),
            "labels": len(corpus.labels),
            "records_without_pii": sum(1 for r in corpus.records if not r.labels),
        },
        "target_mb_s": TARGET_MB_S,
        "engine_code": native.status(),
        "gc": "CPython defaults" if DEFAULT_GC else "the stage process's (hub.gc_policy)",
        "min_score": MIN_SCORE,
        "batch": batch,
        "backends": {},
    }
    for backend in backends or available_backends():
        engine = Engine(recognizers, backend=backend)  # type: ignore[arg-type]
        scan_corpus(engine, corpus)  # warm-up: compiled patterns, phone metadata
        per_record, found = measure(engine, corpus, repeat=repeat)
        batched, found_batched = measure(engine, corpus, repeat=repeat, batch=batch)
        if found_batched != found:  # pragma: no cover - the engine tests pin this
            raise AssertionError(f"{backend}: batched findings differ from per-record ones")
        result["backends"][backend] = {
            **per_record,
            "batched": batched,
            "accuracy": score(corpus, found),
        }
    return result


def _print(result: dict[str, Any]) -> None:
    c = result["corpus"]
    print(
        f"corpus: {c['mb']} MB, {c['records']} records ({c['records_without_pii']} without"
        f" PII), {c['texts']} texts, {c['labels']} labels, seed {c['seed']}"
    )
    print(f"engine code: {result['engine_code']}; garbage collector: {result['gc']}")
    for backend, fig in result["backends"].items():
        batched = fig["batched"]
        print(f"\n{backend}:")
        for label, f in (("per record", fig), (f"batches of {result['batch']}", batched)):
            verdict = "meets" if f["mb_s"] >= result["target_mb_s"] else "BELOW"
            print(
                f"  {label:<18} {f['mb_s']:6.2f} MB/s wall ({f['seconds']:.3f} s),"
                f" {f['cpu_mb_s']:6.2f} MB/s CPU — {verdict} the"
                f" {result['target_mb_s']:.0f} MB/s target"
            )
        print(f"  {'entity':<22}{'tp':>6}{'fp':>6}{'fn':>6}{'prec':>8}{'recall':>8}{'f1':>8}")
        for entity, a in fig["accuracy"].items():
            print(
                f"  {entity:<22}{a['tp']:>6}{a['fp']:>6}{a['fn']:>6}"
                f"{a['precision']:>8.3f}{a['recall']:>8.3f}{a['f1']:>8.3f}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=float, default=2.0, help="corpus size in MB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend; best kept")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="repeatable")
    parser.add_argument("--batch", type=int, default=500, help="records per batched call")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--default-gc", action="store_true", help="CPython's GC defaults, not the stage's"
    )
    args = parser.parse_args(argv)
    reason = native.unmeasurable()
    if reason is not None:
        raise SystemExit(f"not measuring: {reason}")
    global DEFAULT_GC  # noqa: PLW0603 - one run per process
    DEFAULT_GC = args.default_gc
    result = run(
        args.mb, seed=args.seed, backends=args.backend, repeat=args.repeat, batch=args.batch
    )
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)


if __name__ == "__main__":
    main()
