"""A Faust worker for the benchmark, run as a subprocess:

    python -m bench.faust_worker --stage passthrough|validation|validation-only
        --bootstrap HOST:PORT --registry URL --source TOPIC --clean TOPIC
        --quarantine TOPIC --incidents TOPIC --app-id ID --home DIR [--loglevel INFO]
        [--inline]

The app is the hub's own (``hub.processors.app.create_app``: batches taken without ack, sent
in order, acknowledged once their outputs are), with the processor chain as create_app
builds it by default (``validation``: in the worker process, from a recipe), the
ValidationStage without DLP (``validation-only``) or a passthrough stage that returns every
input unchanged to the clean topic (a stage object: inline, no work to move off the loop).
``--inline`` runs the validation chain as a stage object on the event loop instead (the
design before the worker process, for A/B runs). Stops on SIGTERM.
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
    parser.add_argument(
        "--inline",
        action="store_true",
        help="run the validation chain on the event loop, not in the worker process",
    )
    args = parser.parse_args(argv)

    import faust

    from bench.chain import (
        PassthroughStage,
        bench_settings,
        build_validation_chain,
        validation_chain,
    )
    from hub.processors.app import create_app
    from hub.processors.stage_runners import StageRecipe

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
        chain: dict[str, object] = {
            "source": args.source,
            "clean": args.clean,
            "quarantine": args.quarantine,
            "incidents": args.incidents,
            "dlp": args.stage == "validation",
            "dlp_backend": args.dlp_backend,
        }
        if args.inline:
            stage, _ = validation_chain(settings, args.registry, **chain)  # type: ignore[arg-type]
        else:
            stage = StageRecipe(
                build_validation_chain,
                {"settings": settings, "registry_url": args.registry, **chain},
                output_topics=(args.clean, args.quarantine, args.incidents),
            )
    app = create_app(
        settings,
        app_id=args.app_id,
        stage=stage,  # type: ignore[arg-type]  # a recipe or the stage protocol, duck-typed
        source_topic=args.source,
    )
    # As hub.processors.app.run_processor_worker starts it.
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
