"""The first poll after a restart on gs:// (fake-gcs-server, requests counted through a proxy): every
version's manifest read once, concurrently through one client, and a manifest rewritten in the bucket while
the agent was down is what the restarted agent sees: discovery keeps no cache across restarts to go stale.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from agent.core.domain import MANIFEST_NAME
from agent.core.manifest import serialize_manifest
from agent.infra.config_policy import parse_completion
from agent.pipeline.discovery import Discovery
from testkit.fakes_sources import manifest_for
from testkit.gcs import FakeGcsServer, object_requests
from testkit.proxy import Proxy
from testkit.stores import GcsStore

VERSIONS = 40
FILES = {"saved_model.pb": b"graph", "variables/variables.data": b"w" * 64}


@pytest.fixture
def proxy(gcs_emulator: FakeGcsServer) -> Iterator[Proxy]:
    with Proxy(gcs_emulator.port) as started:
        yield started


def _manifest_reads(proxy: Proxy, since: int) -> list[int]:
    """The versions whose manifest was read (GET .../o/m%2F<N>%2Ftfs-agent-manifest.json) since ``since``."""
    pattern = re.compile(rf"^GET .*/o/m%2F(\d+)%2F{re.escape(MANIFEST_NAME)}")
    return [int(m[1]) for r in proxy.requests[since:] if (m := pattern.match(r))]


def test_a_restarted_discovery_reads_each_manifest_once_and_sees_one_rewritten_meanwhile(
    gcs_emulator: FakeGcsServer, proxy: Proxy
) -> None:
    """40 versions: the first poll is 1 listing + 40 manifest reads (concurrent, through one client), an
    idle poll is the listing alone, and after version 5's manifest is rewritten (another file set) a new
    Discovery, as a restarted agent makes, reads it again and reports the new manifest."""
    store = GcsStore(gcs_emulator)
    uri = store.new_uri("m")
    for version in range(1, VERSIONS + 1):
        for name, data in FILES.items():
            store.put(uri, f"{version}/{name}", data)
        store.put(uri, f"{version}/{MANIFEST_NAME}", serialize_manifest(manifest_for("m", version, FILES)))
    source = store.source(uri, via=proxy.url)

    start = len(proxy.requests)
    found = Discovery(source, parse_completion("manifest")).poll()
    reads = _manifest_reads(proxy, start)
    assert len(object_requests(proxy.requests[start:])) == 1 + VERSIONS
    assert sorted(reads) == list(range(1, VERSIONS + 1))
    assert sorted(found.complete) == list(range(1, VERSIONS + 1))
    assert all(found.complete[v] == manifest_for("m", v, FILES) for v in found.complete)

    changed = {**FILES, "assets/vocab.txt": b"a\nb\n"}
    store.put(uri, "5/assets/vocab.txt", changed["assets/vocab.txt"])
    store.put(uri, f"5/{MANIFEST_NAME}", serialize_manifest(manifest_for("m", 5, changed)))
    start = len(proxy.requests)
    restarted = Discovery(source, parse_completion("manifest"))
    assert restarted.poll().complete[5] == manifest_for("m", 5, changed)
    assert sorted(_manifest_reads(proxy, start)) == list(range(1, VERSIONS + 1))
    start = len(proxy.requests)
    restarted.poll()
    assert len(object_requests(proxy.requests[start:])) == 1
