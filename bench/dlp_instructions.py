"""Instructions per pass of the DLP engine over the bench corpus, counted by valgrind's
callgrind: a figure that does not move with the machine's speed, for comparing two
versions of the engine on a shared host where wall-clock figures drift by tens of percent.

``python -m bench.dlp_instructions [--mb 0.15] [--seed 7] [--batch 500]`` runs, for the
compiled and the interpreted engine (``HUB_DLP_PURE=1``; ``--compiled-only`` skips it), a
child under callgrind that
builds the engine, scans the corpus once to warm up (compiled patterns, phone metadata),
then scans it ``--passes`` more times inside one ``exec`` call; only the ``exec`` is counted
(``--toggle-collect=builtin_exec``). Two children per engine, with 1 and 1 + ``--passes``
passes, and the difference divided by ``--passes`` is one pass: the constant cost of the
``exec`` itself cancels. Instruction counts are not time (cache misses and branch
prediction differ), and they move by about 1 % with the hash seed (dict and set order),
which is fixed per run (``PYTHONHASHSEED``, default 0). A child takes about a minute.

``--without NAME`` (repeatable) leaves recognizers out of the engine: the difference to a
run with all of them is what those recognizers cost a pass (their matcher hits, regex
confirmation, validators and context lookups), for deciding where work on speed pays.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from typing import Any

from hub.dlp import native

_CHILD = """
import sys
from bench.dlp_corpus import generate_mb
from bench.dlp_engine import gc_settings
from hub.dlp import native, registry
from hub.dlp.engine import Engine

mb, seed, batch, passes = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
without = set(filter(None, sys.argv[5].split(",")))
corpus = generate_mb(mb, seed)
recognizers = [r for r in registry.load() if r.name not in without]
if without - {r.name for r in registry.load()}:
    raise SystemExit(f"unknown recognizers: {sorted(without - {r.name for r in registry.load()})}")
engine = Engine(recognizers, backend="hyperscan")
records = [r.fields for r in corpus.records]


def run():
    for i in range(0, len(records), batch):
        engine.scan_records(records[i : i + batch], min_score=0.5)


run()  # warm-up
print(native.status(), flush=True)
with gc_settings():
    exec("for _ in range(passes):\\n    run()")
"""


def count(
    passes: int,
    *,
    mb: float,
    seed: int,
    batch: int,
    pure: bool,
    hash_seed: str,
    without: tuple[str, ...] = (),
) -> int:
    """Instructions callgrind counted inside the child's ``exec``."""
    env = {**os.environ, native.PURE_ENV: "1" if pure else "0", "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=builtin_exec",
            sys.executable,
            "-c",
            _CHILD,
            *(f"{mb:g}", str(seed), str(batch), str(passes), ",".join(without)),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    status = out.stdout.strip().splitlines()[-1]
    if pure != status.startswith("interpreted"):
        raise RuntimeError(f"the child ran {status}")
    found = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if found is None:
        raise RuntimeError("callgrind printed no instruction count")
    return int(found.group(1))


def per_pass(
    *,
    mb: float,
    seed: int,
    batch: int,
    passes: int,
    pure: bool,
    hash_seed: str,
    without: tuple[str, ...] = (),
) -> int:
    kw: dict[str, Any] = {
        "mb": mb, "seed": seed, "batch": batch, "pure": pure, "hash_seed": hash_seed,
        "without": without,
    }  # fmt: skip
    return (count(1 + passes, **kw) - count(1, **kw)) // passes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=float, default=0.15, help="corpus size in MB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=500, help="records per engine call")
    parser.add_argument("--passes", type=int, default=2, help="counted passes")
    parser.add_argument("--hash-seed", default="0", help="PYTHONHASHSEED of the children")
    parser.add_argument("--compiled-only", action="store_true", help="skip the interpreted run")
    parser.add_argument(
        "--without", action="append", default=[], metavar="NAME", help="leave a recognizer out"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed")
    reason = native.unmeasurable()
    if reason is not None:
        raise SystemExit(f"not measuring: {reason}")
    figures: dict[str, Any] = {}
    engines = [("compiled", False), ("interpreted", True)]
    if args.compiled_only or not native.status().startswith("compiled"):
        engines = engines[:1] if args.compiled_only else engines[1:]
    for label, pure in engines:
        figures[label] = per_pass(
            mb=args.mb,
            seed=args.seed,
            batch=args.batch,
            passes=args.passes,
            pure=pure,
            hash_seed=args.hash_seed,
            without=tuple(args.without),
        )
        print(
            f"{label:<12} {figures[label]:>13,} instructions per pass over {args.mb:g} MB"
            f" ({figures[label] / args.mb / 1e6:,.0f} M per MB), batches of {args.batch}"
            + (f", without {', '.join(args.without)}" if args.without else "")
        )
    if len(figures) == 2:
        print(f"interpreted / compiled: {figures['interpreted'] / figures['compiled']:.2f}×")


if __name__ == "__main__":
    main()
