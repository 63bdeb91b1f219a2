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
from functools import lru_cache

# Uzbek Latin writes oʻ/gʻ with several look-alike apostrophes; Russian ё is often written е.
# (Replaced one by one: str.translate looks every character up in Python, 10× slower here.)
_FOLD = (("ʻ", "'"), ("ʼ", "'"), ("’", "'"), ("‘", "'"), ("`", "'"), ("ё", "е"))
_SPACELESS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\w+(?:'\w+)*")


def fold(text: str) -> str:
    """The form both terms and text are compared in."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    for look_alike, letter in _FOLD:
        folded = folded.replace(look_alike, letter)
    return folded


@lru_cache(maxsize=2048)
def _tokens(text: str) -> tuple[str, str]:
    """`text` folded, and its words joined by single spaces: every guard of every narrative
    reads the same passages, so they are taken apart once."""
    folded = fold(text)
    return folded, " ".join(_WORD.findall(folded))


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
        # One scan of the text's words joined by spaces finds the first word that is a term or
        # starts with a prefix term (the terms escaped: still literal, never patterns).
        alternatives = [f"{re.escape(w)}(?= |$)" for w in sorted(self._words)]
        alternatives += [f"{re.escape(p)}[^ ]*" for p in sorted(self._prefixes)]
        self._word_scan = (re.compile(f"(?:^| )({'|'.join(alternatives)})") if alternatives
                           else None)

    def allows(self, text: str) -> bool:
        return not self.terms or self.first_hit(text) is not None

    def first_hit(self, text: str) -> str | None:
        """The word or phrase that satisfied the guard (None without terms or without a hit)."""
        if not self.terms:
            return None
        folded, joined = _tokens(text)
        if self._word_scan is not None and (hit := self._word_scan.search(joined)):
            return hit.group(1)
        for phrase in self._phrases:
            spaced = not _SPACELESS.search(phrase)
            if (f" {phrase} " in f" {joined} ") if spaced else (phrase in folded):
                return phrase
        return None

