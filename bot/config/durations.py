"""Durations in settings: '30s', '10m', '12h', '7d' or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """'30s', '10m', '12h', '7d' (or a number of seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and (m := _DURATION.match(value)):
        value = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return timedelta(seconds=float(value))
        except OverflowError:
            raise ValueError(f"duration {value!r} is too large") from None
    raise ValueError(f"expected a duration such as '30s', '10m', '12h' or '7d', got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def at_least(seconds: float) -> AfterValidator:
    """A floor for a duration setting (polling faster than this only hurts the sources)."""
    def check(value: timedelta) -> timedelta:
        if value < timedelta(seconds=seconds):
            raise ValueError(f"must be at least {seconds:g}s")
        return value
    return AfterValidator(check)
