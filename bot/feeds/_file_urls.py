"""file:// feeds (the offline demo): a local file read under the same size cap as HTTP bodies.

Whether file:// is allowed at all is the caller's decision (`FetchLimits.allow_file_urls`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from bot.feeds._fetch_errors import Failure, too_large
from bot.models import FetchResult

_FILE_CONTENT_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".xml": "application/xml",
    ".json": "application/json",
}


async def fetch_file(url: str, max_bytes: int) -> FetchResult:
    """The file a file:// URL names, with a Content-Type guessed from its suffix."""
    path = _file_path(url)
    body = await asyncio.to_thread(_read_file, path, max_bytes)
    content_type = _FILE_CONTENT_TYPES.get(path.suffix.lower())
    headers = {"content-type": content_type} if content_type else {}
    return FetchResult(url=url, body=body, headers=headers)


def _file_path(url: str) -> Path:
    parts = urlsplit(url.strip())
    if parts.netloc not in ("", "localhost"):
        raise Failure(f"file:// URL on another host ({parts.netloc}) is not supported")
    if not parts.path:
        raise Failure("invalid URL (file:// without a path)")
    return Path(url2pathname(parts.path))


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise Failure(f"file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise Failure(f"not a file: {path}") from exc
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise Failure(too_large(max_bytes))
    return data
