"""Tests for bot.storage.store.Store on both backends (a real SQLite file and a real
PostgreSQL database, through `state_location`): feeds, articles, outbox, restarts, stories,
meta. The tests named `sqlite_` are about SQLite itself (WAL, the private in-memory copy)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import time_machine
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.models import Alert, Article, Evidence, HttpCacheState, Match, Passage
from bot.storage.database import Database, Location, run
from bot.storage.figures import NoState, read_figures
from bot.storage.pages import PAGE_TEXT_CHARS, PAGE_TTL
from bot.storage.store import (
    SCHEMA_VERSION,
    Copy,
    Delivery,
    PostDraft,
    SourceCount,
    Store,
    StoredAlert,
    StoredFeed,
    Story,
    VotedArticle,
)

PUBLISHED = datetime(2020, 4, 14, 8, 30, tzinfo=UTC)


def _article(key: str = "a1", published: datetime | None = PUBLISHED) -> Article:
    return Article(key=key, source="Sohu", url=f"https://example.org/{key}",
                   title=f"Title {key}", text="Body text.", published=published)


def _match(narrative: str, score: float, passage: str = "a passage", index: int = 0) -> Match:
    return Match(narrative_id=narrative, narrative_title=f"Narrative {narrative}", score=score,
                 threshold=0.6, passage=Passage(index, passage), statement=f"claim {narrative}")


def _rows(location: Location, sql: str) -> list[tuple[object, ...]]:
    """Read through a connection of its own, as another process would."""
    other = Database(location)
    try:
        with other.transaction() as db:
            return [tuple(r) for r in run(db, sql)]
    finally:
        other.close()


def _fail_outbox_inserts(location: Location) -> None:
    """A trigger that makes every insert into the outbox fail with 'outbox is down'."""
    other = Database(location)
    try:
        with other.transaction() as db:
            if other.dialect == "sqlite":
                db.exec_driver_sql("CREATE TRIGGER no_outbox BEFORE INSERT ON outbox "
                                   "BEGIN SELECT RAISE(ABORT, 'outbox is down'); END;")
            else:
                db.exec_driver_sql("CREATE FUNCTION no_outbox() RETURNS trigger AS $$ BEGIN "
                                   "RAISE EXCEPTION 'outbox is down'; END $$ LANGUAGE plpgsql")
                db.exec_driver_sql("CREATE TRIGGER no_outbox BEFORE INSERT ON outbox "
                                   "FOR EACH ROW EXECUTE FUNCTION no_outbox()")
    finally:
        other.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file, for the tests about SQLite itself."""
    return tmp_path / "state" / "bot.sqlite3"


@pytest.fixture
def location(state_location: Location) -> Location:
    """The state, on each backend in turn."""
    return state_location


@pytest.fixture
def store(location: Location) -> Iterator[Store]:
    s = Store(location)
    yield s
    s.close()


def _later(hours: float = 1) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


# --------------------------------------------------------------------------- database


def test_sqlite_state_is_in_wal_mode(db_path: Path) -> None:
    Store(db_path).close()
    assert db_path.is_file()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    finally:
        db.close()


def test_schema_and_meta(store: Store) -> None:
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2" and store.get_meta("missing") is None


# --------------------------------------------------------------------------- feeds


def test_feed_health_creates_row(store: Store, location: Location) -> None:
    health = store.feed_health("news", "https://example.org/rss")
    assert (health.name, health.url) == ("news", "https://example.org/rss")
    assert health.cache == HttpCacheState()
    assert health.consecutive_errors == 0 and health.articles_seen == 0
    assert health.last_poll_at is None and health.retry_at is None
    assert _rows(location, "SELECT name, url FROM feeds") == [("news", "https://example.org/rss")]


def test_record_feed_ok_and_error(store: Store) -> None:
    url = "https://example.org/rss"
    store.feed_health("news", url)
    retry = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert store.record_feed_error("news", "HTTP 503", retry) == 1
    assert store.record_feed_error("news", "timeout", retry + timedelta(minutes=5)) == 2
    health = store.feed_health("news", url)
    assert health.consecutive_errors == 2 and health.last_error == "timeout"
    assert health.retry_at == retry + timedelta(minutes=5)
    assert health.last_poll_at is not None and health.last_ok_at is None

    store.record_feed_ok("news", HttpCacheState(etag='"abc"', last_modified="Tue, 14 Apr 2020"),
                         new_articles=3)
    store.record_feed_ok("news", HttpCacheState(etag='"def"'), new_articles=2)
    health = store.feed_health("news", url)
    assert health.cache == HttpCacheState(etag='"def"', last_modified=None)
    assert health.consecutive_errors == 0 and health.last_error is None and health.retry_at is None
    assert health.articles_seen == 5 and health.last_ok_at is not None
    assert [h.name for h in store.all_feed_health()] == ["news"]


