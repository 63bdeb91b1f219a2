"""Reading TOML files and saying where in them a problem is (file:line, key, reason)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


class ConfigError(Exception):
    """A config or narrative file was refused; the message says where and why."""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None



def describe(exc: ValidationError, file: Path) -> str:
    problems: dict[str, str] = {}
    for err in exc.errors():
        # pydantic appends the members of a union ("str", "int") to the location
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _TYPE_LABELS))
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown key (typo?)"
        place = f"{where(file, loc)}: key '{dotted(loc) or '(top level)'}'"
        problems[place] = f"{problems[place]}; or {reason}" if place in problems else reason
    return "\n".join(f"{place}: {reason}" for place, reason in problems.items())


_TYPE_LABELS = {"str", "int", "float", "bool", "list[int]", "is-instance[Path]"}


def dotted(loc: tuple[object, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def where(file: Path, loc: tuple[object, ...]) -> str:
    line = line_of(file, loc)
    return f"{file}:{line}" if line else str(file)


def line_of(file: Path, loc: tuple[object, ...]) -> int | None:
    """Best-effort line number of the TOML key at `loc` (tables, arrays of tables, keys)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    table: tuple[object, ...] = ()
    counts: dict[str, int] = {}
    best: int | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if m := re.match(r"^\[\[\s*([^\]]+?)\s*\]\]", line):
            name = m.group(1)
            counts[name] = counts.get(name, -1) + 1
            table = (*name.split("."), counts[name])
        elif m := re.match(r"^\[\s*([^\]]+?)\s*\]", line):
            table = tuple(m.group(1).split("."))
        elif m := re.match(r"^([A-Za-z0-9_\-\"']+)\s*=", line):
            path = (*table, m.group(1).strip("\"'"))
            if loc[: len(path)] == path:
                return number
            continue
        else:
            continue
        if loc[: len(table)] == table:
            best = number
    return best
