"""One model's Pub/Sub subscription: made by the agent (``topic:``) or given (``subscription:``), pulled as a
stream, watched, re-made with backoff when it breaks, deleted on a clean stop (only if the agent made it).

google-cloud-pubsub is an optional extra, imported here only when a model has notifications, so an agent
without them pays nothing for it. ``PUBSUB_EMULATOR_HOST`` is honoured by the client library itself.

Why a probe: while Pub/Sub is unreachable the client's stream retries silently forever, and after an
emulator restart it ends with NotFound only some seconds later; asking for the subscription every
``probe_every`` seconds turns both into a prompt "lost" with a reason. After every (re)subscription the
``subscribed`` callback runs a catch-up pass, since events published meanwhile are gone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from agent.adapters.notify.events import ObjectEvent, parse_event
from agent.core.errors import ConfigError
from agent.infra.config import NotificationSettings

log = logging.getLogger("tfs_agent.notify")

# Real Pub/Sub refuses an expiration TTL under one day (the emulator takes less; never rely on it): an
# abandoned subscription (a pod killed without a clean stop) disappears a day after its last pull.
EXPIRATION_SECONDS = 86_400
# Events only wake a pass, so old ones are worthless: keep unacked messages for Pub/Sub's minimum, 10 min.
RETENTION_SECONDS = 600
_RPC_TIMEOUT = 10.0


class Listener(Protocol):
    """What the listener tells its owner; called from the listener's and the client's threads."""

    def event(self, event: ObjectEvent | None) -> None: ...
    def subscribed(self, subscription: str) -> None: ...
    def lost(self, reason: str, retry_in: float) -> None: ...


@dataclass(frozen=True)
class Subscription:
    """Where to pull from; ``topic`` set means the agent made it (and deletes it) with ``filter``."""

    path: str
    topic: str | None = None
    filter: str = ""

    @classmethod
    def for_model(cls, settings: NotificationSettings, sub_id: str, filter_: str) -> Subscription:
        if settings.subscription is not None:
            return cls(settings.subscription)
        assert settings.topic is not None
        project = settings.topic.split("/")[1]
        return cls(f"projects/{project}/subscriptions/{sub_id}", settings.topic, filter_)


def backoff(attempt: int, *, first: float = 1.0, cap: float = 30.0) -> float:
    """Seconds before re-subscribing after ``attempt`` failures in a row: 1, 2, 4, … up to ``cap``."""
    return float(min(cap, first * 2 ** min(attempt, 16)))


class PubSubListener:
    """Pulls one subscription in a background thread until ``stop()``."""

    def __init__(
        self,
        subscription: Subscription,
        listener: Listener,
        *,
        probe_every: float = 15.0,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.subscription, self.listener, self.probe_every = subscription, listener, probe_every
        self._client_factory = client_factory or _subscriber_client
        self._stop = threading.Event()
        self._future: Any = None
        self._client: Any = None
        name = f"notify {subscription.path.rsplit('/', 1)[-1]}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the stream; delete the subscription if the agent made it (a crash leaves it to expire)."""
        self._stop.set()
        if self._future is not None:
            _end(self._future)
        self._thread.join(timeout=_RPC_TIMEOUT + 5)
        if self.subscription.topic is not None and self._client is not None:
            self._delete()
        # The client is not closed: a stream cancelled during an outage may keep a retrying thread a while,
        # and closing the channel under it only adds a traceback to the log of an agent that is exiting.

    # ---- the loop ----------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._client = self._client or self._client_factory()
                self._ensure()
                self._future = self._client.subscribe(self.subscription.path, self._on_message)
                self.listener.subscribed(self.subscription.path)
                attempt = 0
                reason = self._watch()
            except Exception as err:  # any failure of the client is a reason to re-subscribe, never to die
                reason = _describe(err)
            if self._stop.is_set():
                if self._future is not None:  # made after stop() looked for it
                    _end(self._future)
                return
            delay = backoff(attempt)
            attempt += 1
            self.listener.lost(reason, delay)
            self._stop.wait(delay)

    def _watch(self) -> str:
        """Block while the stream is healthy (looking at ``stop`` every second); return why it is not."""
        probe_at = time.monotonic() + self.probe_every
        while not self._stop.is_set():
            try:
                self._future.result(timeout=min(1.0, self.probe_every))
                return "the stream ended"
            except FutureTimeout:
                pass
            except Exception as err:
                return _describe(err)
            if time.monotonic() < probe_at:
                continue
            probe_at = time.monotonic() + self.probe_every
            try:
                self._get()  # the stream alone would retry in silence through an outage
            except Exception as err:
                _end(self._future)
                return _describe(err)
        return "stopping"

    def _on_message(self, message: Any) -> None:
        message.ack()  # the event only wakes a pass; redelivery would add nothing
        published = message.publish_time.timestamp() if message.publish_time else None
        self.listener.event(parse_event(dict(message.attributes), published))

    # ---- the subscription itself ----------------

    def _ensure(self) -> None:
        """Make the agent's own subscription, or check a given one exists."""
        from google.api_core import exceptions

        sub = self.subscription
        if sub.topic is None:
            self._get()
            return
        try:
            self._create()
        except exceptions.AlreadyExists:
            found = self._get()
            if found.topic != sub.topic or found.filter != sub.filter:  # filters are immutable
                self._delete()
                self._create()

    def _get(self) -> Any:
        # One attempt within the deadline: the library's default retry would wait a minute before failing.
        request = {"subscription": self.subscription.path}
        return self._client.get_subscription(request=request, timeout=_RPC_TIMEOUT, retry=None)

    def _create(self) -> None:
        sub = self.subscription
        request = {
            "name": sub.path,
            "topic": sub.topic,
            "filter": sub.filter,
            "expiration_policy": {"ttl": {"seconds": EXPIRATION_SECONDS}},
            "message_retention_duration": {"seconds": RETENTION_SECONDS},
        }
        self._client.create_subscription(request=request, timeout=_RPC_TIMEOUT, retry=None)

    def _delete(self) -> None:
        from google.api_core import exceptions

        try:
            self._client.delete_subscription(
                request={"subscription": self.subscription.path}, timeout=_RPC_TIMEOUT, retry=None
            )
        except exceptions.NotFound:
            pass
        except Exception as err:  # it expires by itself a day later
            log.warning("could not delete subscription %s: %s", self.subscription.path, _describe(err))


def _end(future: Any) -> None:
    """Cancel a streaming pull and wait (bounded) for it to shut down."""
    future.cancel()
    with contextlib.suppress(Exception):  # ended by the cancel, or by the failure that made us cancel it
        future.result(timeout=_RPC_TIMEOUT)


def require_client() -> None:
    """ConfigError naming the fix when google-cloud-pubsub (the ``pubsub`` extra) is not installed."""
    if importlib.util.find_spec("google.cloud.pubsub_v1") is None:
        raise ConfigError(
            "models[].notifications need google-cloud-pubsub, which is not installed: "
            "pip install 'tfs-agent[pubsub]', or remove notifications from the config"
        )


def _subscriber_client() -> Any:
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


def _describe(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
