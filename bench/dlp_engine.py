"""DLP engine throughput and accuracy on the labelled corpus of `bench.dlp_corpus`.

``python -m bench.dlp_engine [--mb N] [--seed S] [--backend B ...]`` prints, per backend,
the engine's throughput (MB of UTF-8 text per second, one core) and precision, recall and F1
per entity; ``run(mb)`` returns the same figures as a dict for the bench report.

What is timed is what the processor runs: `Engine.scan_record` on each record (every string
field scanned with its field name as context; free-text records are one ``notes`` field),
with the policy's default threshold (``min_score`` 0.5) and overlaps resolved. Corpus
generation and engine construction are not timed; the best of ``--repeat`` runs is kept.

Matching rule: a finding is a true positive when its entity equals a label's entity in the
same text and the two spans overlap by at least half of the longer span (so "4111 1111"
out of a 19-character card number does not count, but a span off by a trailing character
does). Each label is matched at most once; unmatched findings are false positives,
unmatched labels false negatives.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from bench.dlp_corpus import Corpus, Label, generate_mb
from hub.dlp import registry
from hub.dlp.base import Finding
from hub.dlp.engine import Engine

MIN_SCORE = 0.5
TARGET_MB_S = 20.0
BACKENDS = ("hyperscan", "re2", "re")


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


def scan_corpus(engine: Engine, corpus: Corpus) -> tuple[float, list[list[list[Finding]]]]:
    """Seconds to scan every record with `scan_record`, and the findings per field."""
    found: list[list[list[Finding]]] = []
    t0 = time.perf_counter()
    for record in corpus.records:
        hits = engine.scan_record(record.fields, min_score=MIN_SCORE)
        by_field: dict[str, list[Finding]] = {}
        for ff in hits:
            by_field.setdefault(ff.field, []).append(ff.finding)
        found.append([by_field.get(name, []) for name in record.fields])
    return time.perf_counter() - t0, found


def available_backends() -> list[str]:
    out = []
    for backend in BACKENDS:
        try:
            Engine([], backend=backend)  # type: ignore[arg-type]
        except (ImportError, ValueError):
            continue
        out.append(backend)
    return out


def run(
    mb: float = 2.0, *, seed: int = 7, backends: list[str] | None = None, repeat: int = 3
) -> dict[str, Any]:
    """Throughput (MB/s) and accuracy per backend on a `mb`-megabyte corpus."""
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
        "min_score": MIN_SCORE,
        "backends": {},
    }
    for backend in backends or available_backends():
        engine = Engine(recognizers, backend=backend)  # type: ignore[arg-type]
        best = float("inf")
        found: list[list[list[Finding]]] = []
        for _ in range(repeat):
            seconds, found = scan_corpus(engine, corpus)
            best = min(best, seconds)
        result["backends"][backend] = {
            "seconds": round(best, 4),
            "mb_s": round(size / 1e6 / best, 2),
            "accuracy": score(corpus, found),
        }
    return result


def _print(result: dict[str, Any]) -> None:
    c = result["corpus"]
    print(
        f"corpus: {c['mb']} MB, {c['records']} records ({c['records_without_pii']} without"
        f" PII), {c['texts']} texts, {c['labels']} labels, seed {c['seed']}"
    )
    for backend, fig in result["backends"].items():
        verdict = "meets" if fig["mb_s"] >= result["target_mb_s"] else "BELOW"
        print(
            f"\n{backend}: {fig['mb_s']:.2f} MB/s ({fig['seconds']:.3f} s) —"
            f" {verdict} the {result['target_mb_s']:.0f} MB/s target"
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
    args = parser.parse_args(argv)
    _print(run(args.mb, seed=args.seed, backends=args.backend, repeat=args.repeat))


if __name__ == "__main__":
    main()
