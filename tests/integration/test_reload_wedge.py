"""The wedge detector in the agent's client against a real model server: ReloadConfig wedged behind a stuck
reload (docs/tfserving-behaviour.md#b12) is counted and reported, a slow load is not, and the agent never
sends the kind of path that wedges it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agent.adapters.tfserving import config_text
from agent.adapters.tfserving.client import GrpcServingControl
from agent.core.domain import ServedModel, VersionState
from agent.core.errors import ServingDeadlineError, ServingRejectedError
from agent.core.wedge import ReloadWatch
from testkit.poll import poll_until
from testkit.savedmodels import build_gated_model, build_half_plus_two, write_warmup
from testkit.servers import ServerHandle, model_config, model_config_list, start_server
from tests.devserver.helpers import Gate, gated_request

RELOAD_DEADLINE = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server of this module's own: a wedge lasts until the stuck model gets a version (each test ends
    with none left) or the server restarts."""
    handle = start_server(tmp_path_factory.mktemp("tfs"), model_config=config_text.render([]), rest=False)
    yield handle
    handle.stop()


@pytest.fixture
def client(server: ServerHandle, tmp_path: Path) -> Iterator[GrpcServingControl]:
    with GrpcServingControl(
        server.grpc_address,
        tmp_path / "models.config",
        rpc_timeout=10,
        reload_timeout=RELOAD_DEADLINE,
        reload_watch=ReloadWatch(threshold=2),
    ) as made:
        yield made


def wedge(server: ServerHandle, stuck: Path) -> None:
    """What another client of port 8500 can do: add a model whose base_path has no integer version."""
    stuck.mkdir(parents=True)
    with pytest.raises(grpc.RpcError) as err:
        server.reload(model_config_list(model_config("stuck", stuck)), timeout=1)
    assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_consecutive_deadlines_while_status_answers_are_a_wedge_until_a_reload_answers(
    server: ServerHandle, client: GrpcServingControl, tmp_path: Path
) -> None:
    """Two ReloadConfig deadlines in a row with GetModelStatus answering make the watch wedged, the error
    says so; once the stuck reload can finish, the next reload that answers clears it."""
    stuck, base = tmp_path / "stuck", tmp_path / "hp"
    build_half_plus_two(base, 1)
    wedge(server, stuck)
    change = {"hp": ServedModel("hp", str(base), (1,))}
    with pytest.raises(ServingDeadlineError) as first:
        client.apply(change)
    assert (client.reload_watch.deadlines, client.reload_watch.wedged) == (1, False)
    assert "wedged" not in first.value.reason
    with pytest.raises(ServingDeadlineError) as second:
        client.apply(change)
    assert client.reload_watch.wedged
    assert "2 ReloadConfig calls in a row ran past their deadline while GetModelStatus answered" in (
        second.value.reason
    )
    assert "restart TF Serving" in second.value.reason

    build_half_plus_two(stuck, 1)  # the stuck reload (and those queued behind it) can finish now

    def answers() -> bool:
        try:
            client.apply(change)
        except ServingDeadlineError:
            return False
        return True

    poll_until(answers, timeout=60, interval=0.5, what="a ReloadConfig that answers")
    assert (client.reload_watch.deadlines, client.reload_watch.wedged) == (0, False)


def test_a_slow_load_is_not_a_wedge(server: ServerHandle, client: GrpcServingControl, tmp_path: Path) -> None:
    """A new model still LOADING when ReloadConfig's deadline passes (warmup held) counts as no deadline."""
    base = tmp_path / "g"
    gate = Gate(tmp_path / "warmup-gate")
    write_warmup(build_gated_model(base, 1), [gated_request("g", gate)])
    for _ in range(3):
        with pytest.raises(ServingDeadlineError):
            client.apply({"g": ServedModel("g", str(base), (1,))})
        assert client.status("g")[0].state is VersionState.LOADING
        assert client.reload_watch.deadlines == 0
    gate.open()
    server.wait_for_state("g", 1, "AVAILABLE")


def test_a_path_without_an_integer_version_is_never_sent(
    server: ServerHandle, client: GrpcServingControl, tmp_path: Path
) -> None:
    """The agent refuses to send what would wedge TF Serving (B12): TF Serving never hears of the model and
    its reloads keep answering."""
    empty = tmp_path / "empty"
    (empty / "not-a-version").mkdir(parents=True)
    with pytest.raises(ServingRejectedError, match=r"not sent: .*empty/1 is not a complete SavedModel"):
        client.apply({"e": ServedModel("e", str(empty), (1,))})
    assert server.status("e") == {}
    assert server.reload(model_config_list(), timeout=10).status.error_code == 0
    assert client.configured() == {}
