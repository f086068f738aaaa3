"""The CRM Event Hub benchmark harness: ``python -m bench`` (or ``make bench``).

One run, one embedded broker: Kafka ceilings, then the hub's own stages (connector,
validation in the Faust agent, projections into SQLite and PostgreSQL), then a report in
``bench/report.md`` and ``bench/report.json``. See ``bench/README.md``.
"""
