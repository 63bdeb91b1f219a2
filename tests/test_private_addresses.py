"""Finding 12: a redirect from a feed to 127.0.0.1 on another port was followed, and with full
text every item link is a request target. Redirects and item links that lead to private,
loopback or link-local addresses are refused by default, judged on the resolved address; a
configured feed URL is trusted as given; `[fetch] allow_private = true` lifts the rule."""

from __future__ import annotations

import pytest
from aiohttp import web

from bot.app.pipeline import fetch_limits
from bot.feeds import make_client
from bot.feeds.addresses import is_public
from bot.feeds.fetch import FetchLimits, fetch_feed
from bot.models import HttpCacheState
from tests.conftest import WriteConfig
from tests.feed_server import FeedServer

RSS = (b'<rss version="2.0"><channel><title>T</title><item><guid>1</guid><title>A</title>'
       b"<description>b</description></item></channel></rss>")


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False), ("172.16.5.4", False),
    ("169.254.169.254", False), ("::1", False), ("fe80::1", False), ("fd00::1", False),
    ("::ffff:127.0.0.1", False), ("0.0.0.0", False), ("100.64.0.1", False),
    ("224.0.0.1", False), ("93.184.216.34", True), ("2606:4700::1111", True),
])
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_a_redirect_to_another_local_port_is_refused_by_default(
        feeds: FeedServer, write_config: WriteConfig) -> None:
    async with FeedServer() as other:
        other.route("/inside.xml", RSS)
        target = other.url("/inside.xml")

        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(target)

        feeds.set_handler("/feed.xml", redirect)
        feeds.route("/direct.xml", RSS)
        config = write_config(extra="[fetch]\nallow_private = false\n")
        limits = fetch_limits(config)
        assert limits.allow_private is False
        async with make_client(limits) as client:
            refused = await fetch_feed(client, feeds.url("/feed.xml"), HttpCacheState(), limits,
                                       trusted=True)
            configured = await fetch_feed(client, feeds.url("/direct.xml"), HttpCacheState(),
                                          limits, trusted=True)
            page = await fetch_feed(client, feeds.url("/direct.xml"), HttpCacheState(), limits)
        assert refused.error is not None and "private or local address" in refused.error
        assert other.hits("/inside.xml") == 0  # never reached
        assert configured.error is None and configured.body == RSS  # trusted as given
        assert page.error is not None and "127.0.0.1" in page.error  # an item link: refused

        allowed = fetch_limits(write_config(extra="[fetch]\nallow_private = true\n"))
        async with make_client(allowed) as client:
            followed = await fetch_feed(client, feeds.url("/feed.xml"), HttpCacheState(),
                                        allowed, trusted=True)
        assert followed.error is None and other.hits("/inside.xml") == 1


async def test_metadata_and_localhost_names_are_refused_without_a_connection() -> None:
    limits = FetchLimits(allow_private=False, timeout_s=5)
    async with make_client(limits) as client:
        for url in ("http://169.254.169.254/latest/meta-data/", "http://localhost:9/x",
                    "http://[::1]:9/x", "http://0x7f000001:9/x"):
            result = await fetch_feed(client, url, HttpCacheState(), limits)
            assert result.error is not None and "private or local" in result.error, url
