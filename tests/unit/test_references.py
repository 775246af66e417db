"""Every reference in code, tests and docs resolves inside this repository: no design notes kept elsewhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"TFSERVING\.md|ARCHITECTURE\.md|HOUSE_STYLE|/work/shared|the seed's")
ANCHORED = re.compile(r"(docs/|\.\./|\b)(tfserving-behaviour|architecture|metrics)\.md#([a-z0-9-]+)")
BARE_B = re.compile(r"\bB(?:[1-9]|1\d|2[0-4])\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _tracked() -> list[Path]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt", ".json", "Makefile", "Dockerfile", "run")
    return [ROOT / n for n in names if n.endswith(keep)]


def _anchors(doc: str) -> set[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    ids = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", text, re.M)
    }
    return ids | headings


def test_nothing_points_at_documents_outside_the_repository() -> None:
    """No file names the design notes, house style or seed that live outside this repository."""
    found = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in _tracked()
        if p != Path(__file__).resolve()  # the pattern itself names them
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_every_anchor_cited_exists() -> None:
    """Each docs/<page>.md#anchor cited anywhere is an anchor or heading of that page."""
    anchors = {doc: _anchors(f"{doc}.md") for doc in ("tfserving-behaviour", "architecture", "metrics")}
    missing = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in _tracked()
        for m in ANCHORED.finditer(p.read_text(encoding="utf-8", errors="replace"))
        if m.group(3) not in anchors[m.group(2)]
    ]
    assert missing == []


def test_every_behaviour_has_an_anchor() -> None:
    """docs/tfserving-behaviour.md has one anchor per behaviour, b1 to b24."""
    assert {f"b{n}" for n in range(1, 25)} <= _anchors("tfserving-behaviour.md")


def test_a_file_citing_b_numbers_names_the_behaviour_page() -> None:
    """A file that cites a behaviour as a bare B-number names docs/tfserving-behaviour.md at least once."""
    unnamed = [
        str(p.relative_to(ROOT))
        for p in _tracked()
        if p.suffix in (".py", ".md", ".yaml")
        and BARE_B.search(text := p.read_text(encoding="utf-8", errors="replace"))
        and "tfserving-behaviour.md" not in text
    ]
    assert unnamed == []


def test_relative_links_in_markdown_resolve() -> None:
    """Every relative link in the README and docs/ points at a file that exists."""
    broken = [
        f"{p.relative_to(ROOT)}: {target}"
        for p in _tracked()
        if p.suffix == ".md"
        for target in LINK.findall(p.read_text(encoding="utf-8"))
        if "://" not in target and not target.startswith("mailto:") and not (p.parent / target).exists()
    ]
    assert broken == []
