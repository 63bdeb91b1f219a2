"""HTML → text, sentence splitting, passage splitting, normalisation.

Everything here is pure (no I/O), never raises on odd input and stays roughly linear in the
input size, so a hostile 1 MB feed entry costs milliseconds, not minutes.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from html.parser import HTMLParser

from bot.models import Passage

# --------------------------------------------------------------------------- clean_text

# Invisible format characters that only get in the way of matching (BOM, zero-width space,
# word joiner, soft hyphen). ZWJ/ZWNJ are kept: they carry meaning in emoji and some scripts.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u2060\u00ad"), None)
# C0/C1 control characters (Unicode category Cc) except tab and newline (tab becomes a space
# later), and lone surrogates, which cannot be encoded to UTF-8 downstream (JSON, Telegram).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_SEPARATORS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_HSPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def _cap(s: str, max_chars: int) -> str:
    """Cut ``s`` to at most ``max_chars``, preferring the last whitespace in the final fifth."""
    if len(s) <= max_chars:
        return s
    cut = max(s.rfind(" ", 0, max_chars + 1), s.rfind("\n", 0, max_chars + 1))
    if cut < max_chars * 4 // 5:
        cut = max_chars
    return s[:cut].rstrip()


def clean_text(s: str, max_chars: int | None = None) -> str:
    """NFC-normalise, strip control characters (keep newlines), collapse spaces, trim, cap."""
    if not s:
        return ""
    s = _LINE_SEPARATORS.sub("\n", s)
    s = _CONTROLS.sub("", s).translate(_INVISIBLE)
    s = unicodedata.normalize("NFC", s)
    s = _HSPACE.sub(" ", s)
    s = _SPACE_AROUND_NEWLINE.sub("\n", s)
    s = _MANY_NEWLINES.sub("\n\n", s).strip()
    if max_chars is not None:
        s = _cap(s, max(0, max_chars))
    return s


# --------------------------------------------------------------------------- html_to_text

_SKIP_TAGS = frozenset({"script", "style", "noscript", "iframe", "template"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd",
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr",
        "table", "tr", "caption", "section", "article", "header", "footer", "aside",
        "nav", "main", "figure", "figcaption", "address", "details", "summary", "form",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*[\s/>]|/[a-zA-Z]|!--)")
_TAG = re.compile(r"<[^>]*>")


class _TextExtractor(HTMLParser):
    """Collects visible text; block elements become newlines, skipped elements vanish."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # Source newlines inside HTML are just whitespace; only tags make paragraphs.
            self.parts.append(data.replace("\n", " "))


