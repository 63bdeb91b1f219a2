"""A public Telegram channel's web preview (https://t.me/s/<channel>) → its posts.

The preview is an HTML page listing the channel's latest posts, oldest first; each post is a
`tgme_widget_message` element whose `data-post` is "<channel>/<id>", with a `<time
datetime>` and a `tgme_widget_message_text` body. `?before=<id>` lists the posts before that
one, which is how older posts are paged. Service messages (pinned, photo changed) and the
quoted text of a replied-to post are not the post's own words and are left out.

`parse_channel_page` is pure and never raises; `channel_url` normalises the URL forms people
paste (t.me/name, t.me/s/name, telegram.me/name, @name is not a URL and is refused).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import lxml.html
from lxml import etree

from bot.feeds.language import guess_language
from bot.feeds.text import clean_text
from bot.models import Article

TELEGRAM_HOSTS = ("t.me", "telegram.me", "www.t.me", "www.telegram.me")
_CHANNEL_URL = re.compile(r"^https?://(?:www\.)?(?:t|telegram)\.me/(?:s/)?([A-Za-z][A-Za-z0-9_]{3,})"
                          r"/?(?:[?#].*)?$", re.IGNORECASE)
TITLE_CHARS = 100
TEXT_MAX_CHARS = 20_000
_KEY_HEX_CHARS = 32


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


_POSTS = etree.XPath(f"//div[{_has_class('tgme_widget_message')}][@data-post]")
_TEXT = etree.XPath(f".//div[{_has_class('tgme_widget_message_text')}]"
                    f"[not(ancestor::*[{_has_class('tgme_widget_message_reply')}])]")
_TIME = etree.XPath(f".//*[{_has_class('tgme_widget_message_date')}]//time[@datetime]"
                    " | .//time[@datetime]")
_TITLE = etree.XPath(f"//*[{_has_class('tgme_channel_info_header_title')}]")


@dataclass(frozen=True)
class ChannelPage:
    """The posts of one preview page (oldest first) and the channel's title."""

    title: str = ""
    articles: list[Article] = field(default_factory=list)
    oldest_id: int | None = None
    error: str | None = None


def channel_url(url: str) -> str | None:
    """https://t.me/s/<channel> for any t.me / telegram.me URL of a channel; else None."""
    match = _CHANNEL_URL.match(url.strip())
    return f"https://t.me/s/{match.group(1)}" if match else None


def parse_channel_page(body: bytes, *, source: str, feed_url: str) -> ChannelPage:
    """The posts of one t.me/s/ page; never raises."""
    try:
        return _parse(body, source, feed_url)
    except Exception as exc:  # a parser bug must not take the poll down
        return ChannelPage(error=f"channel page parse failed: {type(exc).__name__}")


def _parse(body: bytes, source: str, feed_url: str) -> ChannelPage:
    if not body.strip():
        return ChannelPage(error="not a channel preview: empty page")
    doc = lxml.html.document_fromstring(body)
    title_nodes = _TITLE(doc)
    title = clean_text(title_nodes[0].text_content()) if title_nodes else ""
    posts = _POSTS(doc)
    if not posts and not title:
        return ChannelPage(error="not a Telegram channel preview (no posts, no channel title; "
                                 "is the channel public with its preview on?)")
    articles: list[Article] = []
    ids: list[int] = []
    for post in posts:
        article, number = _article(post, title, source, feed_url)
        if number is not None:
            ids.append(number)
        if article is not None:
            articles.append(article)
    return ChannelPage(title=title, articles=articles, oldest_id=min(ids) if ids else None)


def _article(post: lxml.html.HtmlElement, channel: str, source: str,
             feed_url: str) -> tuple[Article | None, int | None]:
    data_post = (post.get("data-post") or "").strip()
    name, _, number = data_post.rpartition("/")
    if not name or not number.isdigit():
        return None, None
    if "service_message" in (post.get("class") or ""):
        return None, int(number)
    texts = _TEXT(post)
    text = _text_of(texts[0]) if texts else ""
    if not text:
        return None, int(number)  # a photo or a sticker without words: nothing to match
    first = text.split("\n", 1)[0]
    lead = first if len(first) <= TITLE_CHARS else first[:TITLE_CHARS].rsplit(" ", 1)[0] + " …"
    digest = hashlib.sha256(f"{feed_url}\n{data_post}".encode("utf-8", "surrogatepass"))
    return Article(key=digest.hexdigest()[:_KEY_HEX_CHARS], source=source,
                   url=f"https://t.me/{data_post}",
                   title=f"{channel}: {lead}" if channel else lead, text=text,
                   published=_time(post), language=guess_language(text)), int(number)


def _text_of(node: lxml.html.HtmlElement) -> str:
    for br in node.iter("br"):
        br.tail = "\n" + (br.tail or "")
    return clean_text(node.text_content(), max_chars=TEXT_MAX_CHARS)


def _time(post: lxml.html.HtmlElement) -> datetime | None:
    for node in _TIME(post):
        try:
            when = datetime.fromisoformat(str(node.get("datetime")))
        except ValueError:
            continue
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return None
