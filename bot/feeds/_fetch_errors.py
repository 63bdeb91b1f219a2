"""A failed fetch worded for people: the reasons `FetchResult.error` carries, without tracebacks.

`Failure` is raised by the fetch code for a reason it has already worded; `describe` words
everything else that can escape a fetch (httpx, TLS, DNS, the overall deadline).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx

_MIB = 1024 * 1024


class Failure(Exception):
    """A fetch failed for a reason already worded for people (it becomes FetchResult.error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def too_large(max_bytes: int) -> str:
    return f"body larger than {_size_text(max_bytes)}"


def _size_text(size: int) -> str:
    if size >= _MIB:
        return f"{size / _MIB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"


def describe(exc: BaseException, *, timeout_s: float, connect_timeout_s: float, host: str) -> str:
    """A short reason for people: what went wrong, without a traceback."""
    if isinstance(exc, Failure):
        return exc.reason
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {connect_timeout_s:g}s"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timed out after {timeout_s:g}s"
    if isinstance(exc, httpx.ConnectError):
        return _describe_connect_error(exc, host)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "invalid URL (only http and https)"
    if isinstance(exc, httpx.InvalidURL):
        return "invalid URL"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {_short(exc)}"
    if isinstance(exc, httpx.HTTPError):
        return f"network error: {_short(exc)}"
    return f"unexpected error: {type(exc).__name__}: {_short(exc)}"


def is_expected(exc: BaseException) -> bool:
    """False for errors that point at a bug rather than at the feed (worth a traceback)."""
    return isinstance(exc, Failure | TimeoutError | httpx.HTTPError)


def _describe_connect_error(exc: httpx.ConnectError, host: str) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed for {host}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or _short(cause)}"
    if "refused" in str(exc).lower():
        return "connection refused"
    return f"could not connect: {_short(exc)}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and members of exception groups."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
