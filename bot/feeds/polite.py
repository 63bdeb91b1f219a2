"""Politeness towards the sites whose pages are read: one request per host at a time, a delay
between two requests to one host, and robots.txt honoured.

`HostGate` is shared by every feed of the bot, so two feeds of one outlet still queue behind
each other. `RobotsRules` reads a site's robots.txt once an hour (through the same bounded
fetcher and the same gate) and answers whether a page may be fetched. As RFC 9309 says, a
robots.txt that does not exist (4xx) allows everything and one that cannot be read (5xx, no
connection) disallows everything until it is read again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from bot.models import FetchResult

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB
ROBOTS_TTL_S = 3600.0
UNREACHABLE_TTL_S = 600.0
ROBOTS_AGENT = "narrative-bot"
_MAX_HOSTS = 2000  # hosts whose rules are kept in memory (least recently used go first)

Fetch = Callable[[str], Awaitable[FetchResult]]


class HostGate:
    """At most one request per host at a time, and `delay_s` between two of them."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = max(0.0, delay_s)
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        host = host_of(url)
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            wait = self._last.get(host, -1e9) + self.delay_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[host] = time.monotonic()
                if len(self._last) > _MAX_HOSTS:
                    self._forget_idle()

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for host, at in list(self._last.items()):
            lock = self._locks.get(host)
            if now - at > self.delay_s and (lock is None or not lock.locked()):
                self._last.pop(host, None)
                self._locks.pop(host, None)


@dataclass
class _Rules:
    parser: RobotFileParser | None  # None: nothing is allowed (robots.txt unreachable)
    expires: float
    reason: str = ""


class RobotsRules:
    """Whether robots.txt lets the bot fetch a URL; each site's file read once per hour."""

    def __init__(self, user_agent: str = ROBOTS_AGENT) -> None:
        self.user_agent = user_agent
        self._rules: OrderedDict[str, _Rules] = OrderedDict()
        self._reading: dict[str, asyncio.Lock] = {}

    async def check(self, url: str, fetch: Fetch) -> str | None:
        """None when `url` may be fetched; else the reason it may not."""
        origin = origin_of(url)
        rules = await self._rules_for(origin, fetch)
        if rules.parser is None:
            return rules.reason
        if rules.parser.can_fetch(self.user_agent, url):
            return None
        return "robots.txt disallows this page"

    async def _rules_for(self, origin: str, fetch: Fetch) -> _Rules:
        lock = self._reading.setdefault(origin, asyncio.Lock())
        async with lock:  # two pages of one site: robots.txt is read once
            rules = self._rules.get(origin)
            if rules is None or rules.expires < time.monotonic():
                rules = _read(await fetch(f"{origin}/robots.txt"))
                self._rules[origin] = rules
            self._rules.move_to_end(origin)
            while len(self._rules) > _MAX_HOSTS:
                old, _ = self._rules.popitem(last=False)
                self._reading.pop(old, None)
            return rules


def _read(result: FetchResult) -> _Rules:
    now = time.monotonic()
    if result.ok and result.body is not None:
        parser = RobotFileParser()
        parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
        return _Rules(parser, now + ROBOTS_TTL_S)
    if result.status is not None and 400 <= result.status < 500:
        parser = RobotFileParser()
        parser.parse([])  # no robots.txt: everything is allowed
        return _Rules(parser, now + ROBOTS_TTL_S)
    return _Rules(None, now + UNREACHABLE_TTL_S,
                  f"robots.txt could not be read ({result.error or 'no body'})")


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"
