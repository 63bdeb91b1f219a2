"""A public Telegram channel's web preview page (t.me/s/<channel>), built as Telegram builds
it: the channel header, then posts oldest first, each a `tgme_widget_message` with its
data-post id, text, date and views. Texts are the tests' own."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Post:
    number: int
    text: str  # lines separated by "\n" (rendered as <br/>)
    when: datetime
    service: bool = False
    reply_to: str = ""  # the quoted text of the post it answers


def _post(channel: str, post: Post) -> str:
    body = "<br/>".join(html.escape(line) for line in post.text.split("\n"))
    reply = ("" if not post.reply_to else
             f'<a class="tgme_widget_message_reply" href="https://t.me/{channel}/1">'
             f'<div class="tgme_widget_message_author accent_color"><span class="'
             f'tgme_widget_message_author_name">Channel</span></div><div class="'
             f'tgme_widget_message_text js-message_reply_text" dir="auto">'
             f"{html.escape(post.reply_to)}</div></a>")
    kind = " service_message" if post.service else ""
    return f"""<div class="tgme_widget_message_wrap js-widget_message_wrap">
<div class="tgme_widget_message text_not_supported_wrap js-widget_message{kind}"
 data-post="{channel}/{post.number}" data-view="eyJjIjotMTAwMH0">
<div class="tgme_widget_message_user"><a href="https://t.me/{channel}"><i class="
tgme_widget_message_user_photo bgcolor2" data-content="S"></i></a></div>
<div class="tgme_widget_message_bubble">
<div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name"
 href="https://t.me/{channel}"><span dir="auto">Steppe Wire</span></a></div>
{reply}
<div class="tgme_widget_message_text js-message_text" dir="auto">{body}</div>
<div class="tgme_widget_message_footer compact js-message_footer">
<div class="tgme_widget_message_info short js-message_info">
<span class="tgme_widget_message_views">1.2K</span>
<span class="copyonclick">views</span>
<span class="tgme_widget_message_meta"><a class="tgme_widget_message_date"
 href="https://t.me/{channel}/{post.number}"><time datetime="{post.when.isoformat()}"
 class="time">{post.when:%H:%M}</time></a></span>
</div></div></div></div></div>"""


def preview_page(channel: str, posts: list[Post]) -> bytes:
    items = "\n".join(_post(channel, p) for p in sorted(posts, key=lambda p: p.number))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Steppe Wire – Telegram</title>
<meta property="og:title" content="Steppe Wire"></head>
<body class="widget_frame_base tgme_webpreview">
<header class="tgme_header"><div class="tgme_header_search">Search</div></header>
<main class="tgme_main"><section class="tgme_channel_history js-message_history">
{items}
</section>
<div class="tgme_channel_info"><div class="tgme_channel_info_header">
<div class="tgme_channel_info_header_title"><span dir="auto">Steppe Wire</span></div>
<div class="tgme_channel_info_header_username"><a href="https://t.me/{channel}">@{channel}</a>
</div></div><div class="tgme_channel_info_description">News from the steppe.</div>
<div class="tgme_channel_info_counters"><span class="counter_value">12.5K</span>
<span class="counter_type">subscribers</span></div></div>
</main></body></html>""".encode()