def test_changed_url_resets_validators(store: Store) -> None:
    store.feed_health("news", "https://old.example/rss")
    store.record_feed_ok("news", HttpCacheState(etag='"x"', last_modified="yesterday"), 4)
    assert store.feed_health("news", "https://old.example/rss").cache.etag == '"x"'
    health = store.feed_health("news", "https://new.example/rss")
    assert health.url == "https://new.example/rss" and health.cache == HttpCacheState()
    assert health.articles_seen == 4
    assert len(store.all_feed_health()) == 1


def test_record_feed_error_unknown_feed(store: Store) -> None:
    assert store.record_feed_error("ghost", "boom", None) == 0
    assert store.all_feed_health() == []


# --------------------------------------------------------------------------- articles


def test_unseen_filters_stored_articles(store: Store) -> None:
    a, b, c = _article("a"), _article("b"), _article("c")
    assert store.unseen([]) == []
    assert store.unseen([a, b, c]) == [a, b, c]
    store.record_article(b, 2, [], ["chat"])
    assert store.unseen([a, b, c]) == [a, c]


def test_record_article_stores_matches_and_outbox(store: Store, location: Location) -> None:
    matches = [_match("kz", 0.71, "Kazakhstan wants to return", 2), _match("pamirs", 0.9)]
    ids = store.record_article(_article("a1"), 5, matches, ["@chan", "-100123"])
    assert len(ids) == 2 and len(set(ids)) == 2
    assert _rows(location, "SELECT key, source, title, passages FROM articles") == [
        ("a1", "Sohu", "Title a1", 5)]
    assert _rows(location, "SELECT article_key, narrative_id, score, passage_index, evidence, "
                          "statement FROM matches ORDER BY narrative_id") == [
        ("a1", "kz", 0.71, 2, "Kazakhstan wants to return", "claim kz"),
        ("a1", "pamirs", 0.9, 0, "a passage", "claim pamirs")]
    assert _rows(location, "SELECT id, chat_id, narratives, status, attempts FROM outbox "
                          "ORDER BY id") == [
        (ids[0], "@chan", '["kz", "pamirs"]', "pending", 0),
        (ids[1], "-100123", '["kz", "pamirs"]', "pending", 0)]


def test_record_article_twice_adds_nothing(store: Store) -> None:
    assert store.record_article(_article(), 1, [_match("kz", 0.8)], ["c1"]) != []
    before = store.counts()
    assert store.record_article(_article(), 1, [_match("kz", 0.8), _match("kg", 0.9)],
                                ["c1", "c2"]) == []
    assert store.counts() == before


def test_no_matches_no_alerts_but_seen(store: Store) -> None:
    assert store.record_article(_article(), 3, [], ["c1", "c2"]) == []
    assert store.unseen([_article()]) == []
    assert store.counts() == {"articles": 1, "matches": 0, "alerts_pending": 0,
                              "alerts_sending": 0, "alerts_interrupted": 0,
                              "alerts_sent": 0, "alerts_failed": 0}


def test_record_article_rolls_back_on_constraint_failure(store: Store,
                                                         location: Location) -> None:
    with pytest.raises(IntegrityError):
        store.record_article(_article(), 1, [_match("kz", 0.8)], ["same", "same"])
    assert store.unseen([_article()]) == [_article()]
    assert _rows(location, "SELECT COUNT(*) FROM articles") == [(0,)]
    assert _rows(location, "SELECT COUNT(*) FROM matches") == [(0,)]
    assert _rows(location, "SELECT COUNT(*) FROM outbox") == [(0,)]
    # processed again, it is stored whole
    assert len(store.record_article(_article(), 1, [_match("kz", 0.8)], ["same"])) == 1


