"""One end-to-end world: a bucket (file:// or gs://), the shared volume, TF Serving (tfs-devserver or
the stock binary via TFS_BINARY), the agent as a real process, and a load generator process.

B-numbers (B1–B24) are TF Serving behaviours described in docs/tfserving-behaviour.md.

One model ``m`` by default; ``add_model`` gives the same agent more (each with its own bucket folder and
settings), so several promises can be shown by one agent run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.service.publish import publish
from testkit.agentproc import AgentProcess
from testkit.poll import poll_until
from testkit.ports import free_port
from testkit.savedmodels import build_half_plus_two
from testkit.servers import ServerHandle, server_command

MODEL = "m"
GOLDEN = {"instances": [1.0, 2.0, 5.0], "expected": [2.5, 3.0, 4.5], "tolerance": {"atol": 1e-4}}
# Stock-compatible flags: poll the local volume every second (B7), fail loads fast (files are verified).
# Labels in the config file must not stop a restarted TF Serving from starting (B13): the flag is required.
SERVER_FLAGS = (
    "--max_num_load_retries=0",
    "--load_retry_interval_micros=100000",
    "--allow_version_labels_for_unavailable_models=true",
)


class Stack:
    def __init__(
        self,
        tmp: Path,
        *,
        source: str | None = None,
        policy: dict[str, Any] | None = None,
        agent_env: dict[str, str] | None = None,
        **model: Any,
    ) -> None:
        self.tmp = tmp
        self.bucket = source or f"file://{tmp}/bucket/{MODEL}"
        self.volume = tmp / "models"
        self.volume.mkdir()
        self.config_file = self.volume / "models.config"
        (tmp / "golden.json").write_text(json.dumps(GOLDEN))
        self.config: dict[str, Any] = {
            "serving": {
                "address": "",
                "model_config_file": str(self.config_file),
                "load_timeout": "60s",
                "rpc_timeout": "10s",
            },
            "state_dir": str(self.volume / ".tfs-agent"),
            "models": [
                {
                    "name": MODEL,
                    "source": self.bucket,
                    "local_path": str(self.volume / MODEL),
                    "schedule": {"interval": "500ms"},
                    "golden": str(tmp / "golden.json"),
                    "policy": {"bake_time": "1s", **(policy or {})},
                    **model,
                }
            ],
        }
        self.agent_env = agent_env
        self.server: ServerHandle | None = None
        self.agent: AgentProcess | None = None
        self.loads: list[Load] = []

    def add_model(self, name: str, *, policy: dict[str, Any] | None = None, **settings: Any) -> Stack:
        """Another model for the same agent, with ``m``'s settings unless overridden (before ``start``)."""
        base = dict(self.config["models"][0])
        base.update(
            name=name,
            source=f"file://{self.tmp}/bucket/{name}",
            local_path=str(self.volume / name),
            policy={"bake_time": "1s", **(policy or {})},
            **settings,
        )
        self.config["models"].append(base)
        return self

    def bucket_dir(self, model: str = MODEL) -> Path:
        """The file:// bucket folder of ``model`` (its version folders go right under it)."""
        source = next(m["source"] for m in self.config["models"] if m["name"] == model)
        assert source.startswith("file://"), source
        return Path(source.removeprefix("file://"))

    # ---- processes ----

    def start(self) -> Stack:
        """Agent first (it writes the start-up config TF Serving needs, B2), then TF Serving."""
        port = free_port()
        self.config["serving"]["address"] = f"127.0.0.1:{port}"
        for model in self.config["models"]:  # an empty bucket, not a missing one, before the first publish
            if model["source"].startswith("file://"):
                Path(model["source"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        self.agent = AgentProcess(self.tmp, self.config, env=self.agent_env).start()
        assert self.config_file.exists()
        self.server = self._launch_on(port)
        return self

    def _launch_on(self, port: int) -> ServerHandle:
        """TF Serving on a fixed port (the one in the agent's config), also after a restart."""
        command = [
            *server_command(),
            f"--port={port}",
            f"--model_config_file={self.config_file}",
            "--file_system_poll_wait_seconds=1",
            *SERVER_FLAGS,
            *self.extra_server_flags(),
        ]
        workdir = self.tmp / f"tfs-{port}-{len(list(self.tmp.glob('tfs-*')))}"
        workdir.mkdir()
        with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, cwd=workdir)
        return ServerHandle(process, port, None, workdir, command).wait_ready()

    def extra_server_flags(self) -> list[str]:
        """More TF Serving flags (a subclass's REST and monitoring ports, say)."""
        return []

    def restart_server(self, *, kill: bool = True) -> None:
        assert self.server is not None
        if kill:
            self.server.kill()
        else:
            self.server.stop()
        self.server = self._launch_on(self.server.grpc_port)

    def restart_agent(self, *, kill: bool = True, between: Callable[[], None] | None = None) -> None:
        """Stop (SIGKILL or SIGTERM) and start the agent again; ``between`` runs while it is down."""
        assert self.agent is not None
        if kill:
            self.agent.kill()
        else:
            self.agent.stop()
        if between is not None:
            between()
        self.agent = AgentProcess(self.tmp, self.config, env=self.agent_env)
        self.agent.start()

    def close(self) -> None:
        for load in self.loads:
            load.stop()
        if self.agent:
            self.agent.stop()
        if self.server:
            self.server.stop()

    # ---- the bucket ----

    def publish(
        self,
        version: int,
        build: Callable[[Path, int], Path] | None = None,
        *,
        model: str = MODEL,
        **kw: Any,
    ) -> None:
        """Build a SavedModel (half_plus_two unless ``build``) and ``publish`` it as ``model``'s version."""
        src = (build or build_half_plus_two)(self.tmp / "build", version, **kw)
        uri = self.bucket if model == MODEL else f"file://{self.bucket_dir(model)}"
        publish(src, uri, version, progress=False, model=model)

    # ---- observing ----

    def model(self, name: str = MODEL) -> dict[str, Any]:
        assert self.agent is not None
        return self.agent.model(name)

    def wait_serving(self, version: int, timeout: float = 60, *, model: str = MODEL) -> dict[str, Any]:
        return poll_until(
            lambda: (m := self.model(model)).get("serving") == version and m.get("pending") is None and m,
            timeout=timeout,
            interval=0.1,
            what=f"version {version} of {model} serving",
        )

    def wait_quarantined(self, version: int, timeout: float = 60, *, model: str = MODEL) -> str:
        return str(
            poll_until(
                lambda: self.model(model).get("quarantined", {}).get(str(version)),
                timeout=timeout,
                interval=0.1,
                what=f"version {version} of {model} quarantined",
            )
        )

    def wait_plan(self, action: str, version: int | None, *, model: str = MODEL, timeout: float = 60) -> str:
        """The reason of ``model``'s last plan once it is ``action`` for ``version``."""

        def planned() -> str | None:
            plan = self.model(model).get("last_plan") or {}
            return plan["reason"] if (plan.get("action"), plan.get("version")) == (action, version) else None

        return str(
            poll_until(planned, timeout=timeout, interval=0.1, what=f"{model}: plan {action} {version}")
        )

    def wait_passes(self, count: int = 2, *, model: str = MODEL, timeout: float = 60) -> None:
        """Until ``model`` has finished ``count`` more passes from now (each a fresh look at the bucket)."""
        start = time.time()
        seen: set[float] = set()

        def passed() -> bool:
            last = self.model(model).get("last_poll")
            if last is not None and last > start:
                seen.add(last)
            return len(seen) >= count

        poll_until(passed, timeout=timeout, interval=0.1, what=f"{count} passes of {model}")

    def tfs_state(self, model: str = MODEL) -> dict[int, tuple[str, int, str]]:
        assert self.server is not None
        return self.server.status(model)

    def load(self, rate: float = 50.0, label: str | None = "stable") -> Load:
        assert self.server is not None
        load = Load(self.tmp / f"load-{len(self.loads)}.json", self.server.grpc_address, rate, label)
        self.loads.append(load)
        return load


class Load:
    """agent.service.demo.load in its own process: open-loop Predicts, counts written on SIGTERM."""

    def __init__(self, out: Path, address: str, rate: float, label: str | None) -> None:
        self.out = out
        cmd = [sys.executable, "-m", "agent.service.demo.load", address, MODEL, str(rate), str(out)]
        self.proc = subprocess.Popen(cmd + ([label] if label else []))
        self.result: dict[str, Any] | None = None

    def stop(self) -> dict[str, Any]:
        if self.result is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(30)
            self.result = json.loads(self.out.read_text())
        return self.result

    def versions(self) -> set[int]:
        return {int(v) for _, _, v in self.stop()["samples"] if v >= 0}
