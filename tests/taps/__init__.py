"""Real Singer taps the tests run as subprocesses (``tap_hubfixture``), and helpers to give
them a source and a singer connector config."""
