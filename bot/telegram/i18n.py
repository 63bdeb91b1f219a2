"""The reader's language: gettext catalogues (Babel) for every message the bot writes in a chat.

English is the source language (the message ids); `locale/<lang>/LC_MESSAGES/messages.po` holds
each translation. A compiled `messages.mo` beside it is used when present (`pybabel compile`);
otherwise the `.po` is compiled in memory on first use, so a source checkout needs no build
step. A chat's language is what it chose with /language, else its user's Telegram
`language_code`, else `[telegram] language` (the channel's).

Strings are marked with `_()` where a language is at hand (`_ = gettext_for(lang)`), and with
`N_()` where they are defined once and translated later (the command table's help texts).
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "ru")
DEFAULT = "en"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).with_name("locale")

Translate = Callable[[str], str]


def N_(message: str) -> str:  # gettext's name for "mark, translate later"
    """Mark a string for the catalogue without translating it here."""
    return message


def language_of(code: str | None, default: str = DEFAULT) -> str:
    """A Telegram `language_code` ('ru', 'ru-RU', 'en-GB', None) as one we speak."""
    base = (code or "").split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else default


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language` (English, the source, has none)."""
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
    if language == DEFAULT or not (mo.is_file() or po.is_file()):
        return gettext.NullTranslations()
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as compiled:
            return gettext.GNUTranslations(compiled)
    return gettext.GNUTranslations(io.BytesIO(compile_po(po)))


def compile_po(po: Path) -> bytes:
    """A .po file as .mo bytes (Babel's reader and writer; fuzzy entries left out)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as source:
        catalog = read_po(source)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def gettext_for(language: str | None) -> Translate:
    """`_` for one language: English for None or a language we do not speak."""
    return translations(language_of(language)).gettext


def ngettext_for(language: str | None) -> Callable[[str, str, int], str]:
    """`ngettext` for one language (Russian has three plural forms)."""
    return translations(language_of(language)).ngettext


@dataclass(frozen=True)
class Voice:
    """How one message is written: its language, and the narratives' titles in it."""

    language: str = DEFAULT
    titles: Mapping[str, str] = field(default_factory=dict)  # narrative id → title here

    @property
    def gettext(self) -> Translate:
        return gettext_for(self.language)

    @property
    def ngettext(self) -> Callable[[str, str, int], str]:
        return ngettext_for(self.language)

    def title(self, narrative_id: str, default: str) -> str:
        """The narrative's title in this language; `default` (as stored) when unknown."""
        return self.titles.get(narrative_id) or default


ENGLISH = Voice()


class Voices:
    """Each chat's Voice: the language it reads and the narratives' titles in that language."""

    def __init__(self, language_of: Callable[[str], str],
                 titles_in: Callable[[str], Mapping[str, str]]) -> None:
        self.language_of = language_of
        self.titles_in = titles_in

    def of_chat(self, chat_id: str) -> Voice:
        return self.of_language(self.language_of(chat_id))

    def of_language(self, language: str) -> Voice:
        language = language_of(language)
        return Voice(language, self.titles_in(language))
