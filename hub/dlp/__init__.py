"""Data-loss prevention: recognizers find sensitive values, operators protect them, a
policy says which operator applies where, and incidents record findings — never values."""

from hub.dlp import native

native.select()  # compiled engine, or its sources (before any of them is imported)
