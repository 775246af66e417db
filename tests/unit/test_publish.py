"""``tfs-agent publish``: SavedModel check, manifest last, no silent overwrite, and the click command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.adapters.sources.local import LocalSink
from agent.adapters.sources.streams import crc32c_of_bytes
from agent.core.domain import MANIFEST_NAME
from agent.core.manifest import parse_manifest
from agent.service.publish import PublishError, collect_saved_model, publish, publish_command


def _export(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "variables" / "variables.index").write_bytes(b"idx")
    return root


class RecordingSink(LocalSink):
    """A file:// sink that remembers the order of writes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.order: list[str] = []

    def upload(
        self,
        path: Path,
        name: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        crc32c: str | None = None,
    ) -> None:
        super().upload(path, name, on_bytes=on_bytes, crc32c=crc32c)
        self.order.append(name)

    def write_bytes(self, name: str, data: bytes) -> None:
        super().write_bytes(name, data)
        self.order.append(name)

    def delete(self, name: str) -> None:
        super().delete(name)
        self.order.append(f"delete {name}")


def test_the_manifest_is_written_last_with_sizes_and_crc32c(tmp_path: Path) -> None:
    """Every file is uploaded before the manifest, which records each file's size and crc32c."""
    sink = RecordingSink(tmp_path / "bucket")
    manifest = publish(_export(tmp_path / "export"), "file:///unused/half", 7, progress=False, sink=sink)
    assert sink.order[-1] == f"7/{MANIFEST_NAME}"
    assert sorted(sink.order[:-1]) == ["7/saved_model.pb", "7/variables/variables.index"]
    stored = parse_manifest((tmp_path / "bucket" / "7" / MANIFEST_NAME).read_bytes())
    assert stored == manifest
    assert stored.model == "half"
    assert {(f.path, f.size, f.crc32c) for f in stored.files} == {
        ("saved_model.pb", 5, crc32c_of_bytes(b"graph")),
        ("variables/variables.index", 3, crc32c_of_bytes(b"idx")),
    }


def test_a_directory_without_saved_model_pb_is_refused(tmp_path: Path) -> None:
    """SRC_DIR must hold saved_model.pb or saved_model.pbtxt."""
    (tmp_path / "x").mkdir()
    with pytest.raises(PublishError, match="not a SavedModel"):
        collect_saved_model(tmp_path / "x")
    with pytest.raises(PublishError, match="not a directory"):
        collect_saved_model(tmp_path / "absent")


def test_a_file_named_like_the_manifest_is_refused(tmp_path: Path) -> None:
    """The manifest name is reserved, so a SavedModel containing it cannot be published."""
    export = _export(tmp_path / "export")
    (export / MANIFEST_NAME).write_text("{}")
    with pytest.raises(PublishError, match="reserved"):
        collect_saved_model(export)


def test_overwriting_needs_force_and_force_hides_the_old_manifest_first(tmp_path: Path) -> None:
    """A complete version is not overwritten without force; with force the old manifest goes first."""
    sink = RecordingSink(tmp_path / "bucket")
    export = _export(tmp_path / "export")
    publish(export, "file:///b/m", 1, progress=False, sink=sink)
    with pytest.raises(PublishError, match="--force"):
        publish(export, "file:///b/m", 1, progress=False, sink=sink)
    sink.order.clear()
    publish(export, "file:///b/m", 1, progress=False, sink=sink, force=True)
    assert sink.order[0] == f"delete 1/{MANIFEST_NAME}"
    assert sink.order[-1] == f"1/{MANIFEST_NAME}"


def test_a_bad_model_name_asks_for_model(tmp_path: Path) -> None:
    """A destination whose last part is not a usable model name needs --model."""
    with pytest.raises(PublishError, match="--model"):
        publish(_export(tmp_path / "e"), "gs://bucket/has space", 1, progress=False, sink=LocalSink(tmp_path))


def test_the_cli_publishes_and_reports(tmp_path: Path) -> None:
    """`publish SRC DEST --version N` uploads and prints a one-line summary; errors exit non-zero."""
    export = _export(tmp_path / "export")
    dest = f"file://{tmp_path}/bucket/half"
    runner = CliRunner()
    result = runner.invoke(publish_command, [str(export), dest, "--version", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "published" in result.output
    assert (tmp_path / "bucket" / "half" / "3" / MANIFEST_NAME).is_file()
    again = runner.invoke(publish_command, [str(export), dest, "--version", "3"])
    assert again.exit_code == 1
    assert "already a complete version" in again.output


def test_the_cli_help_names_every_option() -> None:
    """--help documents the arguments and options."""
    result = CliRunner().invoke(publish_command, ["--help"])
    for word in ("SRC_DIR", "DEST_URI", "--version", "--force", "--model", "--concurrency", "--no-progress"):
        assert word in result.output
