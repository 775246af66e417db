"""Which cloud SDKs an agent loads, and what its process costs, for a config using one scheme.

``probe(scheme)`` builds the agent the way ``tfs-agent run`` does (``cli.build_agent``: settings, every
model's source opened) for a one-model config on that scheme, in a fresh interpreter, and reports its RSS
(VmRSS, VmHWM) and the SDK packages in ``sys.modules``. Nothing is contacted: the emulator addresses are
dead loopback ports, and opening a source makes no request. Used by tests/unit/test_sources_lazy.py and
benchmarks/footprint.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from testkit.emulators import AWS_ENV, azurite_connection_string

SDKS = ("google.cloud.storage", "boto3", "botocore", "azure.storage.blob", "azure.identity")
SOURCES = {
    "file": "file:///srv/bucket/m",
    "gs": "gs://bucket/m",
    "s3": "s3://bucket/m",
    "az": "az://container/m",
}
_DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, and nothing is sent anyway
_SCRIPT = """
import json, pathlib, sys
from agent.infra.config import settings_from_mapping
from agent.service.cli import build_agent
settings = settings_from_mapping(json.loads(sys.argv[1]))
agent = build_agent(settings)
status = dict(
    line.split(":", 1) for line in pathlib.Path("/proc/self/status").read_text().splitlines() if ":" in line
)
print(json.dumps({
    "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
    "hwm_mib": int(status["VmHWM"].split()[0]) / 1024,
    "sdks": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules),
}))
"""


def probe(scheme: str, workdir: Path) -> dict[str, Any]:
    """RSS and loaded SDKs of an agent built for one model on ``scheme`` (file, gs, s3, az)."""
    config = {
        "state_dir": str(workdir / "state"),
        "serving": {"model_config_file": str(workdir / "models.config")},
        "models": [{"name": "m", "source": SOURCES[scheme], "local_path": str(workdir / "models" / "m")}],
    }
    env = {
        **os.environ,
        **AWS_ENV,
        "STORAGE_EMULATOR_HOST": _DEAD,
        "AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(_DEAD),
    }
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(config), json.dumps(SDKS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result
