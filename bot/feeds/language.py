"""An article's language: the code a feed declares, normalised, or a guess from its text.

The guess is py3langid's naive Bayes over byte n-grams (numpy only, its model ships in the
wheel, loaded once on first use), restricted to the languages this bot watches
(`WATCHED_LANGUAGES`): deciding between seven candidates instead of ~100 is what tells Kyrgyz,
Kazakh and Tajik apart from each other and from Russian, and Uzbek from other Latin-script
languages. A feed's declared language (`[[feeds]] language`, or the feed's own) always wins:
the guess is only asked for when nothing is declared. A text with no letters is "und".
It is meant for counting volumes by language, not for linguistics.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from typing import Any

UNDETERMINED = "und"

# ISO 639-2/3 codes (and a few common aliases) → the two-letter code used for counting.
_ALIASES = {
    "rus": "ru", "kaz": "kk", "kir": "ky", "kgz": "ky", "tgk": "tg", "taj": "tg", "uzb": "uz",
    "uzn": "uz", "uzs": "uz", "zho": "zh", "chi": "zh", "cmn": "zh", "yue": "zh", "eng": "en",
    "ukr": "uk", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "tur": "tr",
    "ara": "ar", "fas": "fa", "per": "fa", "mon": "mn", "kk-cyrl": "kk", "uz-latn": "uz",
}

# the languages of the narratives, the eval sets and the region's press; Ukrainian so that it
# is not counted as Russian
WATCHED_LANGUAGES = ("en", "ru", "kk", "ky", "tg", "uz", "zh", "uk")
_LETTER = re.compile(r"[^\W\d_]")
_SAMPLE_CHARS = 5000


def normalize_language(code: object) -> str | None:
    """'ru-RU', 'RUS', 'zh_Hans', 'kk' → 'ru', 'ru', 'zh', 'kk'; None when not a language code."""
    if not isinstance(code, str):
        return None
    text = code.strip().lower().replace("_", "-")
    if not text:
        return None
    if text in _ALIASES:
        return _ALIASES[text]
    primary = text.split("-", 1)[0]
    if not re.fullmatch(r"[a-z]{2,3}", primary) or primary in ("und", "mul", "zxx", "mis"):
        return None
    return _ALIASES.get(primary, primary)


def guess_language(text: str, languages: Collection[str] = WATCHED_LANGUAGES) -> str:
    """The most likely of `languages` for `text` (see the module docstring); "und" when the
    text has no letters."""
    sample = text[:_SAMPLE_CHARS]
    if not _LETTER.search(sample):
        return UNDETERMINED
    code, _confidence = _identifier(frozenset(languages)).classify(sample)
    return str(code)


@functools.cache
def _identifier(languages: frozenset[str]) -> Any:  # py3langid's LanguageIdentifier
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(sorted(languages))
    return identifier
