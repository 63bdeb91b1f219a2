"""Per-narrative keyword guards: `require_any = [...]` in a narrative file.

A guard lets a narrative match only articles that name one of its terms. Terms are literal
(never regular expressions, so a narrative file cannot make matching slow or unsafe), matched
case-insensitively as whole words in any script; a trailing `*` matches any word starting
with the term (Russian and Turkic words inflect: `Казахстан*` covers Казахстана, Казахстане).
Scripts written without spaces (Chinese, Japanese) match as plain substrings; a term of
several words matches those words in a row.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Uzbek Latin writes oʻ/gʻ with several look-alike apostrophes; Russian ё is often written е.
_FOLD = str.maketrans({"ʻ": "'", "ʼ": "'", "’": "'", "‘": "'", "`": "'", "ё": "е"})
_SPACELESS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\w+(?:'\w+)*")


def fold(text: str) -> str:
    """The form both terms and text are compared in."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)


class KeywordGuard:
    """True for texts that contain at least one of `terms` (always true without terms)."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = tuple(terms)
        self._words: set[str] = set()
        self._prefixes: set[str] = set()
        self._phrases: list[str] = []  # several words, or a script without spaces
        for term in self.terms:
            core = fold(term.rstrip("*").strip())
            words = _WORD.findall(core)
            if not words:
                raise ValueError(f"keyword {term!r} has no letters or digits")
            if _SPACELESS.search(core):
                self._phrases.append(core)
            elif len(words) > 1:
                self._phrases.append(" ".join(words))
            elif term.rstrip().endswith("*"):
                self._prefixes.add(words[0])
            else:
                self._words.add(words[0])
        self._prefix_lengths = sorted({len(p) for p in self._prefixes})

    def allows(self, text: str) -> bool:
        return not self.terms or self.first_hit(text) is not None

    def first_hit(self, text: str) -> str | None:
        """The word or phrase that satisfied the guard (None without terms or without a hit)."""
        if not self.terms:
            return None
        folded = fold(text)
        words = _WORD.findall(folded)
        for word in words:
            if word in self._words or self._has_prefix(word):
                return str(word)
        joined = " ".join(words)
        for phrase in self._phrases:
            spaced = not _SPACELESS.search(phrase)
            if (f" {phrase} " in f" {joined} ") if spaced else (phrase in folded):
                return phrase
        return None

    def _has_prefix(self, word: str) -> bool:
        return any(word[:n] in self._prefixes for n in self._prefix_lengths if n <= len(word))
