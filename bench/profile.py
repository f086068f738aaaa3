"""``python -m bench.profile``: where the connector's and the validation stage's time goes.

Starts its own broker and registry, runs the CSV connector and ``ValidationStage.process``
(no Kafka) under cProfile and writes the top functions to ``bench/out/profile-*.txt``.
cProfile slows pure-Python code down several times: read the shares, not the rates.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
from datetime import UTC, datetime

from bench.chain import bench_settings
from bench.env import OUT_DIR, Env, input_files
from bench.stages import pure_validation, run_connector

TOP = 30


def _dump(profile: cProfile.Profile, name: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    for order in ("tottime", "cumulative"):
        out.write(f"\n==== {name}: top {TOP} by {order} ====\n")
        stats.sort_stats(order).print_stats(TOP)
    path = OUT_DIR / f"profile-{name}.txt"
    path.write_text(out.getvalue())
    return str(path)


def main() -> int:
    files = input_files(OUT_DIR)
    scratch = OUT_DIR / f"profile-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    scratch.mkdir(parents=True)
    with Env(scratch) as env:
        settings = bench_settings(
            home=scratch / "hub",
            kafka_bootstrap=env.bootstrap,
            schema_registry_url=env.registry_url,
        )
        raw, quarantine = env.topic("raw.leads"), env.topic("connector.quarantine")
        prof = cProfile.Profile()
        prof.enable()
        result = run_connector(
            env,
            settings,
            key="connector.csv",
            label="connector",
            drop_dir=files.csv_dir,
            topic=raw,
            quarantine_topic=quarantine,
        )
        prof.disable()
        print(f"connector (profiled): {result.row.rate:,.0f} rows/s -> {_dump(prof, 'connector')}")
        messages = env.drain([raw], result.published)
        prof = cProfile.Profile()
        prof.enable()
        row = pure_validation(
            env,
            settings,
            messages,
            source=raw,
            clean=env.topic("clean"),
            quarantine=env.topic("quarantine"),
            incidents=env.topic("incidents"),
        )
        prof.disable()
        print(f"validation (profiled): {row.rate:,.0f} events/s -> {_dump(prof, 'validation')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
