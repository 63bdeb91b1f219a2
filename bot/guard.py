"""Per-narrative keyword guards: `require_any = [...]` in a narrative file.

A guard lets a narrative match only articles that name one of its terms. Terms are literal
(never regular expressions, so a narrative file cannot make matching slow or unsafe), matched
case-insensitively as whole words in any script; a trailing `*` matches any word starting
with the term (Russian and Turkic words inflect: `Казахстан*` covers Казахстана, Казахстане).
Scripts written without spaces (Chinese, Japanese) match as plain substrings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Uzbek Latin writes oʻ/gʻ with several look-alike apostrophes; Russian ё is often written е.
_FOLD = str.maketrans({"ʻ": "'", "ʼ": "'", "’": "'", "‘": "'", "`": "'", "ё": "е"})
_SPACELESS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def fold(text: str) -> str:
    """The form both terms and text are compared in."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)


def _pattern(term: str) -> str:
    prefix = term.endswith("*")
    core = fold(term.rstrip("*").strip())
    if not core:
        raise ValueError(f"keyword {term!r} is empty")
    escaped = re.escape(core)
    if _SPACELESS.search(core):
        return escaped
    return rf"(?<![\w']){escaped}" + (r"[\w']*" if prefix else r"(?![\w'])")


class KeywordGuard:
    """True for texts that contain at least one of `terms` (always true without terms)."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = tuple(terms)
        self._regex = (re.compile("|".join(_pattern(t) for t in self.terms))
                       if self.terms else None)

    def allows(self, text: str) -> bool:
        return self._regex is None or self._regex.search(fold(text)) is not None

    def first_hit(self, text: str) -> str | None:
        """The matched text, for explaining a verdict."""
        if self._regex is None:
            return None
        hit = self._regex.search(fold(text))
        return hit.group(0) if hit else None
