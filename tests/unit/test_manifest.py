"""The manifest parser and the object-name check: strict, total, and never fooled by a hostile name."""

from __future__ import annotations

import base64
import contextlib
import json
import posixpath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.adapters.sources.streams import crc32c_of_bytes
from agent.core.domain import MANIFEST_NAME, FileEntry, Manifest
from agent.core.errors import AgentError, ManifestError, UnsafePathError
from agent.core.manifest import check_name, is_crc32c, parse_manifest, serialize_manifest


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": 1,
        "model": "half_plus_two",
        "version": 3,
        "created": "2024-01-01T00:00:00+00:00",
        "creator": "test",
        "files": [
            {"path": "saved_model.pb", "size": 5, "crc32c": crc32c_of_bytes(b"hello")},
            {"path": "variables/variables.index", "size": 0, "crc32c": crc32c_of_bytes(b"")},
        ],
        "metrics": {"accuracy": 0.93},
    }
    doc.update(changes)
    return doc


def _parse(doc: object) -> Manifest:
    return parse_manifest(json.dumps(doc).encode(), origin="gs://b/m/3/manifest")


def test_parses_a_publish_manifest() -> None:
    """A well-formed manifest becomes a Manifest with every field."""
    manifest = _parse(_doc())
    assert manifest.model == "half_plus_two"
    assert manifest.version == 3
    assert manifest.files[0] == FileEntry("saved_model.pb", 5, "mnG7TA==")
    assert manifest.metrics == {"accuracy": 0.93}
    assert manifest.total_bytes == 5


def test_round_trips_through_serialize() -> None:
    """serialize → parse gives back the same manifest."""
    manifest = _parse(_doc())
    assert parse_manifest(serialize_manifest(manifest)) == manifest


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (_doc(extra=1), "unknown key(s) 'extra'"),
        ({k: v for k, v in _doc().items() if k != "files"}, "missing key(s) 'files'"),
        (_doc(format=2), "format 2 is not supported"),
        (_doc(version=True), "'version' must be an integer"),
        (_doc(version=-1), "'version' must be an integer"),
        (_doc(version="3"), "'version' must be an integer"),
        (_doc(version=2**63), "'version' must be an integer"),
        (_doc(model=""), "'model' must be a non-empty string"),
        (_doc(files=[]), "'files' must be a non-empty list"),
        (_doc(files=[{"path": "a", "size": -1, "crc32c": "AAAAAA=="}]), "'size' must be a non-negative"),
        (_doc(files=[{"path": "a", "size": 1.0, "crc32c": "AAAAAA=="}]), "'size' must be a non-negative"),
        (_doc(files=[{"path": "a", "size": 1, "crc32c": "nope"}]), "'crc32c' must be base64"),
        (_doc(files=[{"path": "a", "size": 1}]), "missing key(s) 'crc32c'"),
        (_doc(files=[{"path": "a", "size": 1, "crc32c": "AAAAAA=="}] * 2), "lists 'a' twice"),
        (_doc(files=[{"path": MANIFEST_NAME, "size": 1, "crc32c": "AAAAAA=="}]), "reserved"),
        (
            _doc(files=[{"path": p, "size": 1, "crc32c": "AAAAAA=="} for p in ("a", "a/b")]),
            "'a' is listed as a file but is also the directory",
        ),
        (_doc(metrics={"acc": "high"}), "metric 'acc' must be a finite number"),
        (_doc(metrics=[1]), "'metrics' must be an object"),
        ([1, 2], "the top level must be a JSON object"),
    ],
)
def test_rejects_malformed_manifests_naming_the_problem(doc: object, needle: str) -> None:
    """Every kind of malformed manifest fails with a ManifestError that says what is wrong."""
    with pytest.raises(ManifestError) as caught:
        _parse(doc)
    assert needle in str(caught.value)
    assert "gs://b/m/3/manifest" in str(caught.value)


def test_rejects_non_json_and_nan() -> None:
    """Bytes that are not UTF-8 JSON, and NaN/Infinity literals, are ManifestErrors."""
    with pytest.raises(ManifestError, match="not valid UTF-8 JSON"):
        parse_manifest(b"\xff{")
    with pytest.raises(ManifestError, match="not valid UTF-8 JSON"):
        parse_manifest(json.dumps(_doc()).replace("0.93", "NaN"))


