"""Connectors: one package per source system, built on the SDK in ``hub``."""
