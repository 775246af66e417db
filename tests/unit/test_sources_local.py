"""The file:// adapter and the URI dispatch: a directory that behaves like a bucket."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.adapters.sources import open_sink, open_source, read_uri, stat_uri
from agent.adapters.sources.base import ModelSink, ModelSource, ObjectNotFoundError
from agent.adapters.sources.gcs import split_gs_uri
from agent.adapters.sources.local import LocalSink, LocalSource, path_from_file_uri
from agent.adapters.sources.streams import crc32c_of_bytes
from agent.core.errors import ConfigError, UnsafePathError


def _bucket(tmp_path: Path) -> Path:
    for rel, data in {
        "1/saved_model.pb": b"one",
        "10/saved_model.pb": b"ten",
        "10/variables/v": b"vv",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "007").mkdir()
    (tmp_path / "latest").mkdir()
    (tmp_path / "3").write_text("a file, not a folder")
    return tmp_path


def test_versions_are_canonical_integer_folders(tmp_path: Path) -> None:
    """Only folders named like "10" are versions; "007", "latest" and files are not."""
    assert LocalSource(_bucket(tmp_path)).list_versions() == {1, 10}


def test_listing_carries_sizes_and_gcs_style_crc32c(tmp_path: Path) -> None:
    """Objects are listed with '/' names, sizes and the crc32c GCS would report."""
    objects = LocalSource(_bucket(tmp_path)).list_objects(10)
    assert [(o.name, o.size, o.crc32c) for o in objects] == [
        ("saved_model.pb", 3, crc32c_of_bytes(b"ten")),
        ("variables/v", 2, crc32c_of_bytes(b"vv")),
    ]
    assert LocalSource(tmp_path).list_objects(99) == ()


def test_the_crc32c_cache_notices_a_rewritten_file(tmp_path: Path) -> None:
    """A file changed between listings gets a fresh checksum."""
    source = LocalSource(_bucket(tmp_path))
    source.list_objects(1)
    path = tmp_path / "1" / "saved_model.pb"
    path.write_bytes(b"ONE")
    os.utime(path, ns=(1, 1))
    assert source.list_objects(1)[0].crc32c == crc32c_of_bytes(b"ONE")


def test_missing_objects_and_hostile_names(tmp_path: Path) -> None:
    """A missing object is ObjectNotFoundError; a name escaping the version folder is refused."""
    source = LocalSource(_bucket(tmp_path))
    with pytest.raises(ObjectNotFoundError, match="nope"):
        source.read_bytes(1, "nope")
    with pytest.raises(UnsafePathError):
        source.read_bytes(1, "../10/saved_model.pb")


def test_download_returns_the_crc32c_of_what_it_wrote(tmp_path: Path) -> None:
    """download streams the object to dest and reports its checksum."""
    source = LocalSource(_bucket(tmp_path / "b"))
    dest = tmp_path / "out"
    assert source.download(10, "variables/v", dest) == crc32c_of_bytes(b"vv")
    assert dest.read_bytes() == b"vv"


def test_sink_writes_whole_files_only(tmp_path: Path) -> None:
    """The sink writes through a temp file and a rename, leaving no temp files behind."""
    sink = LocalSink(tmp_path)
    src = tmp_path / "src.bin"
    src.write_bytes(b"data")
    sink.upload(src, "2/variables/v")
    sink.write_bytes("2/m.json", b"{}")
    assert sink.exists("2/m.json")
    sink.delete("2/m.json")
    sink.delete("2/m.json")
    assert not sink.exists("2/m.json")
    assert sorted(p.name for p in (tmp_path / "2").rglob("*")) == ["v", "variables"]


@pytest.mark.parametrize("uri", ["file://relative/x", "file://otherhost/x", "file:///x?q=1", "http://x"])
def test_bad_file_uris_are_config_errors(uri: str) -> None:
    """Relative paths, remote hosts and other schemes are refused with the fix."""
    with pytest.raises(ConfigError, match="file:///"):
        path_from_file_uri(uri)


def test_gs_uris_split_into_bucket_and_prefix() -> None:
    """gs://bucket/a/b becomes ('bucket', 'a/b/'); a bad bucket name is a ConfigError."""
    assert split_gs_uri("gs://ml-models/half_plus_two/") == ("ml-models", "half_plus_two/")
    assert split_gs_uri("gs://ml-models") == ("ml-models", "")
    with pytest.raises(ConfigError, match="bucket name"):
        split_gs_uri("gs://A/x")


def test_dispatch_by_scheme(tmp_path: Path) -> None:
    """open_source/open_sink pick the adapter; unknown schemes are ConfigErrors."""
    assert isinstance(open_source(f"file://{tmp_path}"), ModelSource)
    assert isinstance(open_sink(f"file://{tmp_path}"), ModelSink)
    assert isinstance(open_sink(str(tmp_path)), LocalSink)
    with pytest.raises(ConfigError, match="unsupported"):
        open_source("hdfs://bucket/m")


def test_read_uri_reads_plain_paths_and_file_uris(tmp_path: Path) -> None:
    """Golden files may be given as a path or a file:// URI; a missing one is ObjectNotFoundError."""
    golden = tmp_path / "golden.json"
    golden.write_bytes(b"{}")
    assert read_uri(str(golden)) == b"{}"
    assert read_uri(f"file://{golden}") == b"{}"
    with pytest.raises(ObjectNotFoundError):
        read_uri(str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError):
        read_uri("https://example.com/golden.json")


def test_stat_uri_changes_when_the_file_is_replaced(tmp_path: Path) -> None:
    """A local golden file's generation is its mtime and size: stable while untouched, new after a
    rewrite by rename (as a labelling pipeline does); a missing file is ObjectNotFoundError."""
    golden = tmp_path / "golden.json"
    golden.write_bytes(b"{}")
    first = stat_uri(f"file://{golden}")
    assert stat_uri(str(golden)) == first
    temp = tmp_path / "golden.tmp"
    temp.write_bytes(b'{"a": 1}')
    os.utime(temp, ns=(golden.stat().st_mtime_ns + 1, golden.stat().st_mtime_ns + 1))
    temp.replace(golden)
    assert stat_uri(str(golden)) != first
    with pytest.raises(ObjectNotFoundError):
        stat_uri(str(tmp_path / "absent.json"))
