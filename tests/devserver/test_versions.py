"""Which versions a real server serves, and how it moves between them (B3–B6).

Runs against the devserver, or the stock binary with TFS_BINARY set (shared server, 1 s file-system polling).

B-numbers are the behaviours in docs/tfserving-behaviour.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from testkit.poll import poll_until
from testkit.savedmodels import build_gated_model, build_half_plus_two, corrupt_savedmodel, write_warmup
from testkit.servers import ServerHandle, model_config, model_config_list
from tests.devserver.helpers import Gate, gated_request


def _overwrite_in_place(source: Path, target: Path) -> None:
    """Replace a version's files without the directory ever disappearing (a poll then would forget it)."""
    shutil.copytree(source, target, dirs_exist_ok=True)


def _states(server: ServerHandle, name: str) -> dict[int, str]:
    return {v: s[0] for v, s in server.status(name).items()}


def test_versions_are_integer_children(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B3: only children named as a signed 64-bit integer are versions; "007" is version 7."""
    base = tmp_path / "ints"
    build_half_plus_two(base, 1, a=7.0)
    (base / "1").rename(base / "007")
    for name in ("v1", "1.5", ".staging-9", "99999999999999999999"):
        shutil.copytree(base / "007", base / name)
    shared_server.reload(model_config_list(model_config("ints", base, all_versions=True)))
    assert _states(shared_server, "ints") == {7: "AVAILABLE"}
    assert shared_server.predict("ints", [1.0]) == ([9.0], 7)


def test_version_policies(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B4: latest N (default 1, 0 means 1), all, and specific (a missing version is skipped)."""
    base = tmp_path / "pol"
    for version in (1, 2, 3):
        build_half_plus_two(base, version)
    cases = [
        (model_config("pol", base), {3}),
        (model_config("pol", base, latest=0), {3}),
        (model_config("pol", base, latest=2), {2, 3}),
        (model_config("pol", base, all_versions=True), {1, 2, 3}),
        (model_config("pol", base, versions=[1, 3, 42]), {1, 3}),
    ]
    for index, (entry, wanted) in enumerate(cases):
        name = f"pol{index}"
        shared_server.reload(model_config_list(entry.replace('name: "pol"', f'name: "{name}"')))
        poll_until(
            lambda n=name, w=wanted: (
                {v for v, s in _states(shared_server, n).items() if s == "AVAILABLE"} == w
            ),
            what=f"{name} serving {wanted}",
        )


def test_new_version_loads_before_old_unloads(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B5: the new version loads while the old one serves; the old one unloads only after."""
    base = tmp_path / "ap"
    build_gated_model(base, 1)
    gate = Gate(tmp_path / "gate")
    shared_server.reload(model_config_list(model_config("ap", base)))
    staged = build_gated_model(tmp_path / "staging", 2, b=5.0)
    write_warmup(staged, [gated_request("ap", gate)])
    staged.rename(base / "2")
    gate.wait_started()
    assert _states(shared_server, "ap") == {2: "LOADING", 1: "AVAILABLE"}
    assert shared_server.predict("ap", [1.0], extra_inputs={"gate": b""}) == ([3.0], 1)
    gate.open()
    shared_server.wait_for_state("ap", 1, "END")
    assert _states(shared_server, "ap") == {2: "AVAILABLE", 1: "END"}
    assert shared_server.predict("ap", [1.0], extra_inputs={"gate": b""}) == ([6.0], 2)


def test_failed_version_is_never_retried(shared_server: ServerHandle, tmp_path: Path) -> None:
    """B5/B6: a failed new version leaves the old one serving, and fixing its files does not reload it."""
    base = tmp_path / "nr"
    build_half_plus_two(base, 1)
    shared_server.reload(model_config_list(model_config("nr", base, all_versions=True)))
    corrupt_savedmodel(build_half_plus_two(tmp_path / "staging", 2))
    (tmp_path / "staging" / "2").rename(base / "2")
    state = shared_server.wait_for_state("nr", 2, "END")
    assert state[1] != 0
    assert shared_server.predict("nr", [2.0]) == ([3.0], 1)
    _overwrite_in_place(build_half_plus_two(tmp_path / "fixed", 2, a=2.0), base / "2")
    build_half_plus_two(base, 3, a=3.0)  # a later poll loads 3, so 2 was seen again and skipped
    shared_server.wait_for_state("nr", 3, "AVAILABLE")
    assert _states(shared_server, "nr")[2] == "END"
    assert shared_server.predict("nr", [2.0], version=1) == ([3.0], 1)


def test_loaded_version_is_not_reloaded_when_files_change(
    shared_server: ServerHandle, tmp_path: Path
) -> None:
    """B6: replacing a loaded version's files does not reload it."""
    base = tmp_path / "same"
    build_half_plus_two(base, 1, a=1.0)
    shared_server.reload(model_config_list(model_config("same", base, all_versions=True)))
    _overwrite_in_place(build_half_plus_two(tmp_path / "changed", 1, a=5.0), base / "1")
    build_half_plus_two(base, 2, a=2.0)
    shared_server.wait_for_state("same", 2, "AVAILABLE")
    assert shared_server.predict("same", [1.0], version=1) == ([3.0], 1)
