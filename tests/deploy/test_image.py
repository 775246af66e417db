"""The agent image without TensorFlow: the build helpers in docker/ do what the Dockerfile relies on.

No Docker engine runs here, so the image itself is not built in tests; instead the two build steps that make
it small are exercised on this machine: the requirement list without tensorflow-serving-api, and TF Serving's
protos importing from a proto-only ``tensorflow`` package laid down by extract_protos.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement

from tests.deploy.conftest import DOCKER, ROOT


def _script(name: str) -> ModuleType:
    """Import one of docker/'s build scripts (they are files, not a package)."""
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


extract_protos = _script("extract_protos")
runtime_requirements = _script("runtime_requirements")

_PROBE = """
import sys
import tensorflow
from tensorflow_serving.apis import predict_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2
from tensorflow.core.protobuf import saved_model_pb2
assert tensorflow.__file__.startswith(sys.argv[1]), tensorflow.__file__
assert "tensorflow.python" not in sys.modules
assert not hasattr(tensorflow, "constant")
print("ok")
"""


def test_runtime_requirements_drop_only_tensorflow_serving_api() -> None:
    """The image installs every runtime dependency from pyproject except tensorflow-serving-api."""
    requirements = runtime_requirements.runtime_requirements(ROOT / "pyproject.toml")
    names = {runtime_requirements._name(r) for r in requirements}
    assert "tensorflow-serving-api" not in names
    assert {"grpcio", "protobuf", "prometheus-client", "google-cloud-storage"} <= names
    assert not any(name.startswith("tensorflow") for name in names)


def test_protos_import_from_a_proto_only_tensorflow(tmp_path: Path) -> None:
    """TF Serving's gRPC and config modules import from the extracted protos, never running TensorFlow."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the dev environment should have tensorflow installed (make install)")
    site_packages = Path(next(iter(spec.submodule_search_locations))).parent
    copied = extract_protos.extract(site_packages, tmp_path)
    assert copied > 30
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_extract_refuses_an_incomplete_copy(tmp_path: Path) -> None:
    """A pb2 module importing one that is not in the copy stops the build instead of failing at run time."""
    source = tmp_path / "src" / "tensorflow" / "core"
    source.mkdir(parents=True)
    (source / "a_pb2.py").write_text("from tensorflow.core import missing_pb2 as m\n")
    with pytest.raises(SystemExit, match="missing_pb2"):
        extract_protos.extract(tmp_path / "src", tmp_path / "dest")


def test_dockerfile_copies_only_what_the_dockerignore_lets_in() -> None:
    """Every COPY source exists and is re-included by docker/Dockerfile.dockerignore."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = [
        src
        for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
        for src in line.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded from the build context"