def test_record_article_rolls_back_when_outbox_insert_fails(store: Store,
                                                            location: Location) -> None:
    # a trigger makes the outbox insert fail after the article and its matches went in
    _fail_outbox_inserts(location)
    with pytest.raises(DBAPIError, match="outbox is down"):
        store.record_article(_article(), 1, [_match("kz", 0.8), _match("kg", 0.7)], ["c1"])
    assert _rows(location, "SELECT COUNT(*) FROM articles") == [(0,)]
    assert _rows(location, "SELECT COUNT(*) FROM matches") == [(0,)]
    assert store.unseen([_article()]) == [_article()]
    # the store is still usable afterwards (no transaction left open)
    store.set_meta("after", "ok")
    assert _rows(location, "SELECT value FROM meta WHERE key = 'after'") == [("ok",)]


# --------------------------------------------------------------------------- outbox


def test_pending_alerts_carry_evidence(store: Store) -> None:
    store.record_article(_article("a1"), 4, [_match("kz", 0.7, "kz passage"),
                                             _match("kg", 0.85, "kg passage")], ["c1"])
    store.record_article(_article("a2", published=None), 1, [_match("pamirs", 0.66)], ["c1"])
    alerts = store.pending_alerts()
    assert [a.article_title for a in alerts] == ["Title a1", "Title a2"]
    assert alerts[0] == Alert(
        id=alerts[0].id, chat_id="c1", source="Sohu", article_title="Title a1",
        article_url="https://example.org/a1", published=PUBLISHED, attempts=0,
        evidence=(Evidence("kg", "Narrative kg", 0.85, "kg passage"),
                  Evidence("kz", "Narrative kz", 0.7, "kz passage")))
    assert alerts[1].published is None
    assert [e.narrative_id for e in alerts[1].evidence] == ["pamirs"]
    assert alerts[0].id < alerts[1].id
    assert [a.id for a in store.pending_alerts(limit=1)] == [alerts[0].id]


def test_mark_retry_hides_until_not_before(store: Store) -> None:
    (first,) = store.record_article(_article("a1"), 1, [_match("kz", 0.8)], ["c1"])
    (second,) = store.record_article(_article("a2"), 1, [_match("kz", 0.8)], ["c1"])
    store.mark_retry(first, "429 Too Many Requests", timedelta(hours=1))
    assert [a.id for a in store.pending_alerts()] == [second]
    assert [a.id for a in store.pending_alerts(now=_later(0.5))] == [second]
    later = store.pending_alerts(now=_later(2))
    assert [a.id for a in later] == [first, second]
    assert later[0].attempts == 1 and later[1].attempts == 0
    store.mark_retry(first, "again", timedelta(0))
    assert [(a.id, a.attempts) for a in store.pending_alerts()] == [(first, 2), (second, 0)]


def test_mark_sent_and_failed(store: Store, location: Location) -> None:
    sent, failed, kept = store.record_article(_article(), 1, [_match("kz", 0.8)],
                                              ["c1", "c2", "c3"])
    store.mark_retry(sent, "flaky", timedelta(0))
    store.mark_sent(sent, message_id=777)
    store.mark_failed(failed, "403 Forbidden")
    assert [a.id for a in store.pending_alerts(now=_later())] == [kept]
    assert _rows(location, "SELECT id, status, attempts, message_id, last_error FROM outbox "
                          "ORDER BY id") == [
        (sent, "sent", 2, 777, None),
        (failed, "failed", 1, None, "403 Forbidden"),
        (kept, "pending", 0, None, None)]
    assert store.counts() == {"articles": 1, "matches": 1, "alerts_pending": 1,
                              "alerts_sending": 0, "alerts_interrupted": 0,
                              "alerts_sent": 1, "alerts_failed": 1}


def test_survives_restart(location: Location) -> None:
    first = Store(location)
    ids = first.record_article(_article("a1"), 1, [_match("kz", 0.8)], ["c1"])
    first.record_article(_article("a2"), 1, [], ["c1"])
    first.feed_health("news", "https://example.org/rss")
    first.record_feed_ok("news", HttpCacheState(etag='"e"'), 2)
    before = first.pending_alerts()
    first.close()

    second = Store(location)
    try:
        assert second.pending_alerts() == before and [a.id for a in before] == ids
        assert second.unseen([_article("a1"), _article("a2"), _article("a3")]) == [_article("a3")]
        assert second.feed_health("news", "https://example.org/rss").cache.etag == '"e"'
        assert second.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        second.close()


