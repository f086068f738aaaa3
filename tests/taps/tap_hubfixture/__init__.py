"""``tap-hubfixture``: a small Singer tap built on singer-sdk, for the hub's tests.

It reads two streams from a JSON file (``{"users": [...], "orgs": [...]}``): ``users``,
incremental on ``updated_at`` (records sorted by it, a bookmark ``>=`` the last value, as
singer-sdk's SQL taps do), and ``orgs``, full table. Every SCHEMA, RECORD and STATE
message is written by singer-sdk. Knobs in its own config make it misbehave the ways a
real tap can: die mid-stream, hang, print garbage on stdout, change a property's type,
add a property. Run it as ``python -m tap_hubfixture`` with ``tests/taps`` on the path.
"""
