"""Feed sources: fetching, parsing, article text and language."""

from bot.feeds.fetch import FetchLimits, fetch_feed, make_client
from bot.feeds.language import UNDETERMINED, guess_language, normalize_language
from bot.feeds.parse import parse_feed
from bot.feeds.text import make_passages, split_sentences

__all__ = [
    "UNDETERMINED",
    "FetchLimits",
    "fetch_feed",
    "guess_language",
    "make_client",
    "make_passages",
    "normalize_language",
    "parse_feed",
    "split_sentences",
]
