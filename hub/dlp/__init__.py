"""Data-loss prevention: recognizers find sensitive values, operators protect them, a
policy says which operator applies where, and incidents record findings — never values."""
