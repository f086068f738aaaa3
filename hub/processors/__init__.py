"""Processor stage: pure, batch-friendly rules driven by ``policies/`` (``rules``), and the
Faust agents that only move data through them."""
