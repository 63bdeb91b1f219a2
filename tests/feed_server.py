"""A local feed server for tests: aiohttp on 127.0.0.1, port 0, in the test's event loop.

    async with FeedServer() as server:
        server.route("/feed.xml", RSS_BYTES, etag='"v1"')
        result = await fetch_feed(client, server.url("/feed.xml"), HttpCacheState(), limits)
        assert server.hits("/feed.xml") == 1
        assert server.requests("/feed.xml")[0]["user-agent"].startswith("narrative-bot")

`route` serves fixed bytes and answers 304 to a matching conditional request (If-None-Match
against `etag`, else If-Modified-Since equal to `last_modified`); `set_handler` installs any
aiohttp handler for misbehaving servers (redirect loops, dripping, hand-made gzip). Every request
is counted and its headers kept (keys lower-cased) per path, query strings ignored. Unknown
paths get 404.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from types import TracebackType

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"


class FeedServer:
    """An HTTP server on 127.0.0.1 with routes set by the test; records what it received."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._handlers: dict[str, Handler] = {}
        self._requests: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def url(self, path: str = "/") -> str:
        """The absolute http:// URL of `path` on this server."""
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    def route(
        self,
        path: str,
        body: bytes,
        content_type: str = RSS_CONTENT_TYPE,
        status: int = 200,
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        """Serve `body` at `path`; answer 304 when the request's validators match."""
        validators = {"ETag": etag, "Last-Modified": last_modified}
        reply_headers = {"Content-Type": content_type, **(headers or {})}
        reply_headers.update({key: value for key, value in validators.items() if value})

        async def handler(request: web.Request) -> web.StreamResponse:
            if _not_modified(request, etag, last_modified):
                kept = {key: value for key, value in validators.items() if value}
                return web.Response(status=304, headers=kept)
            return web.Response(body=body, status=status, headers=reply_headers)

        self.set_handler(path, handler)

    def set_handler(self, path: str, handler: Handler) -> None:
        """Answer requests for `path` with `handler` (an aiohttp request handler)."""
        self._handlers[path] = handler

    def hits(self, path: str) -> int:
        """How many requests arrived for `path` (routed or not)."""
        return len(self._requests.get(path, []))

    def requests(self, path: str) -> list[dict[str, str]]:
        """The headers of each request received for `path`, oldest first, keys lower-cased."""
        return list(self._requests.get(path, []))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        headers = {key.lower(): value for key, value in request.headers.items()}
        self._requests[request.path].append(headers)
        handler = self._handlers.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)


def _not_modified(request: web.Request, etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110: If-None-Match, when sent, decides; otherwise If-Modified-Since (exact match)."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        return etag is not None and _etag_matches(if_none_match, etag)
    if_modified_since = request.headers.get("If-Modified-Since")
    return last_modified is not None and if_modified_since == last_modified


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires: W/"x" matches "x"."""
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))
