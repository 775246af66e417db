"""Loads as TF Serving itself logs them (``Approving load`` … ``Successfully loaded`` / ``Loading servable:
… failed``): what the fleet's tests, demo and benchmark count, never the agents' own reports."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime

_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})"
_START = re.compile(_STAMP + r".*Approving load for servable version \{name: (\S+) version: (\d+)\}")
_END = re.compile(
    _STAMP + r".*(?:Successfully loaded servable version |Loading servable: )\{name: (\S+) version: (\d+)\}"
)

_UNLOADED = re.compile(_STAMP + r".*Done unloading servable version \{name: (\S+) version: (\d+)\}")

Span = tuple[float, float, str, int]
"""(start, end, servable name, version); end is inf for a load still under way."""


def _time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def load_spans(text: str) -> list[Span]:
    """Every load one server logged."""
    started: dict[tuple[str, int], float] = {}
    done: list[Span] = []
    for line in text.splitlines():
        if m := _START.search(line):
            started[(m[2], int(m[3]))] = _time(m[1])
        elif (m := _END.search(line)) and (key := (m[2], int(m[3]))) in started:
            done.append((started.pop(key), _time(m[1]), *key))
    done.extend((start, float("inf"), *key) for key, start in started.items())
    return done


def unloads(text: str) -> list[tuple[float, str, int]]:
    """(time, servable name, version) of every unload one server finished."""
    return [(_time(m[1]), m[2], int(m[3])) for m in _UNLOADED.finditer(text)]


def most_at_once(per_server: Iterable[list[Span]], keep: Callable[[Span], bool]) -> int:
    """The most servers loading at one instant (each server counts once, whatever it loads)."""
    edges: list[tuple[float, int]] = []
    for spans in per_server:
        for start, end, *_ in _merge([s for s in spans if keep(s)]):
            edges += [(start, 1), (end, -1)]
    most = now = 0
    for _, step in sorted(edges):
        now += step
        most = max(most, now)
    return most


def _merge(spans: list[Span]) -> list[tuple[float, float]]:
    """One server's overlapping loads as one interval (it is one pod loading)."""
    merged: list[tuple[float, float]] = []
    for start, end, *_ in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
