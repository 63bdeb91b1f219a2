"""An article page's main text: trafilatura finds it, this module cleans what it returns.

`extract_page` is pure CPU work (the caller runs it off the event loop) and never raises. The
paragraphs come from trafilatura's XML output, so that a paragraph made mostly of one link (a
"Read more: …" teaser, a "related coverage" line, a standards footer) can be told apart from
the article's own paragraphs and dropped: such lines sit inside the body on many layouts.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import trafilatura
from lxml import etree

from bot.feeds.text import clean_text

log = logging.getLogger(__name__)

TEXT_MAX_CHARS = 100_000
TITLE_MAX_CHARS = 300
# A paragraph whose text is at least this share link text is navigation, not article.
_LINK_SHARE = 0.5
_SPLIT_BLOCKS = frozenset({"list", "table", "row"})  # their children are paragraphs of their own
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                              recover=True)


@dataclass(frozen=True)
class PageText:
    """What an article page says: its title, its main text (paragraphs, one a line), its date."""

    title: str = ""
    text: str = ""
    published: datetime | None = None
    error: str | None = None


def extract_page(body: bytes, url: str, charset: str | None = None) -> PageText:
    """The main text of an HTML page (`charset` from the HTTP header, else guessed)."""
    try:
        return _extract(body, url, charset)
    except Exception as exc:  # a page must never take the poll down with it
        log.warning("extraction of %s failed", url, exc_info=True)
        return PageText(error=f"extraction failed: {type(exc).__name__}")


def _extract(body: bytes, url: str, charset: str | None) -> PageText:
    document: str | bytes = _decoded(body, charset)
    xml = trafilatura.extract(document, url=url or None, output_format="xml",
                              include_links=True, include_comments=False, include_tables=True,
                              include_images=False, with_metadata=True, deduplicate=False)
    if not xml:
        return PageText(error="no article text found on the page")
    root = etree.fromstring(xml.encode("utf-8"), _XML_PARSER)
    if root is None:
        return PageText(error="no article text found on the page")
    main = root.find("main")
    paragraphs = [] if main is None else list(_paragraphs(main))
    text = clean_text("\n".join(paragraphs), max_chars=TEXT_MAX_CHARS)
    title = clean_text(root.get("title") or "", max_chars=TITLE_MAX_CHARS).replace("\n", " ")
    if not text:
        return PageText(title=title, error="no article text found on the page")
    return PageText(title=title, text=text, published=_date(root.get("date")))


def _decoded(body: bytes, charset: str | None) -> str | bytes:
    """The page as text when the server named a charset Python knows; else the bytes, for
    trafilatura to read the page's own <meta charset> or guess."""
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            return body
        return body.decode(charset, errors="replace")
    return body


def _paragraphs(main: etree._Element) -> list[str]:
    out: list[str] = []
    for block in main:
        if not isinstance(block.tag, str):
            continue
        children = [c for c in block if isinstance(c.tag, str)]
        if block.tag in _SPLIT_BLOCKS and children:
            out += _paragraphs(block)
            continue
        line = _line(block)
        if line:
            out.append(line)
    return out


def _line(block: etree._Element) -> str:
    """A block's text on one line, or "" when it is mostly link text."""
    text = " ".join("".join(block.itertext()).split())
    if not text:
        return ""
    linked = sum(len(" ".join("".join(ref.itertext()).split())) for ref in block.iter("ref"))
    return "" if linked >= _LINK_SHARE * len(text) else text


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