def test_move_chat(store: Store) -> None:
    old_sent, _ = store.record_article(_article("a1"), 1, [_match("kz", 0.8)], ["-100", "@other"])
    store.record_article(_article("a2"), 1, [_match("kz", 0.8)], ["-100"])
    store.mark_sent(old_sent, 1)
    store.move_chat("-100", "-1001234567890")
    chats = [(a.article_title, a.chat_id) for a in store.pending_alerts()]
    assert chats == [("Title a1", "@other"), ("Title a2", "-1001234567890")]


# --------------------------------------------------------------------------- in-memory copy


def test_sqlite_in_memory_copy_never_writes_the_file(db_path: Path) -> None:
    store = Store(db_path)
    store.record_article(_article("a1"), 1, [_match("kz", 0.8)], ["c1"])
    store.feed_health("news", "https://example.org/rss")
    copy = Store.in_memory_copy(db_path)
    try:
        assert copy.unseen([_article("a1")]) == []
        assert [a.article_title for a in copy.pending_alerts()] == ["Title a1"]
        copy.record_article(_article("a2"), 1, [_match("kz", 0.8)], ["c1"])
        copy.mark_sent(copy.pending_alerts()[0].id, 5)
        copy.record_feed_error("news", "boom", None)
        copy.set_meta("dry", "run")
        assert copy.counts()["articles"] == 2
    finally:
        copy.close()
    assert store.counts() == {"articles": 1, "matches": 1, "alerts_pending": 1,
                              "alerts_sending": 0, "alerts_interrupted": 0,
                              "alerts_sent": 0, "alerts_failed": 0}
    assert _rows(db_path, "SELECT COUNT(*) FROM articles") == [(1,)]
    assert store.feed_health("news", "https://example.org/rss").consecutive_errors == 0
    assert store.get_meta("dry") is None
    store.close()


def test_sqlite_in_memory_copy_after_close_and_of_missing_file(tmp_path: Path,
                                                               db_path: Path) -> None:
    first = Store(db_path)
    first.record_article(_article(), 1, [_match("kz", 0.8)], ["c1"])
    first.close()
    copy = Store.in_memory_copy(db_path)
    assert copy.counts()["alerts_pending"] == 1
    copy.close()
    missing = tmp_path / "nothing" / "state.sqlite3"
    empty = Store.in_memory_copy(missing)
    assert empty.counts()["articles"] == 0
    empty.close()
    assert not missing.exists()


def test_counts(store: Store) -> None:
    assert store.counts() == {"articles": 0, "matches": 0, "alerts_pending": 0,
                              "alerts_sending": 0, "alerts_interrupted": 0,
                              "alerts_sent": 0, "alerts_failed": 0}
    store.record_article(_article("a1"), 1, [_match("kz", 0.8), _match("kg", 0.7)], ["c1", "c2"])
    store.record_article(_article("a2"), 1, [_match("kz", 0.9)], ["c1"])
    store.record_article(_article("a3"), 1, [], ["c1"])
    first = store.pending_alerts()[0].id
    store.mark_failed(first, "gone")
    assert store.counts() == {"articles": 3, "matches": 3, "alerts_pending": 2,
                              "alerts_sending": 0, "alerts_interrupted": 0,
                              "alerts_sent": 0, "alerts_failed": 1}


def _story(rows: int = 2) -> Story:
    return Story(("kz",), np.eye(rows, 4, dtype=np.float32), datetime.now(UTC))


def test_a_syndicated_copy_is_queued_under_its_origin(store: Store) -> None:
    store.record_article(_article("a1"), 2, [_match("kz", 0.8)], ["@ch"], story=_story())
    [copy_id] = store.record_article(_article("a2"), 2, [_match("kz", 0.8)], ["@ch"],
                                     origin_key="a1", story=_story())
    [origin, copy] = store.pending_alerts()
    assert origin.origin_key is None and copy.id == copy_id and copy.origin_key == "a1"
    assert store.origin_of("a2") == "a1" and store.origin_of("a1") is None
    assert store.copies_of("a1") == [Copy("a2", "Sohu", "Title a2", "https://example.org/a2")]
    assert store.origin_delivery("a1", "@ch") == Delivery("pending", None)
    store.mark_sending(origin.id)
    store.mark_sent(origin.id, 77)
    assert store.origin_delivery("a1", "@ch") == Delivery("sent", 77)
    assert store.origin_delivery("a1", "@other") is None


