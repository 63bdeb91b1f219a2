"""An article's language: the code a feed declares, normalised, or a guess from its letters.

The guess is a deterministic script-and-letter heuristic for the languages this bot watches
(no model, no dependency):
- Han characters → zh;
- Cyrillic with letters only Kazakh uses (ә ұ һ і) → kk; with Tajik letters (ӣ ӯ ҳ ҷ) → tg;
  with ғ қ (Kazakh and Tajik) but neither of those → kk; with ң ө ү alone → ky;
  with ї є ґ → uk; other Cyrillic → ru;
- Latin with Uzbek oʻ/gʻ or typical Uzbek words → uz; other Latin → en;
- anything else (or nothing to go on) → "und".
It is meant for counting volumes by language, not for linguistics: a Kazakh text that happens
to avoid its own letters counts as Russian.
"""

from __future__ import annotations

import re

UNDETERMINED = "und"

# ISO 639-2/3 codes (and a few common aliases) → the two-letter code used for counting.
_ALIASES = {
    "rus": "ru", "kaz": "kk", "kir": "ky", "kgz": "ky", "tgk": "tg", "taj": "tg", "uzb": "uz",
    "uzn": "uz", "uzs": "uz", "zho": "zh", "chi": "zh", "cmn": "zh", "yue": "zh", "eng": "en",
    "ukr": "uk", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "tur": "tr",
    "ara": "ar", "fas": "fa", "per": "fa", "mon": "mn", "kk-cyrl": "kk", "uz-latn": "uz",
}

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_KAZAKH_ONLY = set("әұһіӘҰҺІ")  # in no other language watched here (Ukrainian: see below)
_KAZAKH_TAJIK = set("ғқҒҚ")  # Kazakh and Tajik (and Uzbek Cyrillic)
_KYRGYZ = set("ңөүҢӨҮ")  # shared with Kazakh; without Kazakh letters they point to Kyrgyz
_TAJIK = set("ӣӯҳҷӢӮҲҶ")
_UKRAINIAN = set("їєґЇЄҐ")
# oʻ/gʻ written with the modifier letter, a turned comma, a right quote or an apostrophe
_UZBEK_WORDLIST = (
    "va bilan uchun ham emas bo'yicha bo‘yicha boʻyicha qilish qilgan qildi xitoy "
    "o'zbekiston o‘zbekiston oʻzbekiston respublikasi yil yilda haqida bu ushbu esa deb "
    "bo'lgan bo‘lgan boʻlgan kerak hamda lekin biroq shuningdek")
_UZBEK_WORDS = frozenset(_UZBEK_WORDLIST.split())
_WORD = re.compile(r"[^\W\d_][\w'\u02bb\u02bc\u2018\u2019`]*")
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


def guess_language(text: str) -> str:
    """The language of `text` from its letters (see the module docstring); "und" if unsure."""
    sample = text[:_SAMPLE_CHARS]
    han = len(_HAN.findall(sample))
    cyrillic = len(_CYRILLIC.findall(sample))
    latin = len(_LATIN.findall(sample))
    if not (han or cyrillic or latin):
        return UNDETERMINED
    if han and not _KANA_HANGUL.search(sample) and han >= max(cyrillic, latin) / 4:
        return "zh"  # Chinese packs a word into one or two characters: weigh them up
    if cyrillic >= latin:
        return _cyrillic_language(sample, cyrillic)
    if han and han * 4 >= latin:
        return "zh"
    if _is_uzbek(sample):
        return "uz"
    return "en"


def _cyrillic_language(sample: str, letters: int) -> str:
    """Which Cyrillic language: by letters its alphabet has and Russian lacks. A few such
    letters in a long text (a Kazakh name quoted in a Russian report) are not enough."""

    def count(alphabet: set[str]) -> int:
        found = sum(1 for ch in sample if ch in alphabet)
        return found if found * 200 >= letters else 0  # at least 0.5 % of the letters

    if count(_UKRAINIAN):
        return "uk"
    if count(_KAZAKH_ONLY):
        return "kk"
    if count(_TAJIK):
        return "tg"
    if count(_KAZAKH_TAJIK):
        return "kk"
    if count(_KYRGYZ):
        return "ky"
    return "ru"


def _is_uzbek(sample: str) -> bool:
    if re.search(r"[oOgG]\u02bb\w", sample):  # oʻ gʻ with the turned comma: Uzbek's own
        return True
    words = [w.casefold() for w in _WORD.findall(sample)]
    if not words:
        return False
    uzbek = sum(w in _UZBEK_WORDS for w in words)
    apostrophes = len(re.findall(r"\b\w*[og][\u02bc\u2018\u2019'`]\w", sample, re.IGNORECASE))
    return (uzbek >= 1 and apostrophes >= 2) or (
        uzbek >= 2 and (uzbek + apostrophes) / len(words) >= 0.05)
