"""A site's own feeds, as its HTML page announces them: `<link rel="alternate"
type="application/rss+xml" href="…">` (Atom, RDF and JSON Feed too), made absolute.

Pure; never raises (a page that is not HTML simply announces nothing).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import lxml.html

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
              "application/feed+json", "application/json", "text/xml", "application/xml")
MAX_CANDIDATES = 5


def announced_feeds(body: bytes, page_url: str) -> list[str]:
    """The feed URLs a page links with rel="alternate", in page order, at most a few."""
    try:
        doc = lxml.html.document_fromstring(body)
    except Exception:  # not HTML at all, or nothing in it
        return []
    base = doc.find(".//base")
    base_url = urljoin(page_url, base.get("href") or "") if base is not None else page_url
    found: list[str] = []
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower().split(";")[0].strip()
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or kind not in FEED_TYPES or not href:
            continue
        url = urljoin(base_url, href)
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found.append(url)
    return found[:MAX_CANDIDATES]


def looks_like_html(body: bytes, content_type: str) -> bool:
    if "html" in content_type.lower():
        return True
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))
