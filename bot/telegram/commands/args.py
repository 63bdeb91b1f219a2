"""Reading command arguments: durations, narrative ids, source names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.config import parse_duration

MAX_DURATION = timedelta(days=3650)


def duration(text: str) -> timedelta | None:
    """'30m', '12h', '7d' → timedelta; None when unreadable, not positive or absurdly long."""
    try:
        value = parse_duration(text)
    except (ValueError, OverflowError):
        return None
    return value if timedelta(0) < value <= MAX_DURATION else None


def narrative_ids(args: Sequence[str]) -> list[str]:
    """Ids from the arguments: commas and spaces both separate, case ignored."""
    return [part.casefold() for arg in args for part in arg.split(",") if part.strip()]


def find_narrative(name: str, titles: dict[str, str]) -> str | None:
    """An id, or an unambiguous prefix of one (case ignored)."""
    name = name.casefold()
    if name in titles:
        return name
    candidates = [n for n in titles if n.startswith(name)]
    return candidates[0] if len(candidates) == 1 else None


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class SourceArgs:
    """Arguments that start with a source's name (None: they name no source)."""

    source: str | None
    rest: list[str]


def match_source(args: Sequence[str], names: Sequence[str]) -> SourceArgs:
    """The longest prefix of `args` that names a source (case-insensitively), and the rest."""
    by_fold = {_fold(n): n for n in names}
    for cut in range(len(args), 0, -1):
        if (name := by_fold.get(_fold(" ".join(args[:cut])))) is not None:
            return SourceArgs(name, list(args[cut:]))
    return SourceArgs(None, list(args))
