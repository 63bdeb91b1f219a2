"""When an item needs its linked page, and what the article becomes once the page is read.

`full_text = "auto"` reads the page when the item's own text is short (under `SHORT_WORDS`
words; Chinese and Japanese counted by characters) or visibly cut ("…", "Read more"); "always"
reads it for every item, "never" for none. The page's text replaces the item's; the item's
title, link and date are kept (the page's fill in what the item lacks). A page that failed
leaves the article as the item had it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from bot.feeds.extract import PageText
from bot.feeds.language import UNDETERMINED, guess_language
from bot.models import Article

SHORT_WORDS = 80
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_CUT = re.compile(
    r"(?:…|\.\.\.|\[…\]|\[\.\.\.\])\s*$"
    r"|\b(?:read more|continue reading|read the full|full story|more »)"
    r"|(?:читать далее|подробнее|читать полностью|толығырақ|толук окуу|батафсил)"
    r"|(?:阅读全文|查看全文|详细内容|全文)",
    re.IGNORECASE,
)


def words(text: str) -> int:
    """Words in `text`, two CJK characters counted as one word."""
    cjk = len(_CJK.findall(text))
    return len(_CJK.sub(" ", text).split()) + cjk // 2


def needs_page(article: Article, mode: str) -> bool:
    """Whether the linked page is read for this item under `mode` (auto, always, never)."""
    if mode == "never" or not article.url:
        return False
    if mode == "always":
        return True
    text = article.text.strip()
    return words(text) < SHORT_WORDS or bool(_CUT.search(text[-200:]))


def with_page(article: Article, page: PageText) -> Article:
    """The article with the page's text (its title and date where the item had none)."""
    if page.error is not None or not page.text:
        return article
    language = article.language
    if not language or language == UNDETERMINED:
        language = guess_language(f"{article.title}\n{page.text}")
    return replace(article, text=page.text, title=article.title or page.title,
                   published=article.published or page.published, language=language)
