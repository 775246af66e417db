"""Sorting GCS notifications for one model, and the agent's subscription name and filter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.adapters.notify.events import (
    FLEET,
    IGNORED,
    MANIFEST,
    MARKER,
    OBJECT,
    EventFilter,
    ObjectEvent,
    parse_event,
    subscription_id,
)
from agent.core.domain import MANIFEST_NAME
from agent.infra.config_policy import parse_completion


def _filter(completion: str = "manifest", prefix: str = "models/m/") -> EventFilter:
    return EventFilter("ml", prefix, parse_completion(completion))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (f"models/m/3/{MANIFEST_NAME}", MANIFEST),
        ("models/m/_fleet/prod/release.json", FLEET),
        ("models/m/3/saved_model.pb", OBJECT),
        ("models/m/3", IGNORED),
        ("models/m/golden.json", IGNORED),
        (f"models/m2/3/{MANIFEST_NAME}", IGNORED),
        (f"models/other/3/{MANIFEST_NAME}", IGNORED),
        (f"m/3/{MANIFEST_NAME}", IGNORED),
    ],
)
def test_events_are_sorted_by_the_models_prefix(name: str, kind: str) -> None:
    """Only the model's own manifests, fleet records and version files count; a sibling prefix does not."""
    assert _filter().kind(ObjectEvent("ml", name, "OBJECT_FINALIZE")) == kind


def test_other_buckets_and_non_gcs_messages_are_ignored() -> None:
    """Another bucket's event, or a message without GCS attributes, is ignored."""
    assert _filter().kind(ObjectEvent("other", f"models/m/3/{MANIFEST_NAME}", "OBJECT_FINALIZE")) == IGNORED
    assert _filter().kind(parse_event({"foo": "bar"})) == IGNORED


def test_a_marker_counts_in_marker_mode_and_any_file_wakes_only_in_quiet_mode() -> None:
    """The marker object is a completion event; plain version files wake the pass only with quiet:."""
    marker = _filter("marker:_SUCCESS")
    assert marker.kind(ObjectEvent("ml", "models/m/3/_SUCCESS", "OBJECT_FINALIZE")) == MARKER
    assert not marker.wakes(OBJECT)
    assert _filter("quiet:120s").wakes(OBJECT)
    assert all(marker.wakes(k) for k in (MANIFEST, MARKER, FLEET))
    assert not marker.wakes(IGNORED)


def test_parse_event_reads_the_attributes_gcs_sends() -> None:
    """bucketId, objectId and eventType make the event; the publish time rides along."""
    attrs = {"bucketId": "ml", "objectId": "m/1/x", "eventType": "OBJECT_FINALIZE", "payloadFormat": "NONE"}
    assert parse_event(attrs, 12.5) == ObjectEvent("ml", "m/1/x", "OBJECT_FINALIZE", 12.5)


def test_the_subscription_filter_names_bucket_and_prefix() -> None:
    """The filter narrows to the bucket and prefix, quoting what needs it; too long, it keeps the bucket."""
    assert _filter().subscription_filter() == (
        'attributes.bucketId = "ml" AND hasPrefix(attributes.objectId, "models/m/")'
    )
    assert _filter(prefix='a"b/').subscription_filter().endswith('"a\\"b/")')
    assert _filter(prefix="").subscription_filter() == 'attributes.bucketId = "ml"'
    assert _filter(prefix="p" * 300 + "/").subscription_filter() == 'attributes.bucketId = "ml"'


def test_subscription_ids_follow_pubsubs_rules() -> None:
    """One ID per pod and model, unsafe characters replaced, at most 255 characters and still unique."""
    assert subscription_id("pod-a", "m") == "tfs-agent-pod-a-m"
    assert subscription_id("pod a/1", "m") == "tfs-agent-pod-a-1-m"
    long_a, long_b = subscription_id("p" * 300, "a"), subscription_id("p" * 300, "b")
    assert len(long_a) == 255
    assert long_a != long_b


def test_the_run_loop_loads_no_cloud_sdk_without_notifications() -> None:
    """Importing the run loop (which wires notifications) loads neither Pub/Sub nor the GCS SDK: an agent
    without notifications keeps its footprint."""
    code = (
        "import sys\n"
        "import agent.service.runner, agent.service.cli\n"
        "sdks = ('google.cloud.pubsub', 'google.cloud.storage')\n"
        "print(sorted(m for m in sys.modules if m.startswith(sdks)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
