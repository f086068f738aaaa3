"""DLP engine vs Presidio's pattern recognizers: same corpus, same run, same scoring.

``python -m bench.dlp_presidio [--mb 0.15] [--seed 7] [--repeat 3]`` generates the labelled
corpus of `bench.dlp_corpus` exactly as `bench.dlp_engine` does (``generate_mb(mb, seed)``;
a smaller ``mb`` gives the first records of a larger corpus with the same seed), scans it with
the hub's engine and with Presidio's AnalyzerEngine, and prints precision/recall/F1 per entity
side by side, both throughputs (MB of UTF-8 text per second, one core) and their ratio. It
writes ``bench/dlp_report.md`` and ``bench/dlp_report.json``.

Presidio (the ``bench`` extra, ``pip install -e .[bench]``) runs with:

- only its predefined *pattern* recognizers whose entity the hub also has (`RECOGNIZERS`),
  all registered for English; no NER recognizer. Its other pattern recognizers (DATE_TIME,
  URL, UUID, …) find nothing the corpus labels, so leaving them out only makes it faster;
- a blank spaCy pipeline (``spacy.blank("en")``, nothing downloaded) plus one component that
  sets each token's lemma to its lower-case text, so Presidio's context enhancer can still
  see the context words next to a value (a blank pipeline has no lemmas at all);
- the structured field name as extra context (``analyze(context=...)``), as our engine uses it;
- offline ``tldextract``: the email recognizer's ``tldextract.extract`` is replaced by a
  ``TLDExtract(cache_dir=None, suffix_list_urls=())``, which reads the public-suffix snapshot
  bundled with tldextract; while Presidio is built and runs, every socket connect and DNS
  lookup raises, and the attempts are counted in the report (expected: 0).

Thresholds: our engine uses the policy default ``min_score`` 0.5. Presidio is run once with
its default ``score_threshold`` (0) and its results are scored twice: kept at score ≥ 0.5
(same threshold as ours) and all of them (Presidio's default). "ours ≥ Presidio" means our F1
is at least Presidio's better F1 of the two.

Timing: for ours, as `bench.dlp_engine`: `Engine.scan_record` per record (one engine
call per record: the stricter figure, and the one the headline ratio to Presidio is taken
on) and `Engine.scan_records` on batches of 500 records (as the processor calls it:
`DlpStage.protect_many` on each batch it takes, up to ``processor_batch_size``); for
Presidio one ``AnalyzerEngine.analyze`` per text (every structured field, and each
free-text record's ``notes``). Construction and a warm-up pass are not timed; the best
of ``--repeat`` passes is kept for both; wall-clock time, with CPU time alongside (the
machine is shared). Scoring is `bench.dlp_engine.score` (its matching rule: same entity,
spans overlapping by at least half of the longer span, each label matched once), with
Presidio's entity names mapped to ours (`PRESIDIO_TO_OURS`). Findings of entities outside
the mapping are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.dlp_corpus import Corpus, generate_mb
from bench.dlp_engine import MIN_SCORE, gc_settings, measure, scan_corpus, score
from hub.dlp import native, registry
from hub.dlp.base import Finding
from hub.dlp.engine import Engine

RATIO_TARGET = 100.0
BATCH = 500
BENCH_DIR = Path(__file__).resolve().parent
REPORT_MD = BENCH_DIR / "dlp_report.md"
REPORT_JSON = BENCH_DIR / "dlp_report.json"

# Presidio recognizer class -> its entity; every entity here maps to one of the hub's.
RECOGNIZERS = {
    "CreditCardRecognizer": "CREDIT_CARD",
    "UsSsnRecognizer": "US_SSN",
    "IbanRecognizer": "IBAN_CODE",
    "EmailRecognizer": "EMAIL_ADDRESS",
    "PhoneRecognizer": "PHONE_NUMBER",
    "IpRecognizer": "IP_ADDRESS",
    "UsPassportRecognizer": "US_PASSPORT",
    "UsBankRecognizer": "US_BANK_NUMBER",
    "AbaRoutingRecognizer": "ABA_ROUTING_NUMBER",
    "UsLicenseRecognizer": "US_DRIVER_LICENSE",
    "NhsRecognizer": "UK_NHS",
    "EsNifRecognizer": "ES_NIF",
    "EsNieRecognizer": "ES_NIE",
    "ItFiscalCodeRecognizer": "IT_FISCAL_CODE",
    "DeTaxIdRecognizer": "DE_TAX_ID",
}
PRESIDIO_TO_OURS = {entity: entity for entity in RECOGNIZERS.values()} | {"ES_NIE": "ES_NIF"}


@contextmanager
def no_network() -> Iterator[list[str]]:
    """Every socket connect and DNS lookup raises inside; the attempts are listed."""
    attempts: list[str] = []
    saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def refuse(what: str) -> Any:
        def _refuse(*args: Any, **_kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what != 'getaddrinfo' else args[:2]}")
            raise OSError(f"network disabled by bench.dlp_presidio ({what})")

        return _refuse

    socket.socket.connect = refuse("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = refuse("getaddrinfo")
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = saved  # type: ignore[method-assign]


def build_presidio() -> Any:
    """AnalyzerEngine with the pattern recognizers of `RECOGNIZERS` and a blank spaCy."""
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, predefined_recognizers
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer
    from spacy.language import Language
    from spacy.tokens import Doc

    offline = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())
    email_recognizer.tldextract = SimpleNamespace(extract=offline)

    if "bench_lower_lemma" not in Language.factories:

        @Language.component("bench_lower_lemma")  # type: ignore[untyped-decorator]
        def _lower_lemma(doc: Doc) -> Doc:
            for token in doc:
                token.lemma_ = token.lower_
            return doc

    nlp = spacy.blank("en")
    nlp.add_pipe("bench_lower_lemma")
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank:en"}])
    nlp_engine.nlp = {"en": nlp}  # loaded: no load() call

    recognizers = [
        getattr(predefined_recognizers, name)(supported_language="en") for name in RECOGNIZERS
    ]
    reg = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    return AnalyzerEngine(registry=reg, nlp_engine=nlp_engine, supported_languages=["en"])


def _context(name: str, structured: bool) -> list[str] | None:
    return [w for w in name.lower().split("_") if w] if structured else None


def scan_presidio(
    analyzer: Any, corpus: Corpus
) -> tuple[float, float, list[list[list[Finding]]], list[list[list[Finding]]]]:
    """Wall and CPU seconds for one `analyze` per text, and the mapped findings per field:
    all of them (Presidio's default threshold) and those scoring ≥ `MIN_SCORE`."""
    entities = list(RECOGNIZERS.values())
    raw: list[list[list[Any]]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for record in corpus.records:
        raw.append(
            [
                analyzer.analyze(
                    text,
                    language="en",
                    entities=entities,
                    context=_context(name, record.structured),
                    score_threshold=0.0,
                )
                for name, text in record.fields.items()
            ]
        )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0

    def convert(r: Any) -> Finding:
        meta = r.recognition_metadata or {}
        return Finding(
            entity=PRESIDIO_TO_OURS[r.entity_type],
            start=r.start,
            end=r.end,
            score=r.score,
            recognizer=str(meta.get("recognizer_name", "presidio")),
            pattern="",
        )

    every = [
        [[convert(r) for r in rs if r.entity_type in PRESIDIO_TO_OURS] for rs in fields]
        for fields in raw
    ]
    at_min = [[[f for f in fs if f.score >= MIN_SCORE] for fs in fields] for fields in every]
    return seconds, cpu, every, at_min


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _backends() -> list[str]:
    """The installed backends, the default (hyperscan) first."""
    out = []
    for backend in ("hyperscan", "re2", "re"):
        try:
            Engine([], backend=backend)
        except (ImportError, ValueError):
            continue
        out.append(backend)
    return out


def run(mb: float, seed: int = 7, repeat: int = 3) -> dict[str, Any]:
    """Both engines over the same `mb`-megabyte corpus (seed `seed`); figures as a dict."""
    load_before = os.getloadavg()[0]
    corpus = generate_mb(mb, seed)
    size = corpus.size_bytes
    result: dict[str, Any] = {
        "command": f"python -m bench.dlp_presidio --mb {mb:g} --seed {seed} --repeat {repeat}",
        "corpus": {
            "mb": round(size / 1e6, 4),
            "bytes": size,
            "seed": seed,
            "records": len(corpus.records),
            "texts": sum(len(r.fields) for r in corpus.records),
            "labels": len(corpus.labels),
            "records_without_pii": sum(1 for r in corpus.records if not r.labels),
        },
        "repeat": repeat,
        "ours": {"min_score": MIN_SCORE, "backends": {}, "engine_code": native.status()},
        "presidio": {},
        "ratio_target": RATIO_TARGET,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
        },
        "versions": {
            d: _version(d)
            for d in ("presidio-analyzer", "spacy", "tldextract", "hyperscan", "google-re2")
        },
    }

    recognizers = registry.load()
    engines: dict[str, Engine] = {}
    for backend in _backends():
        engine = engines[backend] = Engine(recognizers, backend=backend)  # type: ignore[arg-type]
        scan_corpus(engine, corpus)  # warm-up
        per_record, found = measure(engine, corpus, repeat=repeat)
        batched, _ = measure(engine, corpus, repeat=repeat, batch=BATCH)
        result["ours"]["backends"][backend] = {
            **per_record,
            "batched": batched,
            "accuracy": score(corpus, found),
        }

    if native.status().startswith("compiled"):
        result["ours"]["interpreted"] = _interpreted(mb, seed, repeat)

    with no_network() as attempts:
        t0 = time.perf_counter()
        analyzer = build_presidio()
        build_s = time.perf_counter() - t0
        scan_presidio(analyzer, corpus)  # warm-up
        best = best_cpu = float("inf")
        every: list[list[list[Finding]]] = []
        at_min: list[list[list[Finding]]] = []
        with gc_settings():  # the same collector settings as our engine's passes
            for _ in range(repeat):
                seconds, cpu, every, at_min = scan_presidio(analyzer, corpus)
                best, best_cpu = min(best, seconds), min(best_cpu, cpu)
            paired = _paired(engines[next(iter(engines))], analyzer, corpus, repeat)
    result["presidio"] = {
        "recognizers": RECOGNIZERS,
        "entity_map": PRESIDIO_TO_OURS,
        "nlp": "spacy.blank('en') + lemma = lower-case text; no NER",
        "build_seconds": round(build_s, 3),
        "network_attempts": attempts,
        "seconds": round(best, 4),
        "mb_s": round(size / 1e6 / best, 4),
        "cpu_seconds": round(best_cpu, 4),
        "cpu_mb_s": round(size / 1e6 / best_cpu, 4),
        "accuracy_at_min_score": score(corpus, at_min),
        "accuracy_default_threshold": score(corpus, every),
    }
    result["paired"] = paired
    result["machine"]["load_average_1min"] = {
        "before": round(load_before, 2),
        "after": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    _compare(result)
    return result


def _paired(engine: Engine, analyzer: Any, corpus: Corpus, rounds: int) -> dict[str, Any]:
    """CPU-time ratios from interleaved passes: our engine (per record, then batched), one
    Presidio pass, our engine again; each round's ratio is Presidio's time over the mean of
    ours just before and just after it. The machine's speed drifts over a run (a shared
    host); passes seconds apart see the same speed, so these ratios vary less than ratios
    of best-of figures taken minutes apart."""
    per_record: list[float] = []
    batched: list[float] = []

    def ours() -> tuple[float, float]:
        one = scan_corpus(engine, corpus)[1]
        many = scan_corpus(engine, corpus, batch=BATCH)[1]
        return one, many

    for _ in range(max(rounds, 3)):
        before = ours()
        presidio_cpu = scan_presidio(analyzer, corpus)[1]
        after = ours()
        per_record.append(presidio_cpu / ((before[0] + after[0]) / 2))
        batched.append(presidio_cpu / ((before[1] + after[1]) / 2))

    def summary(ratios: list[float]) -> dict[str, Any]:
        return {
            "median": round(statistics.median(ratios), 1),
            "min": round(min(ratios), 1),
            "max": round(max(ratios), 1),
            "all": [round(r, 1) for r in ratios],
        }

    return {"per_record_cpu": summary(per_record), "batched_cpu": summary(batched)}


def _interpreted(mb: float, seed: int, repeat: int) -> dict[str, Any]:
    """The default backend's figures with the engine's Python sources instead of its
    compiled modules (``HUB_DLP_PURE=1``, `hub.dlp.native`), measured in a child process
    during this run."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.dlp_engine",
            *("--mb", f"{mb:g}", "--seed", str(seed), "--repeat", str(repeat)),
            *("--backend", "hyperscan", "--batch", str(BATCH), "--json"),
        ],
        env={**os.environ, native.PURE_ENV: "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    figures: dict[str, Any] = json.loads(out.stdout)
    if not figures["engine_code"].startswith("interpreted"):
        raise RuntimeError(f"the child ran {figures['engine_code']}")
    return dict(figures["backends"]["hyperscan"])


def _compare(result: dict[str, Any]) -> None:
    backends = result["ours"]["backends"]
    first = next(iter(backends.values()))
    ours_acc = first["accuracy"]
    p = result["presidio"]
    # entities both engines have a recognizer for, whether or not the corpus labels them
    ours_entities = {r.entity for r in registry.load()}
    supported_by_both = sorted(ours_entities & set(PRESIDIO_TO_OURS.values()))
    rows = []
    zero = {"tp": 0, "fp": 0, "fn": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    for entity in supported_by_both:
        o = ours_acc.get(entity, zero)
        p5 = p["accuracy_at_min_score"].get(entity, zero)
        p0 = p["accuracy_default_threshold"].get(entity, zero)
        rows.append(
            {
                "entity": entity,
                "ours": o,
                "presidio_at_min_score": p5,
                "presidio_default": p0,
                "ours_ge_presidio": o["f1"] >= max(p5["f1"], p0["f1"]),
                "labels": o["tp"] + o["fn"],
            }
        )
    result["supported_by_both"] = supported_by_both
    result["rows"] = rows
    result["f1_target_met"] = all(r["ours_ge_presidio"] for r in rows)
    result["ours"]["accuracy_same_across_backends"] = all(
        b["accuracy"] == ours_acc for b in backends.values()
    )
    result["ratios"] = {backend: round(b["mb_s"] / p["mb_s"], 1) for backend, b in backends.items()}
    slow = result["ours"].get("interpreted")
    if slow is not None:
        result["ratios_interpreted"] = {
            "per_record_cpu": round(slow["cpu_mb_s"] / p["cpu_mb_s"], 1),
            "batched_cpu": round(slow["batched"]["cpu_mb_s"] / p["cpu_mb_s"], 1),
        }
    result["ratios_batched"] = {
        backend: round(b["batched"]["mb_s"] / p["mb_s"], 1) for backend, b in backends.items()
    }
    result["ratios_cpu"] = {
        backend: round(b["cpu_mb_s"] / p["cpu_mb_s"], 1) for backend, b in backends.items()
    }
    result["ratios_cpu_batched"] = {
        backend: round(b["batched"]["cpu_mb_s"] / p["cpu_mb_s"], 1)
        for backend, b in backends.items()
    }
    # The target is judged on CPU time: both engines are single-threaded, and on a shared
    # machine wall time mostly measures the other jobs (see the report).
    default = next(iter(backends))
    result["ratio_target_met"] = result["ratios_cpu"][default] >= RATIO_TARGET


def _fmt(a: dict[str, Any]) -> str:
    return f"{a['precision']:.3f} / {a['recall']:.3f} / {a['f1']:.3f}"


def render_md(result: dict[str, Any]) -> str:
    c, p = result["corpus"], result["presidio"]
    lines = [
        "# DLP: hub engine vs Presidio pattern recognizers (same run)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Corpus: `bench.dlp_corpus.generate_mb({c['mb']:g}, seed={c['seed']})` — {c['bytes']:,}"
        f" bytes, {c['records']} records ({c['records_without_pii']} without PII),"
        f" {c['texts']} texts, {c['labels']} labels. Both engines scan the same texts.",
        "",
        "Presidio: presidio-analyzer"
        f" {result['versions']['presidio-analyzer']}, spaCy {result['versions']['spacy']}"
        f" ({p['nlp']}), pattern recognizers: {', '.join(p['recognizers'])}. Offline:"
        f" tldextract with the bundled suffix snapshot; network attempts during the run:"
        f" {len(p['network_attempts'])}.",
        "",
        "P / R / F1 per entity (matching rule of `bench.dlp_engine.score`). Ours at min_score"
        f" {MIN_SCORE}; Presidio at score ≥ {MIN_SCORE} and at its default threshold (0)."
        ' "ours ≥ Presidio": our F1 ≥ the better of Presidio\'s two.',
        "",
        "| entity | ours P / R / F1 | Presidio ≥0.5 P / R / F1 | Presidio default P / R / F1"
        " | ours ≥ Presidio? |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        note = "" if r["labels"] else " (no labels in the corpus)"
        lines.append(
            f"| {r['entity']}{note} | {_fmt(r['ours'])} | {_fmt(r['presidio_at_min_score'])}"
            f" | {_fmt(r['presidio_default'])} | {'yes' if r['ours_ge_presidio'] else 'NO'} |"
        )
    lines += [
        "",
        f"Throughput, best of {result['repeat']} passes after a warm-up, as wall-clock and as"
        " CPU (process) time. Both engines run on one thread, so on an idle machine the two"
        " agree; on this shared machine wall time also counts other jobs' turns, and the"
        " target is judged on the CPU figures. Load average (1 min) before / after the run:"
        f" {result['machine']['load_average_1min']['before']} /"
        f" {result['machine']['load_average_1min']['after']} on"
        f" {result['machine']['load_average_1min']['cpus']} CPUs.",
        "",
        f"Hub engine code: {result['ours']['engine_code']} (`hub.dlp.native`); the"
        " interpreted rows run the same engine from its Python sources in a child process"
        " of this run. Both engines are timed under the garbage-collector settings of the"
        " processor's stage process (`hub.gc_policy`: start-up frozen, young threshold"
        " 50,000).",
        "",
        "| engine | seconds | MB/s | ratio to Presidio | CPU MB/s | CPU ratio |",
        "|---|---|---|---|---|---|",
    ]
    for backend, b in result["ours"]["backends"].items():
        batched = b["batched"]
        lines.append(
            f"| hub engine ({backend}), one call per record | {b['seconds']} | {b['mb_s']} |"
            f" {result['ratios'][backend]}× | {b['cpu_mb_s']} | {result['ratios_cpu'][backend]}× |"
        )
        lines.append(
            f"| hub engine ({backend}), batches of {BATCH} records | {batched['seconds']} |"
            f" {batched['mb_s']} | {result['ratios_batched'][backend]}× | {batched['cpu_mb_s']}"
            f" | {result['ratios_cpu_batched'][backend]}× |"
        )
    slow = result["ours"].get("interpreted")
    if slow is not None:
        r = result["ratios_interpreted"]
        lines.append(
            "| hub engine (hyperscan), one call per record, interpreted (HUB_DLP_PURE=1) |"
            f" {slow['seconds']} | {slow['mb_s']} | | {slow['cpu_mb_s']} | {r['per_record_cpu']}× |"
        )
        lines.append(
            f"| hub engine (hyperscan), batches of {BATCH} records, interpreted (HUB_DLP_PURE=1)"
            f" | {slow['batched']['seconds']} | {slow['batched']['mb_s']} | |"
            f" {slow['batched']['cpu_mb_s']} | {r['batched_cpu']}× |"
        )
    lines.append(
        f"| Presidio pattern engine | {p['seconds']} | {p['mb_s']} | 1× | {p['cpu_mb_s']} | 1× |"
    )
    default = next(iter(result["ours"]["backends"]))
    pr, pb = result["paired"]["per_record_cpu"], result["paired"]["batched_cpu"]
    lines += [
        "",
        f"Interleaved pairs ({len(pr['all'])} rounds: ours, Presidio, ours; CPU time):"
        f" Presidio's time over ours is {pr['median']}× per record (median; {pr['min']}–"
        f"{pr['max']}×) and {pb['median']}× in batches of {BATCH} ({pb['min']}–{pb['max']}×).",
        f"Targets: F1 ≥ Presidio on every entity both support —"
        f" {'met' if result['f1_target_met'] else 'NOT met'}; throughput ≥"
        f" {RATIO_TARGET:.0f}× Presidio (default backend, {default}, one call per record, CPU"
        f" time: {result['ratios_cpu'][default]}×) —"
        f" {'met' if result['ratio_target_met'] else 'NOT met'}; interleaved medians:"
        f" {pr['median']}× per record ({'met' if pr['median'] >= RATIO_TARGET else 'NOT met'}),"
        f" {pb['median']}× in batches, as the processor calls it"
        f" ({'met' if pb['median'] >= RATIO_TARGET else 'NOT met'}). Findings are the same on"
        " every backend: "
        f"{'yes' if result['ours']['accuracy_same_across_backends'] else 'NO'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=float, default=0.15, help="corpus slice in MB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="passes per engine; best kept")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    reason = native.unmeasurable()
    if reason is not None:
        raise SystemExit(f"not measuring: {reason}")
    result = run(args.mb, seed=args.seed, repeat=args.repeat)
    md = render_md(result)
    print(md)
    if not args.no_write:
        REPORT_MD.write_text(md, encoding="utf-8")
        REPORT_JSON.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(
            f"wrote {REPORT_MD.relative_to(BENCH_DIR.parent)} and"
            f" {REPORT_JSON.relative_to(BENCH_DIR.parent)}"
        )


if __name__ == "__main__":
    main()
