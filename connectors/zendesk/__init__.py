"""Zendesk Support (ticketing) connector, its API simulator and its case-status policy."""
