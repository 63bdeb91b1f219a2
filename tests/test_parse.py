"""Tests for bot.feeds.parse: feed bytes → ParsedFeed of clean, keyed Articles; never raises."""

from __future__ import annotations

import gzip
import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from bot.feeds.parse import _published, parse_feed
from bot.models import Article, ParsedFeed
from tests.paths import SHARED_FEEDS

FEED_URL = "https://news.example.kz/rss/main.xml"
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
<channel>
  <title>Example &amp; News</title>
  <link>https://news.example.kz/</link>
  <item>
    <title>Kazakhstan &amp; China sign deal</title>
    <link>/news/2024/deal.html</link>
    <guid isPermaLink="false">deal-123</guid>
    <pubDate>Mon, 24 Jun 2024 10:30:00 +0600</pubDate>
    <description>&lt;p&gt;The two countries signed a deal.&lt;/p&gt;
      &lt;script&gt;evil()&lt;/script&gt;&lt;p&gt;Second paragraph.&lt;/p&gt;</description>
  </item>
  <item>
    <title>Второй материал</title>
    <link>https://news.example.kz/news/2.html</link>
    <guid>https://news.example.kz/news/2.html</guid>
    <description>Текст новости.</description>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="html">Atom &lt;b&gt;Feed&lt;/b&gt;</title>
  <id>urn:uuid:feed</id>
  <updated>2024-06-25T08:00:00Z</updated>
  <entry>
    <title>中国与中亚</title>
    <id>urn:uuid:entry-1</id>
    <link rel="alternate" href="https://example.cn/a/1"/>
    <updated>2024-06-25T08:00:00+08:00</updated>
    <summary>短摘要。</summary>
    <content type="html">&lt;p&gt;第一段很长的内容。&lt;/p&gt;&lt;p&gt;第二段。&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>javascript link is dropped</title>
    <id>urn:uuid:entry-2</id>
    <link rel="alternate" href="javascript:alert(1)"/>
    <summary>Body.</summary>
  </entry>
