"""The manifest that marks a version complete, and the object-name check that keeps a download inside its dir.

Pure: no I/O and no SDK imports, so the parser and the name check can be fuzzed (hypothesis) and reused by
publish, discovery and staging alike. Parsing is strict because a manifest is the one thing standing between
a half-uploaded version and TF Serving: anything unexpected fails the candidate with a reason naming it.

Format 1 (written by ``tfs-agent publish``; ``crc32c`` is base64 big-endian, exactly as GCS reports it)::

    {"format": 1, "model": "m", "version": 3, "created": "2024-01-01T00:00:00Z", "creator": "...",
     "files": [{"path": "saved_model.pb", "size": 123, "crc32c": "AAAAAA=="}, ...], "metrics": {"acc": 0.9}}
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from agent.core.domain import MANIFEST_FORMAT, MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import ManifestError, UnsafePathError

MAX_VERSION = 2**63 - 1
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]{0,18}")
"""TF Serving parses version folders as signed 64-bit integers (docs/tfserving-behaviour.md#b3)."""

_MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux filesystems: a longer segment cannot be created anyway
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = frozenset({"format", "model", "version", "created", "creator", "files", "metrics"})
_REQUIRED_TOP = frozenset({"format", "model", "version", "files"})
_FILE_KEYS = frozenset({"path", "size", "crc32c"})


def check_name(name: str, *, where: str = "") -> str:
    """Return ``name`` if it is a safe relative '/'-separated path, else raise UnsafePathError naming it.

    Refused: empty, absolute, backslash, NUL or other control characters, empty / ``.`` / ``..`` segments
    (so nothing can resolve outside the directory it is joined to), and segments the filesystem cannot hold.
    """
    problem = _name_problem(name)
    if problem:
        origin = f" in {where}" if where else ""
        raise UnsafePathError(f"refusing object {name!r}{origin}: {problem}; rename it in the bucket")
    return name


def _name_problem(name: str) -> str:
    if not isinstance(name, str) or not name:
        return "the name is empty"
    if name.startswith("/"):
        return "it is an absolute path"
    if "\\" in name:
        return "it contains a backslash"
    if _CONTROL.search(name):
        return "it contains a NUL or control character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode (a lone surrogate)"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return f"it has an {'empty' if not segment else repr(segment)} path segment"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return f"a path segment is longer than {_MAX_SEGMENT_BYTES} bytes"
    return ""


def is_crc32c(value: object) -> bool:
    """True for the canonical base64 of 4 bytes (8 characters ending in ``==``), as GCS writes it."""
    if not isinstance(value, str) or len(value) != 8:
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 4 and base64.b64encode(raw).decode("ascii") == value


def parse_manifest(data: bytes | str, *, origin: str = "manifest") -> Manifest:
    """Parse and check a manifest; ManifestError (UnsafePathError for a file path) names the problem."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ManifestError(f"{origin}: not valid UTF-8 JSON ({err}); re-run tfs-agent publish") from err
    if not isinstance(doc, dict):
        raise ManifestError(f"{origin}: the top level must be a JSON object, got {_kind(doc)}")
    return manifest_from_mapping(doc, origin=origin)


def manifest_from_mapping(doc: Mapping[str, Any], *, origin: str = "manifest") -> Manifest:
    """Check an already decoded manifest document field by field."""
    _check_keys(doc, _TOP_KEYS, _REQUIRED_TOP, origin)
    if type(doc["format"]) is not int or doc["format"] != MANIFEST_FORMAT:
        raise ManifestError(
            f"{origin}: format {doc['format']!r} is not supported (this agent reads {MANIFEST_FORMAT}); "
            "upgrade the agent or publish with a matching tfs-agent"
        )
    files = doc["files"]
    if not isinstance(files, list) or not files:
        raise ManifestError(f"{origin}: 'files' must be a non-empty list, got {_kind(files)}")
    entries = tuple(_file_entry(item, f"{origin} files[{i}]") for i, item in enumerate(files))
    check_layout(entries, origin=origin)
    return Manifest(
        model=_text(doc, "model", origin, required=True),
        version=_version(doc["version"], origin),
        files=entries,
        created=_text(doc, "created", origin),
        creator=_text(doc, "creator", origin),
        metrics=_metrics(doc.get("metrics", {}), origin),
    )


def check_layout(entries: Iterable[FileEntry], *, origin: str = "manifest") -> None:
    """Refuse duplicate paths, the reserved manifest name, and a path that is both a file and a directory."""
    paths: set[str] = set()
    for entry in entries:
        check_name(entry.path, where=origin)
        if entry.path == MANIFEST_NAME:
            raise ManifestError(f"{origin}: lists {MANIFEST_NAME!r}, a name reserved for the manifest itself")
        if entry.path in paths:
            raise ManifestError(f"{origin}: lists {entry.path!r} twice")
        paths.add(entry.path)
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in paths:
                raise ManifestError(
                    f"{origin}: {parent!r} is listed as a file but is also the directory of {path!r}"
                )


def serialize_manifest(manifest: Manifest) -> bytes:
    """The canonical JSON of a manifest (files sorted by path), UTF-8, newline-terminated."""
    doc = {
        "format": MANIFEST_FORMAT,
        "model": manifest.model,
        "version": manifest.version,
        "created": manifest.created,
        "creator": manifest.creator,
        "files": [
            {"path": f.path, "size": f.size, "crc32c": f.crc32c}
            for f in sorted(manifest.files, key=lambda f: f.path)
        ],
        "metrics": dict(manifest.metrics),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _file_entry(item: object, origin: str) -> FileEntry:
    if not isinstance(item, dict):
        raise ManifestError(f"{origin}: must be an object with path, size and crc32c, got {_kind(item)}")
    _check_keys(item, _FILE_KEYS, _FILE_KEYS, origin)
    path = item["path"]
    if not isinstance(path, str):
        raise ManifestError(f"{origin}: 'path' must be a string, got {_kind(path)}")
    check_name(path, where=origin)
    size = item["size"]
    if type(size) is not int or size < 0:
        raise ManifestError(f"{origin} ({path!r}): 'size' must be a non-negative integer, got {size!r}")
    if not is_crc32c(item["crc32c"]):
        raise ManifestError(
            f"{origin} ({path!r}): 'crc32c' must be base64 of 4 bytes like 'AAAAAA==', got {item['crc32c']!r}"
        )
    return FileEntry(path=path, size=size, crc32c=item["crc32c"])


def _check_keys(
    doc: Mapping[str, Any], allowed: frozenset[str], required: frozenset[str], origin: str
) -> None:
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        raise ManifestError(
            f"{origin}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {sorted(allowed)}"
        )
    missing = sorted(required - doc.keys())
    if missing:
        raise ManifestError(f"{origin}: missing key(s) {', '.join(map(repr, missing))}")


def _text(doc: Mapping[str, Any], key: str, origin: str, *, required: bool = False) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise ManifestError(
            f"{origin}: {key!r} must be a {'non-empty ' if required else ''}string, got {value!r}"
        )
    return value


def _version(value: object, origin: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_VERSION:
        raise ManifestError(f"{origin}: 'version' must be an integer from 0 to 2**63-1, got {value!r}")
    return value


def _metrics(value: object, origin: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ManifestError(f"{origin}: 'metrics' must be an object of name → number, got {_kind(value)}")
    out: dict[str, float] = {}
    for name, number in value.items():
        if type(number) not in (int, float) or not math.isfinite(number):
            raise ManifestError(f"{origin}: metric {name!r} must be a finite number, got {number!r}")
        out[name] = float(number)
    return out


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _kind(value: object) -> str:
    return type(value).__name__


def version_from_name(name: str) -> int | None:
    """The version a folder name stands for, or None. Only canonical names ("7", not "007") count: the agent
    copies version N to ``<local_path>/N`` and must be able to name the bucket folder back from N."""
    if _CANONICAL_INT.fullmatch(name) and int(name) <= MAX_VERSION:
        return int(name)
    return None
