"""Print the agent's runtime requirements from pyproject.toml, minus ``tensorflow-serving-api``.

Why: ``tensorflow-serving-api`` depends on the whole ``tensorflow`` package (~1.9 GB installed), but the
agent uses only its generated protobuf modules. The image installs it with ``--no-deps`` and lays down
TensorFlow's few ``*_pb2.py`` files itself (extract_protos.py); every other dependency is installed normally
from this list.

Usage: ``python runtime_requirements.py pyproject.toml [EXTRAS] > requirements.txt``

``EXTRAS`` is a comma-separated list of ``[project.optional-dependencies]`` names (the Dockerfile's
``EXTRAS`` build argument, e.g. ``pubsub,s3,azure,azure-identity``); their requirements follow the core
ones, a ``tfs-agent[...]`` self-reference expanded. Empty means the core dependencies only. An unknown
name stops with an error naming it and the known ones.

``--pins REPORT`` prints ``name==version`` for every package of a ``pip install --dry-run --report REPORT``
resolution, sorted: how docker/constraints.txt is refreshed (its header has the commands).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

WITHOUT_DEPS = ("tensorflow-serving-api",)
# Extras that are for developing the agent, never for its image.
NOT_FOR_THE_IMAGE = ("dev",)


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    return match.group(0).lower().replace("_", "-") if match else ""


def _project(pyproject: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return project


def _parse_extras(extras: str) -> list[str]:
    return [name.strip() for name in extras.split(",") if name.strip()]


def _expand(project: dict[str, Any], extra: str, seen: set[str]) -> list[str]:
    """One extra's requirements, a ``<project>[a,b]`` self-reference replaced by a's and b's."""
    if extra in seen:
        return []
    seen.add(extra)
    known = project.get("optional-dependencies", {})
    if extra not in known or extra in NOT_FOR_THE_IMAGE:
        choices = ",".join(sorted(set(known) - set(NOT_FOR_THE_IMAGE)))
        raise SystemExit(
            f"runtime_requirements: unknown extra {extra!r} in EXTRAS; "
            f"use a comma-separated subset of {choices} (or empty for the core dependencies only)"
        )
    found: list[str] = []
    for requirement in known[extra]:
        self_ref = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*\[([^\]]*)\]\s*", requirement)
        if self_ref and _name(self_ref.group(1)) == _name(project["name"]):
            for inner in _parse_extras(self_ref.group(2)):
                found += _expand(project, inner, seen)
        else:
            found.append(requirement)
    return found


def extra_requirements(pyproject: Path, extras: str) -> list[str]:
    """The requirements of the comma-separated ``extras``, in order, without duplicates."""
    project = _project(pyproject)
    seen: set[str] = set()
    found: list[str] = []
    for extra in _parse_extras(extras):
        for requirement in _expand(project, extra, seen):
            if requirement not in found:
                found.append(requirement)
    return [req for req in found if _name(req) not in WITHOUT_DEPS]


def runtime_requirements(pyproject: Path, extras: str = "") -> list[str]:
    """``[project].dependencies`` plus ``extras``' requirements, except those installed with ``--no-deps``."""
    core = [req for req in _project(pyproject)["dependencies"] if _name(req) not in WITHOUT_DEPS]
    return core + [req for req in extra_requirements(pyproject, extras) if req not in core]


def pins(report: Path) -> list[str]:
    """``name==version`` of every package a pip installation report would install, sorted by name."""
    installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    found = {_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    return [f"{name}=={found[name]}" for name in sorted(found)]


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--pins":
        print("\n".join(pins(Path(argv[2]))))
        return 0
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(runtime_requirements(Path(argv[1]), argv[2] if len(argv) == 3 else "")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
