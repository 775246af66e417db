"""Print the agent's runtime requirements from pyproject.toml, minus ``tensorflow-serving-api``.

Why: ``tensorflow-serving-api`` depends on the whole ``tensorflow`` package (~1.9 GB installed), but the
agent uses only its generated protobuf modules. The image installs it with ``--no-deps`` and lays down
TensorFlow's few ``*_pb2.py`` files itself (extract_protos.py); every other dependency is installed normally
from this list.

Usage: ``python runtime_requirements.py pyproject.toml > requirements.txt``

``--pins REPORT`` prints ``name==version`` for every package of a ``pip install --dry-run --report REPORT``
resolution, sorted: how docker/constraints.txt is refreshed (its header has the commands).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

WITHOUT_DEPS = ("tensorflow-serving-api",)


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    return match.group(0).lower().replace("_", "-") if match else ""


def runtime_requirements(pyproject: Path) -> list[str]:
    """``[project].dependencies`` except the packages installed with ``--no-deps``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return [req for req in project["dependencies"] if _name(req) not in WITHOUT_DEPS]


def pins(report: Path) -> list[str]:
    """``name==version`` of every package a pip installation report would install, sorted by name."""
    installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    found = {_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    return [f"{name}=={found[name]}" for name in sorted(found)]


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--pins":
        print("\n".join(pins(Path(argv[2]))))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(runtime_requirements(Path(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
