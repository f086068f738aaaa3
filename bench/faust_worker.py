"""A Faust worker for the benchmark, run as a subprocess:

    python -m bench.faust_worker --stage passthrough|validation|validation-only
        --bootstrap HOST:PORT --registry URL --source TOPIC --clean TOPIC
        --quarantine TOPIC --incidents TOPIC --app-id ID --home DIR [--loglevel INFO]

The app is the hub's own (``hub.processors.app.create_app``: take_events, send, wait for the
acknowledgements), with the processor chain as create_app builds it by default
(``validation``), the ValidationStage without DLP (``validation-only``) or a passthrough
stage that returns every input unchanged to the clean topic. Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
from pathlib import Path

STAGES = ("passthrough", "validation", "validation-only")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faust_worker")
    parser.add_argument("--stage", choices=STAGES, required=True)
    for name in ("bootstrap", "registry", "source", "clean", "quarantine", "incidents"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument(
        "--loglevel",
        default="INFO",
        help="as HUB_LOG_LEVEL (default INFO, the hub's default). WARNING or above makes "
        "faust's progress spinner set the root logger to DEBUG for the whole run",
    )
    parser.add_argument("--dlp-backend", default="auto", choices=("auto", "re2", "hyperscan", "re"))
    args = parser.parse_args(argv)

    import faust

    from bench.chain import PassthroughStage, bench_settings, validation_chain
    from hub.processors.app import create_app

    settings = bench_settings(
        home=args.home,
        kafka_bootstrap=args.bootstrap,
        schema_registry_url=args.registry,
        log_level=args.loglevel,
    )
    stage: object
    if args.stage == "passthrough":
        stage = PassthroughStage(args.clean, args.quarantine)
    else:
        stage, _ = validation_chain(
            settings,
            args.registry,
            source=args.source,
            clean=args.clean,
            quarantine=args.quarantine,
            incidents=args.incidents,
            dlp=args.stage == "validation",
            dlp_backend=args.dlp_backend,
        )
    app = create_app(
        settings,
        app_id=args.app_id,
        stage=stage,  # type: ignore[arg-type]  # the stage protocol, duck-typed
        source_topic=args.source,
    )
    # As hub.processors.app.run_processor_worker starts it.
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
