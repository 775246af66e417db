"""What a GCS notification means for one model, and the names and filter of the agent's subscription.

Pure: no Pub/Sub client here. Events are at-least-once, late, duplicated and out of order, so nothing here
decides anything about a version — an event is only sorted into "wakes the pass" kinds or ``ignored``. The
agent filters itself even though its subscription carries the same filter: the Pub/Sub emulator stores
filters without applying them, and an operator's ``subscription:`` may carry none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.core.domain import MANIFEST_NAME
from agent.infra.config_policy import CompletionSettings

# Event kinds, the label values of tfs_agent_notification_events_total.
MANIFEST, MARKER, FLEET, OBJECT, IGNORED = "manifest", "marker", "fleet", "object", "ignored"
KINDS = (MANIFEST, MARKER, FLEET, OBJECT, IGNORED)
FLEET_FOLDER = "_fleet/"
# Pub/Sub's limits: subscription IDs of 3–255 characters from this set, starting with a letter;
# filters of 256 bytes at most.
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._~+%-]")
_MAX_ID, _MAX_FILTER = 255, 256
_VERSION_OBJECT = re.compile(r"(\d+)/(.+)")


@dataclass(frozen=True)
class ObjectEvent:
    """One GCS notification, as its attributes tell it (``payloadFormat: JSON_API_V1`` or ``NONE``)."""

    bucket: str
    name: str
    event_type: str
    published: float | None = None
    """Epoch seconds Pub/Sub accepted the message (its publish_time); None if unknown."""


def parse_event(attributes: Mapping[str, str], published: float | None = None) -> ObjectEvent | None:
    """The event an attribute map describes, or None for a message that is not a GCS notification."""
    bucket, name = attributes.get("bucketId"), attributes.get("objectId")
    if not bucket or not name:
        return None
    return ObjectEvent(bucket, name, attributes.get("eventType", ""), published)


class EventFilter:
    """Sorts events for one model: ``bucket`` and ``prefix`` as ``split_gs_uri`` gives them."""

    def __init__(self, bucket: str, prefix: str, completion: CompletionSettings) -> None:
        self.bucket, self.prefix, self.completion = bucket, prefix, completion

    def kind(self, event: ObjectEvent | None) -> str:
        """manifest | marker | fleet (a release record) | object (another file of a version) | ignored."""
        if event is None or event.bucket != self.bucket or not event.name.startswith(self.prefix):
            return IGNORED
        rest = event.name[len(self.prefix) :]
        if rest.startswith(FLEET_FOLDER):
            return FLEET
        match = _VERSION_OBJECT.fullmatch(rest)
        if match is None:
            return IGNORED
        leaf = match.group(2)
        if leaf == MANIFEST_NAME:
            return MANIFEST
        if self.completion.mode == "marker" and leaf == self.completion.marker:
            return MARKER
        return OBJECT

    def wakes(self, kind: str) -> bool:
        """Whether an event of ``kind`` should run the pass now: any file of a version counts in quiet mode,
        where every write restarts the quiet timer."""
        if kind == OBJECT:
            return self.completion.mode == "quiet"
        return kind != IGNORED

    def subscription_filter(self) -> str:
        """Pub/Sub filter for the model's objects (just the bucket if the prefix makes it too long)."""
        bucket = f'attributes.bucketId = "{_quote(self.bucket)}"'
        if not self.prefix:
            return bucket
        both = f'{bucket} AND hasPrefix(attributes.objectId, "{_quote(self.prefix)}")'
        return both if len(both.encode()) <= _MAX_FILTER else bucket


def subscription_id(pod: str, model: str) -> str:
    """``tfs-agent-<pod>-<model>``, within Pub/Sub's naming rules: one subscription per pod and model."""
    raw = _ID_UNSAFE.sub("-", f"tfs-agent-{pod}-{model}")
    if len(raw) <= _MAX_ID:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
    return f"{raw[: _MAX_ID - 13]}-{digest}"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
