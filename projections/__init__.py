"""Projections: the CRM read model and the tamper-evident audit trail, built from the
clean and quarantine topics. Rows, audit links and consumer positions are written in one
database transaction per batch, so replaying the log is idempotent."""
