"""OPML, the file feed readers exchange subscriptions in: read into `OpmlFeed` records, and
written from them.

Reading: every `<outline>` with an `xmlUrl` is a feed, named by its `title` (else `text`,
else the URL's host); an outline without `xmlUrl` is a folder, whose name becomes a tag of the
feeds inside it (nested folders give one tag each). The parser resolves no entities and reads
no network; a file that is not OPML gets one readable error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_comments=True, remove_pis=True)
MAX_FEEDS = 5000
NAME_MAX_CHARS = 100


class OpmlError(ValueError):
    """The file is not OPML we can read."""


@dataclass(frozen=True)
class OpmlFeed:
    """One subscription: its name, its URL, the folders it sits in."""

    name: str
    url: str
    tags: tuple[str, ...] = field(default_factory=tuple)


def read_opml(data: bytes) -> list[OpmlFeed]:
    """The feeds of an OPML document, in document order (at most MAX_FEEDS)."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"not OPML: {exc.msg}") from None
    if root is None or etree.QName(root).localname.lower() != "opml":
        raise OpmlError("not OPML: the root element is not <opml>")
    body = root.find("body")
    if body is None:
        raise OpmlError("not OPML: no <body>")
    feeds: list[OpmlFeed] = []
    _walk(body, (), feeds)
    return feeds


def _walk(node: etree._Element, folders: tuple[str, ...], out: list[OpmlFeed]) -> None:
    for outline in node.iterchildren("outline"):
        if len(out) >= MAX_FEEDS:
            return
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        label = " ".join((outline.get("title") or outline.get("text") or "").split())
        if url:
            name = (label or urlsplit(url).netloc or url)[:NAME_MAX_CHARS]
            out.append(OpmlFeed(name=name, url=url, tags=folders))
        else:
            _walk(outline, (*folders, label) if label else folders, out)


def write_opml(feeds: Iterable[OpmlFeed], title: str = "narrative-bot feeds") -> str:
    """An OPML 2.0 document: feeds without a tag at the top, the others in their first
    tag's folder."""
    top: list[OpmlFeed] = []
    folders: dict[str, list[OpmlFeed]] = {}
    for feed in feeds:
        if feed.tags:
            folders.setdefault(feed.tags[0], []).append(feed)
        else:
            top.append(feed)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">',
             f"  <head><title>{_text(title)}</title></head>", "  <body>"]
    lines += [_outline(f, "    ") for f in top]
    for folder, members in folders.items():
        lines.append(f"    <outline text={quoteattr(folder)} title={quoteattr(folder)}>")
        lines += [_outline(f, "      ") for f in members]
        lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _outline(feed: OpmlFeed, indent: str) -> str:
    return (f"{indent}<outline type=\"rss\" text={quoteattr(feed.name)} "
            f"title={quoteattr(feed.name)} xmlUrl={quoteattr(feed.url)}/>")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
