"""Serving article pages as a publisher's web server would, for the full-text tests: HTML in
the charset the page declares, gzip-compressed, with the headers real servers send."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass

from tests.feed_server import FeedServer
from tests.paths import SHARED

PAGES = SHARED / "pages" / "html"
SITEMAPS = SHARED / "pages" / "sitemaps"
_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class SavedPage:
    """One saved article and what its main text must and must not contain."""

    file: str
    url: str
    with_: tuple[str, ...]
    without: tuple[str, ...]

    @property
    def body(self) -> bytes:
        return (PAGES / self.file).read_bytes()


def saved_pages() -> list[SavedPage]:
    entries = json.loads((PAGES / "expected.json").read_text("utf-8"))
    return [SavedPage(e["file"], e["url"], tuple(e["with"]), tuple(e["without"]))
            for e in entries]


def declared_charset(body: bytes) -> str:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode().lower() if match else "utf-8"


def serve_html(server: FeedServer, path: str, body: bytes, *, charset: str = "utf-8") -> str:
    """Serve `body` at `path` gzip-compressed with a publisher's headers; its URL."""
    server.route(path, gzip.compress(body), content_type=f"text/html; charset={charset}",
                 headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding",
                          "Cache-Control": "max-age=60, public", "Server": "nginx",
                          "X-Frame-Options": "SAMEORIGIN"})
    return server.url(path)


def article_html(title: str, paragraphs: list[str], *, related: int = 6) -> bytes:
    """A news page as sites build them: menus, a share bar, the article, related links,
    a footer. `paragraphs` are the article's body."""
    menu = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(12))
    links = "".join(f'<li><a href="/news/{i}">Another headline number {i} from today</a></li>'
                    for i in range(related))
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{title} | Steppe Courier</title></head><body>
<header><nav><ul>{menu}</ul></nav><div class="search">Search</div></header>
<main><article><h1>{title}</h1><div class="byline">By Staff reporter · 3 min read</div>
<div class="share">Share on Facebook · Share on X · Copy link</div>
<div class="article-body">{body}</div></article>
<aside class="related"><h2>Related stories</h2><ul>{links}</ul></aside></main>
<footer><p>© Steppe Courier. All rights reserved.</p><ul>{menu}</ul></footer>
</body></html>""").encode()