def test_a_hostile_path_in_the_manifest_is_an_unsafe_path_error() -> None:
    """A manifest listing ../../etc/passwd fails with UnsafePathError naming the object."""
    doc = _doc(files=[{"path": "../../etc/passwd", "size": 1, "crc32c": "AAAAAA=="}])
    with pytest.raises(UnsafePathError, match=r"'\.\./\.\./etc/passwd'"):
        _parse(doc)


@pytest.mark.parametrize(
    "name",
    ["saved_model.pb", "variables/variables.data-00000-of-00001", "assets/vocab.txt", "a b/ü.txt", ".hidden"],
)
def test_accepts_ordinary_object_names(name: str) -> None:
    """Names a SavedModel really has pass the check unchanged."""
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("x" * 256, "longer than 255"),
        ("\ud800", "surrogate"),
    ],
)
def test_refuses_hostile_object_names(name: str, why: str) -> None:
    """Each hostile shape is refused with a reason naming the object."""
    with pytest.raises(UnsafePathError) as caught:
        check_name(name, where="gs://b/m/1/")
    assert why in str(caught.value)
    assert "gs://b/m/1/" in str(caught.value)


@given(st.text(alphabet=st.sampled_from("ab./\\\x00:~ "), max_size=12) | st.text(max_size=30))
def test_an_accepted_name_never_resolves_outside_its_directory(name: str) -> None:
    """Property: whatever check_name accepts stays strictly inside the root it is joined to."""
    try:
        check_name(name)
    except UnsafePathError:
        return
    joined = posixpath.normpath(posixpath.join("/root/stage", name))
    assert joined.startswith("/root/stage/")
    assert joined == "/root/stage/" + name
    assert "\\" not in name
    assert "\x00" not in name


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(_json)
def test_the_parser_only_ever_raises_its_own_errors_on_arbitrary_json(doc: object) -> None:
    """Property: arbitrary JSON is either a manifest or an AgentError, never a crash."""
    with contextlib.suppress(AgentError):
        _parse(doc)


@given(st.dictionaries(st.sampled_from(sorted(_doc())), _json, max_size=7).map(lambda d: {**_doc(), **d}))
def test_the_parser_is_total_on_mutated_manifests(doc: dict[str, Any]) -> None:
    """Property: a real manifest with fields replaced by arbitrary JSON parses or fails with an AgentError."""
    with contextlib.suppress(AgentError):
        _parse(doc)


_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\\"), min_size=1, max_size=10
).filter(lambda s: s not in (".", "..") and s.isprintable())
_entries = st.lists(
    st.tuples(
        st.lists(_segment, min_size=1, max_size=3).map("/".join),
        st.integers(0, 2**40),
        st.binary(min_size=4, max_size=4),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda e: e[0].split("/")[0],
)


@given(
    _entries,
    st.integers(0, 2**63 - 1),
    st.dictionaries(st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_serialize_then_parse_is_identity(
    entries: list[tuple[str, int, bytes]], version: int, metrics: dict[str, float]
) -> None:
    """Property: any valid manifest survives serialize → parse unchanged."""
    files = tuple(
        sorted(
            (FileEntry(p, size, base64.b64encode(raw).decode()) for p, size, raw in entries),
            key=lambda f: f.path,
        )
    )
    if any(f.path == MANIFEST_NAME for f in files):
        return
    manifest = Manifest(model="m", version=version, files=files, created="c", creator="x", metrics=metrics)
    assert parse_manifest(serialize_manifest(manifest)) == manifest


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("AAAAAA==", True),
        ("mnG7TA==", True),
        ("AAAA", False),
        ("AAAAAA=", False),
        (5, False),
        ("AAAAAB==", False),
    ],
)
def test_crc32c_format_is_the_canonical_gcs_form(value: object, ok: bool) -> None:
    """Only base64 of exactly 4 bytes in canonical form counts as a crc32c."""
    assert is_crc32c(value) is ok