def _lines(text: str) -> str:
    """Clean every line, drop the empty ones, join with single newlines."""
    lines = (clean_text(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def html_to_text(html_text: str) -> str:
    """Visible text of an HTML fragment, one paragraph per line. Plain text passes through."""
    if not html_text:
        return ""
    if not _LOOKS_LIKE_HTML.search(html_text):
        return _lines(html.unescape(html_text))
    parser = _TextExtractor()
    try:
        parser.feed(html_text)
        parser.close()
    except Exception:  # html.parser is lenient, but never let a broken page escape
        return _lines(html.unescape(_TAG.sub("\n", html_text)))
    return _lines("".join(parser.parts))


# --------------------------------------------------------------------------- split_sentences

# A candidate sentence end: terminal punctuation, closing quotes/brackets, citation markers
# like "[49] [50]" (Wikipedia), then the whitespace that separates it from the next sentence.
_SENTENCE_END = re.compile(
    r"""
    (?P<punct> [。！？]+ | [.!?…]+ )
    (?P<close> ["'»”’)\]」』）]* )
    (?P<cite> (?: \s? \[\d{1,4}\] )* )
    (?P<space> \s* )
    """,
    re.VERBOSE,
)
_CJK_END = frozenset("。！？")
_OPENERS = "\"'«“„‘(["
# English titles/months/units, Russian (г. = год/город, ул. = улица, т.е. …), Kazakh/Kyrgyz
# ж. (жыл, "year"). Compared case-insensitively, without the final dot.
_ABBREVIATION_WORDS = """
    mr mrs ms dr prof sr jr st mt vs cf ca approx dept est fig gen col lt sgt capt gov sen rep
    rev pres inc ltd co corp no nos vol pp jan feb mar apr jun jul aug sep sept oct nov dec
    г гг т тт д ул им стр см тыс млн млрд руб долл проф акад рис др пр обл ред гл ст ч кв
    ж жж
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# Dotted abbreviations such as "U.S", "e.g", "т.е", "т.д" (the final dot is the candidate end).
_DOTTED = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")
_MAX_ABBREVIATION = 8


def _word_before(text: str, end: int) -> str:
    """The (short) non-space token that ends at ``end``, without leading quotes/brackets."""
    start = end
    while start > 0 and end - start <= _MAX_ABBREVIATION and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip(_OPENERS)


def _is_abbreviation(word: str) -> bool:
    """True for "Mr", "г", "J" (an initial), "U.S", "т.е" — a dot after these ends nothing."""
    if len(word) == 1:
        return word.isalpha()
    return word.casefold() in _ABBREVIATIONS or _DOTTED.fullmatch(word) is not None


def _starts_sentence(text: str, pos: int) -> bool:
    """The next sentence starts with a digit or a non-lowercase letter (after opening quotes)."""
    end = min(len(text), pos + 4)
    while pos < end and text[pos] in _OPENERS:
        pos += 1
    if pos >= len(text):
        return False
    ch = text[pos]
    return ch.isdigit() or (ch.isalpha() and not ch.islower())


def _is_boundary(text: str, m: re.Match[str]) -> bool:
    """Decide whether a candidate match really ends a sentence."""
    punct = m.group("punct")
    if punct[0] in _CJK_END:
        return True  # Chinese needs no space and has no case
    if not m.group("space") or not _starts_sentence(text, m.end()):
        return False
    return punct != "." or not _is_abbreviation(_word_before(text, m.start()))


def _iter_sentences(paragraph: str) -> Iterator[str]:
    """Yield the sentences of one paragraph lazily (linear time, bounded look-behind)."""
    start = 0
    for m in _SENTENCE_END.finditer(paragraph):
        if m.end() < len(paragraph) and _is_boundary(paragraph, m):
            sentence = paragraph[start : m.end()].strip()
            if sentence:
                yield sentence
            start = m.end()
    rest = paragraph[start:].strip()
    if rest:
        yield rest


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences (Latin, Cyrillic, Chinese punctuation)."""
    return list(_iter_sentences(paragraph))


# --------------------------------------------------------------------------- make_passages


def _cut_long(sentence: str, max_chars: int) -> Iterator[str]:
    """Pieces of ``sentence`` ≤ max_chars, cut at a space when one is near, else mid-word."""
    pos, n = 0, len(sentence)
    while n - pos > max_chars:
        cut = sentence.rfind(" ", pos, pos + max_chars + 1)
        if cut <= pos + max_chars // 2:  # no space nearby (CJK, URLs): cut at a character
            cut = pos + max_chars
        piece = sentence[pos:cut].strip()
        if piece:
            yield piece
        pos = cut
    piece = sentence[pos:].strip()
    if piece:
        yield piece


def _sep(left: str) -> str:
    """Sentences are joined with a space, except after Chinese full stops (CJK has none)."""
    return "" if left[-1] in _CJK_END else " "


def _join(units: list[str]) -> str:
    out = units[0]
    for unit in units[1:]:
        out += _sep(out) + unit
    return out


def _windows(units: Iterator[str], max_chars: int) -> Iterator[str]:
    """Windows of consecutive units ≤ max_chars; each next window repeats the previous last
    unit when it fits beside the new one, so a claim is never cut off from its subject."""
    window: list[str] = []
    size = 0
    for unit in units:
        if window and size + len(_sep(window[-1])) + len(unit) > max_chars:
            yield _join(window)
            last = window[-1]
            overlap = len(window) > 1 and len(last) + len(_sep(last)) + len(unit) <= max_chars
            window = [last] if overlap else []
            size = len(last) if overlap else 0
        size += len(_sep(window[-1])) + len(unit) if window else len(unit)
        window.append(unit)
    if window:
        yield _join(window)


def _paragraph_chunks(prefix: str, paragraph: str, max_chars: int) -> Iterator[str]:
    """One chunk for a short paragraph, sentence windows for a long one."""
    whole = f"{prefix} {paragraph}" if prefix else paragraph
    if len(whole) <= max_chars:
        yield whole
        return
    sentences = _iter_sentences(paragraph)
    units: Iterator[str] = (piece for s in sentences for piece in _cut_long(s, max_chars))
    if prefix:
        units = _chain_first(_cut_long(prefix, max_chars), units)
    yield from _windows(units, max_chars)


def _chain_first(first: Iterator[str], rest: Iterator[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _has_letters(s: str) -> bool:
    return any(ch.isalpha() for ch in s)


def _chunks(title: str, text: str, max_chars: int, min_chars: int) -> Iterator[str]:
    """All passage texts in order (title excluded), before de-duplication and the cap."""
    pending: list[str] = []  # short lines waiting to be glued to the next real paragraph
    folded_title = title.casefold()
    for line in text.split("\n"):
        paragraph = line.strip()
        if not _has_letters(paragraph) or paragraph.casefold() == folded_title:
            continue  # separators, bare dates/numbers, the title repeated as the first line
        if len(paragraph) < min_chars:
            if pending and len(" ".join([*pending, paragraph])) > max_chars:
                yield from _paragraph_chunks("", " ".join(pending), max_chars)
                pending = []
            pending.append(paragraph)
            continue
        yield from _paragraph_chunks(" ".join(pending), paragraph, max_chars)
        pending = []
    if pending:  # trailing short lines (tags, "Share this"): nothing follows to merge into
        yield from _paragraph_chunks("", " ".join(pending), max_chars)


def make_passages(
    title: str,
    text: str,
    *,
    max_chars: int = 700,
    min_chars: int = 40,
    max_passages: int = 80,
) -> list[Passage]:
    """Split an article into passages to embed: the title, then paragraphs/sentence windows."""
    max_chars = max(1, max_chars)
    title = next(_cut_long(clean_text(title).replace("\n", " "), max_chars), "")
    texts: list[str] = [title] if title else []
    seen = set(texts)
    # The cap bounds embedding cost per article (and the work done on hostile 1 MB bodies).
    # News is written lead-first (inverted pyramid), so the title and the first passages carry
    # the claims; the tail is usually related links, comments and boilerplate.
    for chunk in _chunks(title, clean_text(text), max_chars, max(0, min_chars)):
        if len(texts) >= max_passages:
            break
        if chunk not in seen:
            seen.add(chunk)
            texts.append(chunk)
    return [Passage(index=i, text=t, quotes=quoted_spans(t), title=bool(title) and i == 0)
            for i, t in enumerate(texts[:max_passages])]


# --------------------------------------------------------------------------- quoted spans

# Reports on a narrative quote its headline ("Why is Kazakhstan eager to return to China?").
# Pairs of quote marks across scripts; a span must be long enough to be a claim, not a word.
_QUOTES = re.compile(
    r'"([^"\n]{20,300})"|“([^”\n]{20,300})”|«([^»\n]{20,300})»|„([^“”\n]{20,300})[“”]'
    r"|「([^」\n]{8,300})」|〈([^〉\n]{8,300})〉|『([^』\n]{8,300})』|《([^》\n]{8,300})》"
    r"|‘([^’\n]{20,300})’|(?<![\w])'([^'\n]{20,300})'(?![\w])"
)
MAX_QUOTES = 4


def quoted_spans(text: str) -> tuple[str, ...]:
    """Up to MAX_QUOTES distinct quoted spans of `text` that are claims rather than words."""
    spans: list[str] = []
    for m in _QUOTES.finditer(text):
        span = next(g for g in m.groups() if g).strip()
        if span not in spans and span != text.strip():
            spans.append(span)
        if len(spans) == MAX_QUOTES:
            break
    return tuple(spans)
