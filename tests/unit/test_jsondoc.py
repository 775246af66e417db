"""Decoding an HTTP endpoint's JSON answer: an object, or the caller's error naming the URL and its hint."""

from __future__ import annotations

import pytest

from agent.core.errors import MetricQueryError
from agent.infra.jsondoc import json_object

URL = "http://127.0.0.1:9/x"


def test_an_object_is_returned() -> None:
    assert json_object(b'{"a": [1]}', URL) == {"a": [1]}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"<html>", "did not answer with JSON"),
        (b"\xff\xfe", "did not answer with JSON"),  # not UTF-8
        (b"[1, 2]", "answered with JSON that is not an object"),
    ],
)
def test_anything_else_is_the_callers_error_with_its_hint(raw: bytes, says: str) -> None:
    """The caller's error class, naming the URL, what came back, then the caller's hint."""
    with pytest.raises(MetricQueryError) as caught:
        json_object(raw, URL, error=MetricQueryError, hint="is that Prometheus?")
    assert str(caught.value) == f"{URL} {says}; is that Prometheus?"


def test_without_a_hint_the_message_ends_at_what_came_back() -> None:
    with pytest.raises(ValueError, match=r"not an object$"):
        json_object(b"7", URL)