def _constraints() -> dict[str, str]:
    lines = (DOCKER / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    assert all(len(pin) == 2 for pin in pins), "every line of docker/constraints.txt is name==version"
    return {runtime_requirements._name(name): version for name, version in pins}


def test_constraints_pin_every_runtime_requirement_inside_its_range() -> None:
    """docker/constraints.txt pins every dependency of the default image (extras too) in its range."""
    pins = _constraints()
    pyproject = ROOT / "pyproject.toml"
    requirements = runtime_requirements.runtime_requirements(pyproject, _dockerfile_arg("EXTRAS"))
    for requirement in map(Requirement, requirements):
        name = runtime_requirements._name(requirement.name)
        assert name in pins, f"{name} is not pinned in docker/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    assert {"google-cloud-pubsub", "boto3", "azure-storage-blob", "azure-identity"} <= set(pins)
    assert "tensorflow-serving-api" not in pins, "installed --no-deps at TFS_VERSION instead"
    assert not any(name.startswith("tensorflow") for name in pins)


def test_image_carries_the_notification_and_bucket_extras_by_default() -> None:
    """The Dockerfile's EXTRAS default is pubsub, s3, azure and azure-identity; the install step uses it."""
    assert set(_dockerfile_arg("EXTRAS").split(",")) == {"pubsub", "s3", "azure", "azure-identity"}
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert 'runtime_requirements.py pyproject.toml "${EXTRAS}" > /tmp/requirements.txt' in dockerfile


def _print_requirements(*args: str) -> subprocess.CompletedProcess[str]:
    """Run docker/runtime_requirements.py as the Dockerfile does."""
    return subprocess.run(
        [sys.executable, str(DOCKER / "runtime_requirements.py"), str(ROOT / "pyproject.toml"), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_runtime_requirements_prints_the_extras_requirements() -> None:
    """EXTRAS=s3,azure adds boto3 and azure-storage-blob to the core list; an empty EXTRAS adds nothing."""
    core = _print_requirements("").stdout.split()
    assert core == _print_requirements().stdout.split()
    result = _print_requirements(" s3, azure ")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[: len(core)] == core
    assert lines[len(core) :] == ["boto3>=1.34,<2", "azure-storage-blob>=12.19,<13"]
    assert not any(runtime_requirements._name(line) == "google-cloud-pubsub" for line in core)


def test_extras_expand_a_self_reference(tmp_path: Path) -> None:
    """An extra naming ``<project>[a,b]`` contributes a's and b's requirements, not the self-reference."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "tfs_agent"\ndependencies = ["click"]\n'
        '[project.optional-dependencies]\ns3 = ["boto3"]\nazure = ["azure-storage-blob"]\n'
        'cloud = ["tfs-agent[s3,azure]", "boto3", "google-cloud-pubsub"]\n'
    )
    found = runtime_requirements.runtime_requirements(pyproject, "cloud")
    assert found == ["click", "boto3", "azure-storage-blob", "google-cloud-pubsub"]


@pytest.mark.parametrize("extras", ["s3,gcs", "dev"])
def test_runtime_requirements_refuses_an_unknown_extra(extras: str) -> None:
    """An EXTRAS name pyproject has no image extra for fails the build step, naming it and the valid ones."""
    result = _print_requirements(extras)
    bad = extras.rpartition(",")[2]
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"unknown extra {bad!r}" in result.stderr
    assert "azure,azure-identity,pubsub,s3" in result.stderr


def test_image_build_installs_with_the_constraints() -> None:
    """The Dockerfile installs the runtime requirements with -c docker/constraints.txt."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"pip install -r /tmp/requirements\.txt -c docker/constraints\.txt", dockerfile)


def test_pins_lists_a_pip_report_sorted(tmp_path: Path) -> None:
    """runtime_requirements --pins turns a pip installation report into sorted, normalised name==version."""
    report = tmp_path / "report.json"
    installs = [{"metadata": {"name": n, "version": v}} for n, v in [("PyYAML", "6.0.4"), ("click", "8.5.1")]]
    report.write_text(json.dumps({"install": installs}))
    assert runtime_requirements.pins(report) == ["click==8.5.1", "pyyaml==6.0.4"]


def _dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", (DOCKER / "Dockerfile").read_text(), re.MULTILINE)
    assert match, name
    return match.group(1)


def test_tf_serving_image_and_protos_are_the_same_release() -> None:
    """TFS_VERSION (the protos) equals the tensorflow/serving tag in k8s/base and in compose."""
    deployment = next(yaml.safe_load_all((ROOT / "k8s" / "base" / "deployment.yaml").read_text()))
    containers = deployment["spec"]["template"]["spec"]["containers"]
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    images = [c["image"] for c in containers if c["name"] == "tensorflow-serving"]
    images.append(compose["tfserving"]["image"])
    assert {image.rpartition(":")[2] for image in images} == {_dockerfile_arg("TFS_VERSION")}


def test_final_stage_has_no_installer() -> None:
    """The final stage uninstalls the base image's pip (python:slim ships it) and ensurepip's copies."""
    final = (DOCKER / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert re.search(r"python -m pip uninstall --yes pip setuptools wheel", final)
    assert "ensurepip" in final
    assert "TF_WHEEL=tensorflow" in (ROOT / "docs" / "deploying.md").read_text()
