"""feedparser → Article (stable key, url, title, text, published, source).

``parse_feed`` turns one fetched feed body into clean ``Article`` records and never raises:
anything that is not a usable feed comes back as ``ParsedFeed(articles=[], error=...)``.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import time
import zlib
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from bot.feeds.language import guess_language, normalize_language
from bot.feeds.text import clean_text, html_to_text
from bot.feeds.tracking import strip_tracking
from bot.models import Article, ParsedFeed

TITLE_MAX_CHARS = 300
TEXT_MAX_CHARS = 100_000
_REASON_MAX_CHARS = 300
_KEY_HEX_CHARS = 32
_GZIP_MAGIC = b"\x1f\x8b"
_GUNZIP_MAX_BYTES = 32 * 1024 * 1024  # a gzip bomb stops here instead of filling memory
# expat refuses billion-laughs nesting, but when the strict parse fails feedparser's loose
# parser expands flat ("safe") DOCTYPE entities with no limit: a 150 KB body of "&a;" refs to a
# 50 KB entity becomes 2.5 GB and minutes of CPU. Such documents are refused up front.
_MAX_ENTITY_EXPANSION = 1_000_000
_ENTITY_DECL = re.compile(rb"""<!ENTITY\s+([^\s%>"']+)\s+(?:"([^"]*)"|'([^']*)')""")
_ROOT_ELEMENT = re.compile(rb"<[A-Za-z_]")
_ENTITY_REF = re.compile(rb"&([^\s&;<>#]{1,100});")

Entry = Mapping[str, Any]


def _reason(exc: BaseException | None) -> str:
    """A one-line, bounded description of a (bozo) exception."""
    if exc is None:
        return ""
    message = clean_text(str(exc)).replace("\n", " ")
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:_REASON_MAX_CHARS]


def _text_of(value: object, max_chars: int) -> str:
    """HTML (or plain text) from feedparser → clean text."""
    if not isinstance(value, str):
        return ""
    return clean_text(html_to_text(value), max_chars=max_chars)


def _entry_text(entry: Entry) -> str:
    """The longest of content[*].value, summary and description, as clean text."""
    raw: list[object] = [c.get("value") for c in entry.get("content") or [] if isinstance(c, dict)]
    raw += [entry.get("summary"), entry.get("description")]
    texts = [_text_of(value, TEXT_MAX_CHARS) for value in raw]
    return max(texts, key=len, default="")


def _entry_url(entry: Entry, feed_url: str) -> str:
    """The entry link made absolute against the feed URL; only http(s) links survive."""
    link = entry.get("link")
    if not isinstance(link, str) or not link.strip():
        return ""
    try:
        url = urljoin(feed_url, link.strip())
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. "http://[bad-ipv6" in a hostile feed
        return ""
    return strip_tracking(url) if scheme in ("http", "https") else ""


def _published(entry: Entry) -> datetime | None:
    """published_parsed / updated_parsed (UTC struct_time) → aware UTC datetime."""
    for field in ("published_parsed", "updated_parsed"):
        # `in` first: FeedParserDict.get("updated_parsed") silently (and with a
        # DeprecationWarning) answers with published_parsed when there is no updated date.
        parsed = entry.get(field) if field in entry else None
        if not isinstance(parsed, time.struct_time):
            continue
        try:
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
        except (OverflowError, ValueError, OSError):
            continue
    return None


def _first_str(*values: object) -> str:
    """The first value that is a non-blank string, stripped ("" if none)."""
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _entry_key(entry: Entry, feed_url: str, title: str, text: str) -> str:
    """sha256(feed_url + "\\n" + id/guid, else link, else title + text), first 32 hex chars."""
    identity = _first_str(entry.get("id"), entry.get("link")) or f"{title}\n{text}"
    digest = hashlib.sha256(f"{feed_url}\n{identity}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:_KEY_HEX_CHARS]


def _declared_language(entry: Entry, feed_language: str | None) -> str | None:
    """dc:language of the entry, its xml:lang (on content, summary or title), else the feed's."""
    details: list[object] = [c for c in entry.get("content") or [] if isinstance(c, dict)]
    details += [entry.get(k) for k in ("summary_detail", "title_detail")]
    declared = [entry.get("language"), *(d.get("language") for d in details
                                         if isinstance(d, dict))]
    return next((code for v in declared if (code := normalize_language(v))), feed_language)


def _article(entry: Entry, *, source: str, feed_url: str,
             feed_language: str | None = None) -> Article | None:
    """One entry → Article, or None when it has neither a title nor any text."""
    title = _text_of(entry.get("title"), TITLE_MAX_CHARS).replace("\n", " ")
    text = _entry_text(entry)
    if not title and not text:
        return None
    return Article(
        key=_entry_key(entry, feed_url, title, text),
        source=source,
        url=_entry_url(entry, feed_url),
        title=title,
        text=text,
        published=_published(entry),
        language=(_declared_language(entry, feed_language)
                  or guess_language(f"{title}\n{text}")),
    )


def _articles(entries: list[Entry], *, source: str, feed_url: str,
              feed_language: str | None = None) -> list[Article]:
    """Articles in feed order; entries without content and repeated keys are dropped."""
    seen: set[str] = set()
    articles: list[Article] = []
    for entry in entries:
        article = _article(entry, source=source, feed_url=feed_url,
                           feed_language=feed_language)
        if article is not None and article.key not in seen:
            seen.add(article.key)
            articles.append(article)
    return articles


def _headers(headers: Mapping[str, str], feed_url: str) -> dict[str, str]:
    """Lower-case header names (feedparser looks them up that way); the feed URL is the base
    for relative links unless the server sent its own Content-Location."""
    out = {str(k).lower(): str(v) for k, v in headers.items()}
    out.setdefault("content-location", feed_url)
    return out


def _gunzip_if_needed(body: bytes) -> bytes:
    """Bodies still gzip-compressed (no Content-Encoding sent, or compressed twice) are
    inflated, up to a bound; anything that does not inflate is returned as it was."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    try:
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(body, _GUNZIP_MAX_BYTES)
    except zlib.error:
        return body


def _entity_expansion(body: bytes) -> int:
    """Characters that internal DOCTYPE entities would add if every reference were expanded."""
    if b"\x00" in body[:4096]:  # UTF-16/32: the ASCII markup shows once the NULs are gone
        body = body.replace(b"\x00", b"")
    root = _ROOT_ELEMENT.search(body)
    head = body[: root.start()] if root else body
    declared = {
        m.group(1): len(m.group(2) or m.group(3) or b"") for m in _ENTITY_DECL.finditer(head)
    }
    if not declared:
        return 0
    refs = Counter(m.group(1) for m in _ENTITY_REF.finditer(body))
    return sum(size * refs[name] for name, size in declared.items())


def _has_content_type(headers: Mapping[str, str]) -> bool:
    return any(str(k).lower() == "content-type" for k in headers)


def _bozo_reason(result: Mapping[str, Any], *, has_content_type: bool) -> str:
    """Why feedparser flagged the document, or "". With no Content-Type given (a file, a test)
    feedparser's "no Content-type specified" complaint is noise, not a finding."""
    exc = result.get("bozo_exception") if result.get("bozo") else None
    if isinstance(exc, feedparser.NonXMLContentType) and not has_content_type:
        return ""
    return _reason(exc)


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]{1,8})|([0-9]{1,10}));")
_SURROGATE_PAIR = re.compile(rb"&#(?:[xX][dD][89aAbB][0-9A-Fa-f]{2}|5[56][0-9]{3});"
                             rb"&#(?:[xX][dD][c-fC-F][0-9A-Fa-f]{2}|5[67][0-9]{3});")


