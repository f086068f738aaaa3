"""Build step: compile the DLP engine's hot path with mypyc (everything else is in
pyproject.toml).

The modules in `hub/dlp/native.py` (``COMPILED``) run once per candidate or per text: the
engine's confirmation loop, the hyperscan matcher's bookkeeping, the recognizers'
validators and the phone validity replay. mypyc turns these type-checked modules into C
extensions; the Python sources stay beside them and are what a build without a C compiler,
or with ``HUB_DLP_PURE=1`` set, runs (``bench/dlp_report.md`` gives both figures).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
# The commands that build extensions. pip also runs this file for the metadata (egg_info,
# dist_info): compiling there too would type-check and generate the C code three times.
_BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def _compiled() -> list[str]:
    path = ROOT / "hub" / "dlp" / "native.py"
    namespace: dict[str, object] = {"__file__": str(path), "__name__": "hub_dlp_native"}
    exec(path.read_text(), namespace)  # noqa: S102 - our own constants
    return [str(m).replace(".", "/") + ".py" for m in namespace["COMPILED"]]  # type: ignore[attr-defined]


def _extensions() -> list[object]:
    if not _BUILDS.intersection(sys.argv[1:]):
        return []
    if os.environ.get("HUB_DLP_PURE") == "1":
        print("HUB_DLP_PURE=1: the DLP engine stays interpreted", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    options = [
        # Its own options: the project's mypy section loads the pydantic plugin, which the
        # build environment does not have (nor need: these modules do not use pydantic).
        "--config-file",
        str(ROOT / "hub" / "dlp" / "mypyc.ini"),
    ]
    extensions = mypycify(options + _compiled(), group_name="hub_dlp_native", opt_level="3")
    for ext in extensions:
        # A machine without a C compiler still installs: the sources run interpreted.
        ext.optional = True  # type: ignore[attr-defined]
    return list(extensions)


setup(ext_modules=_extensions())