def test_story_origins_are_the_uncopied_stories_of_a_narrative_since_then(store: Store) -> None:
    then = datetime.now(UTC)
    store.record_article(_article("a1"), 2, [_match("kz", 0.8)], [], story=_story(3))
    store.record_article(_article("a2"), 2, [_match("kz", 0.8)], [], origin_key="a1",
                         story=_story())
    [origin] = store.story_origins(then - timedelta(minutes=1), ["kg", "kz"])
    assert origin.article_key == "a1" and origin.vectors.dtype == np.float32
    assert np.array_equal(origin.vectors, np.eye(3, 4))
    assert store.story_origins(then - timedelta(minutes=1), ["kg"]) == []
    assert store.story_origins(then + timedelta(minutes=1), ["kz"]) == []


def test_a_story_that_cannot_be_written_rolls_the_article_back(store: Store) -> None:
    flat = Story(("kz",), np.zeros(4, dtype=np.float32), datetime.now(UTC))  # no rows × dim
    with pytest.raises(IndexError):
        store.record_article(_article("a1"), 1, [_match("kz", 0.8)], ["@ch"], story=flat)
    assert store.unseen([_article("a1")]) == [_article("a1")]
    assert store.pending_alerts() == []


# --------------------------------------------------------------------------- records


def test_an_alert_by_id_with_its_article(store: Store) -> None:
    [alert_id] = store.record_article(_article("a1"), 1, [_match("kz", 0.8)], ["c1"])
    store.mark_sent(alert_id, 5)  # any status
    found = store.alert(alert_id)
    assert isinstance(found, StoredAlert) and found.article_key == "a1"
    assert found.alert.id == alert_id and found.alert.evidence[0].narrative_id == "kz"
    assert store.alert(alert_id + 1) is None


def test_source_counts_and_articles_since(store: Store) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    store.record_article(_article("a1"), 1, [_match("kz", 0.8), _match("kg", 0.7)], [])
    store.record_article(_article("a2"), 1, [], [])
    # a1 has two matches: still one article seen
    assert store.source_counts() == {"Sohu": SourceCount(seen=2, matched=1)}
    stored = store.articles_since(before)
    assert [s.article.key for s in stored] == ["a1", "a2"]
    assert stored[0].article.text == "Body text." and stored[0].seen_at >= before
    assert store.articles_since(before + timedelta(hours=1)) == []


def test_voted_articles_sum_the_votes_per_article_and_narrative(store: Store) -> None:
    store.record_article(_article("a1"), 1, [_match("kz", 0.8)], [])
    with store.transaction() as db:  # as bot/storage/audience.py records votes
        db.execute(text("INSERT INTO feedback VALUES ('a1', 'kz', :user, :vote, NULL, 'now')"),
                   [{"user": 1, "vote": "relevant"}, {"user": 2, "vote": "wrong"},
                    {"user": 3, "vote": "wrong"}])
    assert store.voted_articles() == [
        VotedArticle("a1", "kz", "Title a1", "Body text.", relevant=1, wrong=2)]


def test_the_button_key_is_made_once_and_kept(location: Location) -> None:
    first = Store(location)
    key = first.button_key()
    assert len(key) == 32 and first.button_key() == key
    first.close()
    second = Store(location)
    assert second.button_key() == key
    second.close()


# --------------------------------------------------------------------------- feeds' troubles


def test_a_failing_feed_is_paused_once_and_its_admins_told(store: Store) -> None:
    store.feed_health("news", "https://example.org/rss")
    assert store.pause_feed("news", "news is paused", ["42", "43"])
    assert not store.pause_feed("news", "news is paused", ["42", "43"])  # told once
    assert [(n.chat_id, n.text) for n in store.pending_notices()] == [
        ("42", "news is paused"), ("43", "news is paused")]
    assert store.feed_health("news", "https://example.org/rss").paused_at is not None
    assert store.record_feed_ok("news", HttpCacheState(), body_hash="h1")  # it recovered
    assert not store.record_feed_ok("news", HttpCacheState())
    health = store.feed_health("news", "https://example.org/rss")
    assert health.paused_at is None and health.body_hash == "h1"  # no hash: the last one kept