</feed>
"""


def _rss(items: str, title: str = "Feed") -> bytes:
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}'
    return f"{body}</title>{items}</channel></rss>".encode()


def _parse(body: bytes, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed(
        body, headers if headers is not None else RSS_TYPE, source="src", feed_url=FEED_URL
    )


def _all_text(parsed: ParsedFeed) -> str:
    parts = [parsed.feed_title, parsed.error or "", parsed.warning or ""]
    parts += [f"{a.title}\n{a.text}\n{a.url}" for a in parsed.articles]
    return "\n".join(parts)


# --------------------------------------------------------------------------- well-formed feeds


def test_rss_articles() -> None:
    parsed = _parse(RSS.encode())
    assert parsed.error is None and parsed.warning is None
    assert parsed.feed_title == "Example & News"
    first, second = parsed.articles
    assert re.fullmatch(r"[0-9a-f]{32}", first.key)
    assert first.source == "src"
    assert first.url == "https://news.example.kz/news/2024/deal.html"  # relative → absolute
    assert first.title == "Kazakhstan & China sign deal"
    assert first.text == "The two countries signed a deal.\nSecond paragraph."
    assert first.published == datetime(2024, 6, 24, 4, 30, tzinfo=UTC)
    assert first.published.tzinfo is not None
    assert second.title == "Второй материал"
    assert second.text == "Текст новости."
    assert second.published is None
    assert first.key != second.key


def test_atom_articles() -> None:
    parsed = _parse(ATOM.encode(), {"Content-Type": "application/atom+xml"})
    assert parsed.error is None
    assert parsed.feed_title == "Atom Feed"
    first, second = parsed.articles
    assert first.title == "中国与中亚"
    assert first.url == "https://example.cn/a/1"
    assert first.text == "第一段很长的内容。\n第二段。"  # longest of content / summary
    assert first.published == datetime(2024, 6, 25, 0, 0, tzinfo=UTC)  # updated, in UTC
    assert second.url == ""  # only http(s) links are kept


def test_keys_are_stable_across_parses_and_depend_on_feed_url() -> None:
    once = [a.key for a in _parse(RSS.encode()).articles]
    again = [a.key for a in _parse(RSS.encode()).articles]
    assert once == again
    elsewhere = parse_feed(RSS.encode(), RSS_TYPE, source="src", feed_url="https://other/rss")
    assert not set(once) & {a.key for a in elsewhere.articles}


def test_key_falls_back_to_link_then_content() -> None:
    with_guid = _rss("<item><guid>g1</guid><link>https://x.kz/1</link><title>A</title></item>")
    link_only = _rss("<item><link>https://x.kz/1</link><title>A</title></item>")
    link_only_edited = _rss("<item><link>https://x.kz/1</link><title>A (updated)</title></item>")
    bare = _rss("<item><title>A</title><description>Body</description></item>")
    bare_edited = _rss("<item><title>A</title><description>Body, edited</description></item>")
    keys = {
        name: _parse(body).articles[0].key
        for name, body in [("guid", with_guid), ("link", link_only), ("link2", link_only_edited),
                           ("bare", bare), ("bare2", bare_edited)]
    }  # fmt: skip
    assert keys["link"] == keys["link2"]  # same link, same article, whatever the title says
    assert keys["guid"] != keys["link"]
    assert keys["bare"] != keys["bare2"]  # content hash
    assert keys["bare"] == _parse(bare).articles[0].key
    assert _parse(bare).articles[0].url == ""


def test_duplicate_guids_keep_the_first() -> None:
    items = (
        "<item><guid>same</guid><title>First</title></item>"
        "<item><guid>same</guid><title>Second</title></item>"
        "<item><guid>other</guid><title>Third</title></item>"
    )
    parsed = _parse(_rss(items))
    assert [a.title for a in parsed.articles] == ["First", "Third"]


def test_entries_without_title_or_text_are_skipped() -> None:
    items = "<item><guid>a</guid><link>https://x.kz/a</link></item><item><title>Kept</title></item>"
    assert [a.title for a in _parse(_rss(items)).articles] == ["Kept"]
    only_empty = _parse(_rss("<item><guid>a</guid></item>"))
    assert only_empty.articles == [] and only_empty.error
    assert "no usable entries" in only_empty.error


def test_well_formed_feed_without_entries_is_a_successful_poll() -> None:
    parsed = _parse(_rss(""))
    assert parsed.articles == []
    assert parsed.error is None and parsed.warning is None
    assert parsed.feed_title == "Feed"
    broken = _parse(b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</tit')
    assert broken.articles == [] and broken.error and "no entries" in broken.error


def test_windows_1251_body_with_http_charset() -> None:
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Новости Оренбурга</title>'
        "<item><title>В Бузулуке главные стройплощадки</title><guid>1</guid>"
        "<description>Детсад и Ледовый дворец.</description></item></channel></rss>"
    ).encode("windows-1251")
    parsed = _parse(body, {"content-type": "application/rss+xml; charset=windows-1251"})
    assert parsed.feed_title == "Новости Оренбурга"
    assert parsed.articles[0].title == "В Бузулуке главные стройплощадки"
    assert parsed.articles[0].text == "Детсад и Ледовый дворец."


def test_title_and_text_are_capped() -> None:
    parsed = _parse(_rss(f"<item><title>{'t ' * 500}</title><description>{'w ' * 80_000}"
                         "</description></item>"))  # fmt: skip
    article = parsed.articles[0]
    assert len(article.title) <= 300
    assert len(article.text) <= 100_000


def test_bozo_feed_with_entries_returns_articles_and_warning() -> None:
    body = _rss("<item><title>Good</title><description>Fine &amp; dandy</description></item>"
                "<item><title>Broken & unescaped</title></item>")  # fmt: skip
    parsed = _parse(body)
    assert [a.title for a in parsed.articles][:1] == ["Good"]
    assert parsed.error is None
    assert parsed.warning and "SAXParseException" in parsed.warning


def _struct(year: int) -> time.struct_time:
    return time.struct_time((year, 1, 2, 3, 4, 5, 0, 2, 0))


def test_out_of_range_dates_become_none_or_fall_back() -> None:
    for year in (99_999, 10**12):
        assert _published({"published_parsed": _struct(year)}) is None
    entry = {"published_parsed": _struct(99_999), "updated_parsed": _struct(2024)}
    assert _published(entry) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    garbage = _rss("<item><title>Old</title><pubDate>Mon, 01 Jan 99999 99:99 GMT</pubDate></item>")
    assert _parse(garbage).articles[0].published is None


def test_gzip_body_without_content_encoding() -> None:
    parsed = _parse(gzip.compress(RSS.encode()))
    assert len(parsed.articles) == 2


# --------------------------------------------------------------------------- not feeds


def test_html_page_is_not_a_feed() -> None:
    page = b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>Hello</p></body></html>"
    parsed = _parse(page, {"Content-Type": "text/html; charset=utf-8"})
    assert parsed.articles == []
    assert parsed.error and parsed.error.startswith("not a feed")


@pytest.mark.parametrize("body", [b"", b"   \n", b"\x00\x00\x00"])
def test_empty_body_is_an_error(body: bytes) -> None:
    parsed = _parse(body)
    assert parsed.articles == []
    assert parsed.error and parsed.error.startswith("not a feed")


def test_xml_without_feed_elements_is_not_a_feed() -> None:
    parsed = _parse(b'<?xml version="1.0"?><catalog><book>x</book></catalog>')
    assert parsed.error == "not a feed: no RSS/Atom elements"


def test_body_naming_a_local_file_is_not_read() -> None:
    # feedparser.parse(bytes) opens a bytes argument that is an existing path.
    parsed = _parse(b"/etc/passwd")
    assert parsed.articles == []
    assert "root:" not in _all_text(parsed)


def test_unexpected_types_never_raise() -> None:
    parsed = parse_feed(None, {}, source="s", feed_url=FEED_URL)  # type: ignore[arg-type]
    assert parsed.articles == [] and parsed.error


# --------------------------------------------------------------------------- hostile XML

_LAUGHS = ['<!ENTITY lol "lollollollol">'] + [
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10)
]


@pytest.mark.parametrize("sep", ["", "\n"], ids=["one-line-doctype", "multi-line-doctype"])
def test_billion_laughs_is_not_expanded(sep: str) -> None:
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [{sep}{sep.join(_LAUGHS)}{sep}]>\n'
        '<rss version="2.0"><channel><title>t &lol9;</title>'
        "<item><title>laughs &lol9;</title><description>x &lol9;</description></item>"
        "</channel></rss>"
    ).encode()
    start = time.perf_counter()
    parsed = _parse(body)
    assert time.perf_counter() - start < 2
    assert "lollollollollol" not in _all_text(parsed)
    assert len(_all_text(parsed)) < 10_000


def test_quadratic_entity_blowup_is_refused() -> None:
    body = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + "a" * 50_000 + '">\n]>\n'
        '<rss version="2.0"><channel><item><title>q</title><description>'
        + "&a;" * 50_000
        + "</description></item></channel></rss>"
    ).encode()
    start = time.perf_counter()
    parsed = _parse(body)
    assert time.perf_counter() - start < 2
    assert parsed.articles == []
    assert parsed.error and parsed.error.startswith("refused")


@pytest.mark.parametrize("sep", ["", "\n"], ids=["one-line-doctype", "multi-line-doctype"])
def test_external_entity_is_not_read(sep: str) -> None:
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [{sep}<!ENTITY x SYSTEM "file:///etc/passwd">'
        f'{sep}]>\n<rss version="2.0"><channel><title>t &x;</title>'
        "<item><title>a &x;</title><description>b &x;</description></item></channel></rss>"
    ).encode()
    start = time.perf_counter()
    parsed = _parse(body)
    assert time.perf_counter() - start < 2
    assert "root:" not in _all_text(parsed)


# --------------------------------------------------------------------------- real feed corpus


def _feed_files() -> list[Path]:
    if not SHARED_FEEDS.is_dir():
        return []
    return sorted(p for p in SHARED_FEEDS.rglob("*") if p.is_file())


FEED_FILES = _feed_files()


def test_shared_feed_corpus_is_present() -> None:
    assert SHARED_FEEDS.is_dir(), (
        f"shared feed corpus not found at {SHARED_FEEDS}; "
        "check out shared/ beside the repository or set NARRATIVE_BOT_SHARED"
    )
    assert len(FEED_FILES) > 2000, f"expected ~2,100 feed files under {SHARED_FEEDS}"


def _check_article(article: Article) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", article.key)
    assert article.title or article.text
    assert len(article.title) <= 300 and len(article.text) <= 100_000
    assert article.url == "" or article.url.startswith(("http://", "https://"))
    assert article.published is None or article.published.utcoffset() is not None


@pytest.mark.parametrize(
    "path", FEED_FILES, ids=[str(p.relative_to(SHARED_FEEDS)) for p in FEED_FILES]
)
def test_shared_feed_parses_without_raising(path: Path) -> None:
    parsed = parse_feed(
        path.read_bytes(),
        {"Content-Type": "application/xml"},
        source="corpus",
        feed_url="https://example.org/feeds/feed.xml",
    )
    if not (parsed.articles or parsed.error):  # only a well-formed feed that lists nothing
        result = feedparser.parse(io.BytesIO(path.read_bytes()))
        assert result.get("version") and not result.get("entries"), "neither articles nor error"
    if parsed.error:
        assert parsed.error.strip() and parsed.error.isprintable()
    for article in parsed.articles:
        _check_article(article)
    assert len({a.key for a in parsed.articles}) == len(parsed.articles)


# ---- language ---------------------------------------------------------------------------------

def test_language_declared_by_the_feed_entry_or_guessed() -> None:
    rss = ('<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
           "<channel><title>t</title><language>ru-RU</language>"
           "<item><guid>1</guid><title>Қазақстан жаңалықтары</title><dc:language>kk</dc:language>"
           "</item><item><guid>2</guid><title>Hello world</title></item></channel></rss>")
    articles = parse_feed(rss.encode(), {}, source="s", feed_url="https://e.org/f").articles
    assert [a.language for a in articles] == ["kk", "ru"]  # entry's own, else the feed's
    atom = ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
            '<entry xml:lang="zh-CN"><id>1</id><title>hello</title></entry>'
            "<entry><id>2</id><title>Тоҷикистон ба Чин ҳамроҳ мешавад</title></entry>"
            "<entry><id>3</id><title>哈萨克斯坦为何急于回归中国</title></entry></feed>")
    articles = parse_feed(atom.encode(), {}, source="s", feed_url="https://e.org/f").articles
    assert [a.language for a in articles] == ["zh", "tg", "zh"]  # undeclared: guessed
