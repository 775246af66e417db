"""The stand-in ships apart from the agent: not in the image's build context, not in the wheel built there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_image_build_context_leaves_the_stand_in_out() -> None:
    """docker/Dockerfile.dockerignore drops devserver/ and the Dockerfile copies only agent/ code."""
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "devserver/" in ignore
    copies = [
        line for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
    ]
    assert not any("tfs_devserver" in line for line in copies)


def test_wheel_built_like_the_image_holds_no_stand_in_code(tmp_path: Path) -> None:
    """The agent's wheel, built from a tree that holds devserver/ too, has no tfs_devserver module."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "agent", context / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "devserver", context / "devserver", ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=context,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tfs_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("agent/service/") for n in names)
    assert not [n for n in names if n.startswith(("tfs_devserver/", "agent/devserver/"))]
