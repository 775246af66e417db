"""The ModelServerConfig text the agent owns: rendering, reading it back, refusing what it would not write."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.adapters.tfserving import config_text
from agent.core.domain import ServedModel
from agent.core.errors import ConfigError

NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,12}", fullmatch=True)
VERSIONS = st.lists(st.integers(min_value=1, max_value=2**63 - 1), min_size=1, max_size=4, unique=True)


@st.composite
def served_models(draw: st.DrawFn) -> list[ServedModel]:
    names = draw(st.lists(NAMES, max_size=4, unique=True))
    models = []
    for name in names:
        versions = tuple(draw(VERSIONS))
        labels = draw(st.dictionaries(NAMES, st.sampled_from(versions), max_size=3))
        base = draw(st.from_regex(r"/[a-z0-9_/ .\"\\-]{1,30}", fullmatch=True))
        models.append(ServedModel(name, base, versions, tuple(labels.items())))
    return models


def normal(model: ServedModel) -> ServedModel:
    return ServedModel(
        model.name, model.base_path, tuple(sorted(set(model.versions))), tuple(sorted(model.labels))
    )


def test_render_is_the_documented_shape() -> None:
    """One entry per model: platform tensorflow, specific policy, labels (docs/tfserving-behaviour.md)."""
    text = config_text.render([ServedModel("m", "/models/m", (43, 42), (("stable", 42),))])
    assert text == config_text.HEADER + (
        "model_config_list {\n"
        "  config {\n"
        '    name: "m"\n'
        '    base_path: "/models/m"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy {\n"
        "      specific {\n"
        "        versions: 42\n"
        "        versions: 43\n"
        "      }\n"
        "    }\n"
        "    version_labels {\n"
        '      key: "stable"\n'
        "      value: 42\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def test_empty_config_is_an_empty_list() -> None:
    """A fresh volume starts TF Serving on an empty model_config_list (B2, B9); it parses back to nothing."""
    text = config_text.render([])
    assert "model_config_list {\n}" in text
    assert config_text.parse(text) == ()


@given(served_models(), st.randoms())
def test_render_is_deterministic_and_round_trips(models: list[ServedModel], rnd: random.Random) -> None:
    """Any order of the same models renders the same bytes, and parse gives the models back (normalised)."""
    shuffled = list(models)
    rnd.shuffle(shuffled)
    text = config_text.render(models)
    assert config_text.render(shuffled) == text
    assert config_text.parse(text) == tuple(sorted((normal(m) for m in models), key=lambda m: m.name))


def test_duplicate_names_are_refused() -> None:
    """TF Serving rejects a model listed twice (B10), so the renderer never produces one."""
    with pytest.raises(ValueError, match="listed twice"):
        config_text.render([ServedModel("m", "/a", (1,)), ServedModel("m", "/b", (2,))])


def test_parse_refuses_other_policies() -> None:
    """A hand-written `latest` policy is not silently read as "no versions": the error says what to do."""
    text = 'model_config_list { config { name: "m" base_path: "/m" model_version_policy { latest {} } } }'
    with pytest.raises(ConfigError, match=r"latest policy.*move the file aside"):
        config_text.parse(text, "models.config")


def test_parse_error_names_the_file() -> None:
    """A corrupt config file is a ConfigError naming the file and the parser's line:column reason."""
    with pytest.raises(ConfigError, match=r"models.config: not a text-format ModelServerConfig: 1:"):
        config_text.parse("model_config_list { config { nam: 1 } }", "models.config")


def test_config_text_is_pure() -> None:
    """Rendering does not pull in grpc (the pure core imports no I/O library)."""
    code = (
        "import sys, agent.adapters.tfserving.config_text; assert 'grpc' not in sys.modules, 'grpc imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
