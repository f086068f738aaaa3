"""Recognizers are found through the ``crm_hub.recognizers`` entry point group, so a
package can add its own without touching the hub. Names are the recognizers' ``name``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points

from hub.dlp.base import Recognizer
from hub.errors import ConfigError

GROUP = "crm_hub.recognizers"


@lru_cache(maxsize=1)
def available() -> dict[str, type[Recognizer]]:
    found: dict[str, type[Recognizer]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Recognizer)):
            raise ConfigError(f"entry point {ep.name} in {GROUP} is not a Recognizer class")
        found[ep.name] = cls
    return found


def load(names: Iterable[str] | None = None) -> list[Recognizer]:
    """Instances of the named recognizers (all when names is None)."""
    known = available()
    if names is None:
        return [cls() for _, cls in sorted(known.items())]
    out = []
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown recognizer {name!r}; known: {', '.join(sorted(known))}")
        out.append(known[name]())
    return out
