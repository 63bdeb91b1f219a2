"""Proxies: `[fetch] proxy` and a feed's own `proxy` carry its requests, `[telegram] proxy`
carries the Bot API's, through a real forwarding HTTP proxy on 127.0.0.1; bad proxy URLs and
kinds are refused by the config."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.app.pipeline import fetch_limits
from bot.config import ConfigError
from bot.feeds import make_client
from bot.storage.store import Store
from bot.telegram.application import make_bot
from tests.conftest import TOKEN, WriteConfig
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.test_pipeline import rss, stub_pipeline


class ForwardProxy:
    """An HTTP forward proxy: requests in absolute form are sent on, their URLs recorded."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> ForwardProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = str(request.url)
        self.seen.append(target)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "proxy-connection", "connection")}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, target, headers=headers, data=await request.read(),
                allow_redirects=False) as reply:
            body = await reply.read()
            kept = {k: v for k, v in reply.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding",
                                         "content-encoding", "connection")}
            return web.Response(status=reply.status, body=body, headers=kept)


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy() as server:
        yield server


async def test_fetch_proxy_and_a_feeds_own_proxy_carry_its_requests(
        feeds: FeedServer, proxy: ForwardProxy, write_config: WriteConfig,
        shipped_narratives: list) -> None:
    feeds.route("/a.xml", rss(2))
    feeds.route("/b.xml", rss(3))
    config = write_config([("A", feeds.url("/a.xml")), ("B", feeds.url("/b.xml"))],
                          extra='[fetch]\nfull_text = "never"\n')
    own = config.feeds[1].model_copy(update={"proxy": proxy.url})
    config = config.model_copy(update={"feeds": [config.feeds[0], own]})
    store = Store(config.state.path)
    try:
        async with make_client(fetch_limits(config)) as client:
            pipeline = stub_pipeline(config, store, shipped_narratives, client)
            reports = [await pipeline.poll_feed(f, force=True) for f in config.feeds]
            await pipeline.sources.aclose()
        assert [r.new_articles for r in reports] == [2, 3]
        assert proxy.seen == [feeds.url("/b.xml")]  # only B's request went through it

        everyone = config.model_copy(update={"fetch": config.fetch.model_copy(
            update={"proxy": proxy.url})})
        async with make_client(fetch_limits(everyone), everyone.fetch.proxy) as client:
            pipeline = stub_pipeline(everyone, store, shipped_narratives, client)
            await pipeline.poll_feed(everyone.feeds[0], force=True)
        assert proxy.seen[-1] == feeds.url("/a.xml")
    finally:
        store.close()


async def test_the_telegram_proxy_carries_the_bot_api(
        telegram: FakeTelegram, proxy: ForwardProxy, write_config: WriteConfig) -> None:
    base = write_config([], telegram_url=telegram.base_url)
    config = base.model_copy(update={"telegram": base.telegram.model_copy(
        update={"proxy": proxy.url, "rate_limit": False})})
    async with make_bot(config, TOKEN) as bot:
        me = await bot.get_me()
    assert me.is_bot
    assert proxy.seen and all(url.startswith(telegram.base_url) for url in proxy.seen)


@pytest.mark.parametrize(("extra", "why"), [
    ('[fetch]\nproxy = "ftp://p:21"\n', "must be an http://, https:// or socks5:// proxy URL"),
    ('[fetch]\nfull_text = "sometimes"\n', "full_text"),
])
def test_bad_proxy_urls_and_modes_are_refused(write_config: WriteConfig, extra: str,
                                              why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        write_config([], extra=extra)


def test_an_unknown_kind_is_refused(write_config: WriteConfig) -> None:
    config = write_config([("A", "https://e.org/a.xml")])
    text = config.source_file.read_text("utf-8") + 'kind = "podcast"\n'  # type: ignore[union-attr]
    config.source_file.write_text(text, "utf-8")  # type: ignore[union-attr]
    from bot.config import load_config
    with pytest.raises(ConfigError, match="kind"):
        load_config(config.source_file)  # type: ignore[arg-type]
