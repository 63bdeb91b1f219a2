"""Routing: who gets which narrative from which source; mutes, migration, feedback (each on
SQLite and on PostgreSQL: `state_location`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from bot.storage.audience import ALL, Audience, Votes
from bot.storage.store import Store

CHANNEL = "@alerts"


@pytest.fixture
def store(state_location: Path | str) -> Iterator[Store]:
    s = Store(state_location)
    yield s
    s.close()


@pytest.fixture
def audience(store: Store) -> Audience:
    return Audience(store, CHANNEL)


def test_channel_gets_everything_subscribers_only_their_narratives(audience: Audience) -> None:
    audience.register_chat("1", "private")
    audience.register_chat("2", "private")
    audience.register_chat("3", "private")
    audience.subscribe("1", ["kz"])
    audience.subscribe("2", [ALL])
    routes = audience.routes("Feed", ["kz", "kg"])
    assert routes == {CHANNEL: ["kz", "kg"], "1": ["kz"], "2": ["kz", "kg"]}
    assert audience.routes("Feed", ["kg"]) == {CHANNEL: ["kg"], "2": ["kg"]}


def test_channel_narratives_narrow_what_the_channel_gets(store: Store) -> None:
    audience = Audience(store, CHANNEL, channel_narratives=["kg"])
    assert audience.routes("Feed", ["kz"]) == {}
    assert audience.routes("Feed", ["kz", "kg"]) == {CHANNEL: ["kg"]}


def test_unsubscribe_some_or_all(audience: Audience) -> None:
    audience.register_chat("1", "private")
    audience.subscribe("1", ["kz", "kg", "pamirs"])
    assert audience.unsubscribe("1", ["kg"]) == 1
    assert audience.subscriptions("1") == {"kz", "pamirs"}
    assert audience.unsubscribe("1") == 2
    assert audience.routes("Feed", ["kz"]) == {CHANNEL: ["kz"]}


def test_mute_is_per_chat_case_insensitive_and_expires(audience: Audience) -> None:
    audience.register_chat("1", "private")
    audience.subscribe("1", [ALL])
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    audience.mute("1", "Noisy Outlet", now + timedelta(hours=12), by=1)
    audience.mute(CHANNEL, "Other", None, by=42)
    with time_machine.travel(now, tick=False):
        assert audience.routes("noisy outlet", ["kz"]) == {CHANNEL: ["kz"]}
        assert audience.routes("Other", ["kz"]) == {"1": ["kz"]}
    with time_machine.travel(now + timedelta(hours=13), tick=False):
        assert audience.routes("Noisy Outlet", ["kz"]) == {CHANNEL: ["kz"], "1": ["kz"]}
        assert [m.source for m in audience.mutes("1")] == []
        assert [m.source for m in audience.mutes(CHANNEL)] == ["Other"]  # no expiry
    assert audience.unmute(CHANNEL, "Other") and not audience.unmute(CHANNEL, "Other")


def test_deactivated_chat_gets_nothing_until_it_comes_back(audience: Audience) -> None:
    audience.register_chat("1", "private")
    audience.subscribe("1", ["kz"])
    audience.deactivate("1", "bot was blocked by the user")
    assert audience.routes("Feed", ["kz"]) == {CHANNEL: ["kz"]}
    assert not audience.is_active("1")
    audience.register_chat("1", "private")  # /start again
    assert audience.routes("Feed", ["kz"]) == {CHANNEL: ["kz"], "1": ["kz"]}


def test_migrated_group_keeps_its_settings(audience: Audience) -> None:
    audience.register_chat("-5", "group")
    audience.subscribe("-5", ["kz"])
    audience.mute("-5", "Feed B", None, by=1)
    audience.migrate("-5", "-1005")
    assert audience.subscriptions("-1005") == {"kz"} and audience.subscriptions("-5") == set()
    assert audience.routes("Feed", ["kz"]) == {CHANNEL: ["kz"], "-1005": ["kz"]}
    assert audience.routes("Feed B", ["kz"]) == {CHANNEL: ["kz"]}


def test_votes_count_distinct_users_and_counter_examples_are_kept(audience: Audience) -> None:
    assert audience.vote("a1", "kz", 7, "wrong") == 1
    assert audience.vote("a1", "kz", 7, "wrong") == 1  # the same user again
    assert audience.vote("a1", "kz", 8, "wrong") == 2
    assert audience.vote("a1", "kz", 8, "relevant") == 1  # changed their mind
    assert audience.feedback_counts() == {"kz": Votes(relevant=1, wrong=1)}
    assert audience.learn_counter_example("kz", "some passage", "a1")
    assert not audience.learn_counter_example("kz", "some passage", "a1")
    assert audience.learned_counter_examples() == {"kz": ["some passage"]}


def test_migration_onto_a_chat_that_has_settings_keeps_both_once(audience: Audience) -> None:
    audience.register_chat("-5", "group", title="old")
    audience.register_chat("-1005", "supergroup", title="new")
    audience.subscribe("-5", ["kz", "kg"])
    audience.subscribe("-1005", ["kg", "pamirs"])
    audience.mute("-5", "Feed B", None, by=1)
    audience.mute("-1005", "Feed B", None, by=2)
    audience.migrate("-5", "-1005")
    assert audience.subscriptions("-1005") == {"kz", "kg", "pamirs"}
    assert audience.subscriptions("-5") == set() and not audience.is_active("-5")
    assert [m.source for m in audience.mutes("-1005")] == ["Feed B"]
    assert audience.mutes("-5") == []


def test_unmute_ignores_case_and_language_is_kept(audience: Audience) -> None:
    audience.mute("1", "Noisy Outlet", None, by=1)
    assert audience.unmute("1", "noisy OUTLET") and audience.mutes("1") == []
    audience.register_chat("1", "private", language="ru")
    assert audience.language("1") == "ru" and audience.language("2") == "en"
    audience.register_chat("1", "private", title="again", language="en")  # chosen stays
    assert audience.chosen_language("1") == "ru"
    audience.set_language("1", "en")
    assert audience.chosen_language("1") == "en"


def test_narrative_chats_and_wrong_voters(audience: Audience) -> None:
    for chat in ("1", "2", "3"):
        audience.register_chat(chat, "private")
    audience.subscribe("1", ["kz"])
    audience.subscribe("2", [ALL])
    audience.subscribe("3", ["kg"])
    audience.deactivate("2", "blocked")
    assert audience.narrative_chats("kz") == [CHANNEL, "1"]
    audience.vote("a1", "kz", 7, "wrong")
    audience.vote("a1", "kz", 8, "relevant")
    audience.vote("a1", "kz", 2**40, "wrong")  # Telegram's ids outgrow 32 bits
    assert audience.wrong_voters("a1", "kz") == {7, 2**40}