def _code_point(ref: bytes) -> int:
    match = _CHAR_REF.fullmatch(ref)
    assert match is not None
    hex_digits, decimal = match.groups()
    return int(hex_digits, 16) if hex_digits else int(decimal)


def _repair_char_refs(body: bytes) -> bytes:
    """Character references feedparser's loose parser would choke on (and drop the whole feed
    for): UTF-16 surrogate pairs written as two references become one code point; lone
    surrogates and numbers beyond Unicode become U+FFFD."""
    if b"&#" not in body:
        return body

    def pair(m: re.Match[bytes]) -> bytes:
        first, second = (_code_point(r + b";") for r in m.group(0).split(b";")[:2])
        return b"&#x%X;" % (0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))

    def single(m: re.Match[bytes]) -> bytes:
        n = _code_point(m.group(0))
        return m.group(0) if n <= 0x10FFFF and not 0xD800 <= n <= 0xDFFF else b"&#xFFFD;"

    return _CHAR_REF.sub(single, _SURROGATE_PAIR.sub(pair, body))


def _parse(body: bytes, headers: Mapping[str, str], *, source: str, feed_url: str) -> ParsedFeed:
    body = _gunzip_if_needed(body or b"")
    if not body.strip():
        return ParsedFeed(articles=[], error="not a feed: empty document")
    expansion = _entity_expansion(body)
    if expansion > _MAX_ENTITY_EXPANSION:
        return ParsedFeed(
            articles=[],
            error=f"refused: DOCTYPE entities would expand to {expansion:,} characters",
        )
    body = _repair_char_refs(body)
    # BytesIO, never bare bytes: feedparser treats a bytes argument that names an existing
    # file (e.g. a body of b"/etc/passwd") as a path and reads it.
    result = feedparser.parse(
        io.BytesIO(body), response_headers=_headers(headers, feed_url), sanitize_html=True
    )
    reason = _bozo_reason(result, has_content_type=_has_content_type(headers))
    entries = result.get("entries") or []
    if not entries and not result.get("version"):
        return ParsedFeed(articles=[], error=f"not a feed: {reason or 'no RSS/Atom elements'}")
    feed = result.get("feed", {})
    feed_title = _text_of(feed.get("title"), TITLE_MAX_CHARS).replace("\n", " ")
    feed_language = normalize_language(feed.get("language"))
    articles = _articles(entries, source=source, feed_url=feed_url, feed_language=feed_language)
    if articles or not (entries or reason):
        # a well-formed feed that lists nothing today is healthy: a poll with 0 items
        return ParsedFeed(articles=articles, feed_title=feed_title, warning=reason or None)
    why = "feed has no entries"  # and it is not well-formed
    if entries:
        why = f"no usable entries ({len(entries)} without title or text)"
    if reason:
        why = f"{why}; {reason}"
    return ParsedFeed(articles=[], feed_title=feed_title, error=why)


def parse_feed(body: bytes, headers: dict[str, str], *, source: str, feed_url: str) -> ParsedFeed:
    """Parse one feed body into articles; never raises (errors are returned, readable)."""
    try:
        return _parse(body, headers, source=source, feed_url=feed_url)
    except Exception as exc:  # a parser bug must not take the poller down with it
        return ParsedFeed(articles=[], error=f"feed parse failed: {_reason(exc)}")