def test_a_page_error_is_kept_beside_a_healthy_feed(store: Store) -> None:
    store.feed_health("news", "https://example.org/rss")
    store.record_page_error("news", "HTTP 404")
    health = store.feed_health("news", "https://example.org/rss")
    assert health.page_error == "HTTP 404" and health.page_error_at is not None
    assert health.last_error is None and health.consecutive_errors == 0


# --------------------------------------------------------------------------- records


def test_match_records_by_when_matched_or_when_counted(store: Store) -> None:
    store.record_article(_article("a1"), 1, [_match("kz", 0.8), _match("kg", 0.7)], [])
    store.record_article(_article("a2", published=None), 1, [_match("kz", 0.9)], [])
    start = datetime.now(UTC) - timedelta(minutes=1)
    records = store.match_records(start)
    assert [(r.article_key, r.narrative_id) for r in records] == [
        ("a1", "kz"), ("a1", "kg"), ("a2", "kz")]
    first = records[0]
    assert (first.score, first.threshold, first.source, first.evidence) == (
        0.8, 0.6, "Sohu", "a passage")
    assert first.published == PUBLISHED and first.counted_at == PUBLISHED  # published, earlier
    assert records[2].published is None and records[2].counted_at >= start  # undated: seen
    assert [r.article_key for r in store.match_records(start, narrative_ids=["kg"])] == ["a1"]
    assert store.match_records(start, narrative_ids=[]) == []
    # by the moment counted: a1 in 2020, a2 now
    counted = store.match_records(PUBLISHED, PUBLISHED + timedelta(hours=1), by="counted")
    assert [r.article_key for r in counted] == ["a1", "a1"]
    assert store.match_records(start, by="counted")[0].article_key == "a2"
    assert store.match_counts(start) == {"kz": 2, "kg": 1}
    assert store.match_counts(start + timedelta(hours=1)) == {}


def test_narrative_titles_are_the_latest_ones(store: Store) -> None:
    store.record_article(_article("a1"), 1, [_match("kz", 0.8)], [])
    renamed = Match(narrative_id="kz", narrative_title="Renamed", score=0.8, threshold=0.6,
                    passage=Passage(0, "p"), statement="s")
    store.record_article(_article("a2"), 1, [renamed, _match("kg", 0.7)], [])
    assert store.narrative_titles() == {"kz": "Renamed", "kg": "Narrative kg"}


def test_story_sources_are_the_origins_and_its_copies(store: Store) -> None:
    store.record_article(_article("a1"), 1, [_match("kz", 0.8)], [], story=_story())
    elsewhere = Article(key="b1", source="RIA", url="https://ria.example/b1", title="T",
                        text="Other text.", published=PUBLISHED)
    store.record_article(elsewhere, 1, [_match("kz", 0.8)], [], origin_key="a1",
                         story=_story())
    assert store.story_sources("a1") == {"Sohu", "RIA"}
    assert store.story_sources("nothing") == set()


def test_unseen_knows_an_article_by_its_text_or_link_from_the_same_source(store: Store) -> None:
    store.record_article(_article("a1"), 1, [], [])
    same_link = Article(key="new-guid", source="Sohu", url="https://example.org/a1",
                        title="Edited", text="Edited body.", published=PUBLISHED)
    same_text = Article(key="other", source="Sohu", url="", title="Title a1", text="Body text.")
    elsewhere = Article(key="b1", source="RIA", url="https://example.org/a1", title="T",
                        text="Body text.")
    no_link = Article(key="c1", source="RIA", url="", title="T", text="Fresh.")
    twice = Article(key="c2", source="RIA", url="", title="T", text="Fresh.")  # same batch
    assert store.unseen([same_link, same_text, elsewhere, no_link, twice]) == [
        elsewhere, no_link]


# --------------------------------------------------------------------------- spikes


