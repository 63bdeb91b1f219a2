"""Sitemaps → the URLs they list: a `<urlset>` (plain, or a Google News sitemap whose
`news:news` gives title, publication date and language), a `<sitemapindex>` of child
sitemaps, gzip-compressed or not.

`parse_sitemap` is pure and never raises. The XML parser resolves no entities and reads no
network; a body that inflates past its bound, or that is no sitemap, comes back with an
error. Only the newest `max_urls` entries are kept (by date; undated ones after), and how
many there were is reported, so a sitemap of 50,000 links costs one parse, not 50,000 pages.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from lxml import etree

from bot.feeds.language import normalize_language
from bot.feeds.text import clean_text

_GZIP_MAGIC = b"\x1f\x8b"
TITLE_MAX_CHARS = 300
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          recover=True, remove_comments=True, remove_pis=True)


@dataclass(frozen=True)
class SitemapEntry:
    """One URL a sitemap lists, with what the sitemap says of it."""

    url: str
    title: str = ""
    published: datetime | None = None
    language: str | None = None


@dataclass(frozen=True)
class Sitemap:
    """The entries of a urlset, or the child sitemaps of an index; `total` before the cap."""

    entries: list[SitemapEntry] = field(default_factory=list)
    children: list[SitemapEntry] = field(default_factory=list)
    total: int = 0
    error: str | None = None

    @property
    def is_index(self) -> bool:
        return bool(self.children)


def parse_sitemap(body: bytes, base_url: str, *, max_urls: int,
                  max_bytes: int = 32 * 1024 * 1024) -> Sitemap:
    """Parse a sitemap body (`.xml` or `.xml.gz`); never raises."""
    try:
        return _parse(body, base_url, max_urls, max_bytes)
    except Exception as exc:  # a parser bug must not take the poll down
        return Sitemap(error=f"sitemap parse failed: {type(exc).__name__}")


def looks_like_sitemap(body: bytes) -> bool:
    """Whether a body (gzip-compressed or not) opens like a sitemap."""
    head = body[:2048]
    if body.startswith(_GZIP_MAGIC):
        try:  # only the first few KB are inflated: enough to see the root element
            head = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(body[:65536], 2048)
        except zlib.error:
            return False
    head = head.lower()
    return b"<urlset" in head or b"<sitemapindex" in head


def _parse(body: bytes, base_url: str, max_urls: int, max_bytes: int) -> Sitemap:
    if body.startswith(_GZIP_MAGIC):
        inflated = _gunzip(body, max_bytes)
        if inflated is None:
            return Sitemap(error=f"gzip sitemap inflates past {max_bytes // (1024 * 1024)} MB "
                                 "or is corrupt")
        body = inflated
    if not body.strip():
        return Sitemap(error="not a sitemap: empty document")
    root = etree.fromstring(body, _PARSER)
    if root is None:
        return Sitemap(error="not a sitemap: unreadable XML")
    kind = etree.QName(root).localname
    if kind == "sitemapindex":
        children = _entries(root, "sitemap", base_url)
        return Sitemap(children=_newest(children, max_urls), total=len(children))
    if kind != "urlset":
        return Sitemap(error=f"not a sitemap: root element <{kind}>")
    entries = _entries(root, "url", base_url)
    return Sitemap(entries=_newest(entries, max_urls), total=len(entries))


def _gunzip(body: bytes, max_bytes: int) -> bytes | None:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        return None
    return None if len(out) > max_bytes else out


def _entries(root: etree._Element, tag: str, base_url: str) -> list[SitemapEntry]:
    entries: list[SitemapEntry] = []
    seen: set[str] = set()
    for node in root.iterchildren("{*}" + tag):
        url = _url(_child_text(node, "loc"), base_url)
        if not url or url in seen:
            continue
        seen.add(url)
        news = node.find("{*}news")
        if news is not None:
            entries.append(_news_entry(url, news))
        else:
            entries.append(SitemapEntry(url=url, published=_date(_child_text(node, "lastmod"))))
    return entries


def _news_entry(url: str, news: etree._Element) -> SitemapEntry:
    title = clean_text(_child_text(news, "title"), max_chars=TITLE_MAX_CHARS).replace("\n", " ")
    publication = news.find("{*}publication")
    language = normalize_language(_child_text(publication, "language")
                                  if publication is not None else "")
    return SitemapEntry(url=url, title=title, language=language,
                        published=_date(_child_text(news, "publication_date")))


def _child_text(node: etree._Element, name: str) -> str:
    child = node.find("{*}" + name)
    return "" if child is None else "".join(child.itertext()).strip()


def _url(value: str, base_url: str) -> str:
    if not value:
        return ""
    try:
        url = urljoin(base_url, value)
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https", "file") else ""


def _date(value: str) -> datetime | None:
    """W3C datetime (2024-05-01, 2024-05-01T10:00:00+02:00, …Z) → aware UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _newest(entries: list[SitemapEntry], max_urls: int) -> list[SitemapEntry]:
    if len(entries) <= max_urls:
        return entries
    oldest = datetime.min.replace(tzinfo=UTC)
    ranked = sorted(entries, key=lambda e: e.published or oldest, reverse=True)
    return ranked[:max_urls]