def test_a_spike_is_opened_once_checked_and_calmed(store: Store) -> None:
    draft = PostDraft("spike", "spike:kz:1", ("@ch",), "<b>kz</b>", "kz")
    [post_id] = store.open_spike("kz", 4.5, 12, '{"z": 4.5}', [draft])
    assert store.open_spike("kz", 5.0, 13, "{}", [draft]) == []  # already flagged
    state = store.spike_states()["kz"]
    assert state.active and state.z == 4.5 and state.window_count == 12
    assert state.started_at is not None and state.calmed_at is None
    assert [p.id for p in store.pending_posts()] == [post_id]
    assert not store.note_spike_check("kz", 3.0, 10, calm=False)
    assert store.spike_states()["kz"].z == 3.0 and store.spike_states()["kz"].active
    assert store.note_spike_check("kz", 0.5, 2, calm=True)
    assert not store.note_spike_check("kz", 0.5, 2, calm=True)  # ended already
    calmed = store.spike_states()["kz"]
    assert not calmed.active and calmed.calmed_at is not None and calmed.window_count == 2
    draft2 = PostDraft("spike", "spike:kz:2", ("@ch",), "<b>kz</b>", "kz")
    assert len(store.open_spike("kz", 6.0, 20, "{}", [draft2])) == 1  # a new spike
    again = store.spike_states()["kz"]
    assert again.active and again.calmed_at is None and again.z == 6.0


# --------------------------------------------------------------------------- pages, sources


def test_pages_are_cached_by_url_and_old_ones_dropped(store: Store) -> None:
    url = "https://example.org/page"
    assert store.cached_page_row(url) is None
    store.cache_page_row(url, "Title", "x" * (PAGE_TEXT_CHARS + 10), PUBLISHED)
    page = store.cached_page_row(url)
    assert page is not None and page.title == "Title" and len(page.text) == PAGE_TEXT_CHARS
    assert page.published == PUBLISHED and page.fetched_at <= datetime.now(UTC)
    store.cache_page_row(url, "New title", "New text.", None)
    page = store.cached_page_row(url)
    assert page is not None and (page.title, page.text, page.published) == (
        "New title", "New text.", None)
    with time_machine.travel(datetime.now(UTC) + PAGE_TTL + timedelta(days=1)):
        store.cache_page_row("https://example.org/other", "T", "text", None)
    assert store.cached_page_row(url) is None  # older than PAGE_TTL when the other was written


def test_stored_feeds_are_kept_by_name_and_url(store: Store) -> None:
    added = datetime(2026, 11, 1, 8, tzinfo=UTC)
    feed = StoredFeed("Wire", "https://wire.example/rss", timedelta(minutes=15), kind="feed",
                      origin="opml", added_by="feeds.opml", tags=("Asia", "News"),
                      added_at=added)
    assert store.add_stored_feed(feed)
    assert not store.add_stored_feed(StoredFeed("Wire", "https://other.example/rss",
                                                timedelta(minutes=5)))  # same name
    assert not store.add_stored_feed(StoredFeed("Other", "https://wire.example/rss",
                                                timedelta(minutes=5)))  # same URL
    chat = StoredFeed("Chat", "https://chat.example/rss", timedelta(seconds=90), added_by="42")
    assert store.add_stored_feed(chat)
    [first, second] = store.stored_feeds()
    assert first == feed and second.name == "Chat" and second.interval == timedelta(seconds=90)
    assert second.tags == () and second.origin == "chat" and second.added_at is not None
    assert store.remove_stored_feed("Wire") and not store.remove_stored_feed("Wire")
    assert [f.name for f in store.stored_feeds()] == ["Chat"]


# --------------------------------------------------------------------------- figures


def test_figures_are_read_without_the_store(store: Store, location: Location) -> None:
    store.feed_health("news", "https://example.org/rss")
    store.record_feed_error("news", "HTTP 503", None)
    store.record_article(_article("a1"), 1, [_match("kz", 0.8), _match("kg", 0.7)],
                         ["c1", "c2"])
    store.mark_failed(store.pending_alerts()[0].id, "gone")
    store.queue_posts([PostDraft("digest", "digest:1", ("c1",), "<b>d</b>", "d")])
    figures = read_figures(location)
    assert figures.articles == 1 and figures.matches == {"kz": 1, "kg": 1}
    assert figures.alerts == {"pending": 1, "failed": 1} and figures.alerts_interrupted == 0
    assert figures.outbox_depth == 2 and figures.oldest_waiting_at is not None
    assert figures.feeds_failing == 1 and figures.last_cycle_at is not None


def test_figures_of_no_state(tmp_path: Path) -> None:
    with pytest.raises(NoState, match="nothing has run yet"):
        read_figures(tmp_path / "missing.sqlite3")
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(NoState, match="cannot read the state"):
        read_figures(junk)
    with pytest.raises(NoState, match=r"127\.0\.0\.1:1"):  # nobody listens there
        read_figures("postgresql://postgres@127.0.0.1:1/narrative_bot")
