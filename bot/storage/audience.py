"""Who gets which alert: chats, subscriptions, mutes, feedback, and the routing rule.

- The channel gets every narrative (or the configured subset) from every source it has not muted.
- A private chat or group gets only the narratives it subscribed to, minus its own mutes.
- A mute hides a source from one chat until it expires; the source is still fetched, matched and
  counted.
- Narrative-level messages (spike alerts) go to the channel (if it covers the narrative) and to
  the narrative's subscribers; source mutes do not apply to them.
- Feedback is kept per article, narrative and user; enough 👎 turns the evidence passage into a
  counter-example of that narrative (learned, kept in state, used from then on).
These tables live in the same database as the rest of the state (bot/storage/migrations.py), on
either backend; every query here is written once for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.storage.database import Database, in_filter, iso, parse_time, run, utcnow

ALL = "*"


@dataclass(frozen=True)
class Mute:
    chat_id: str
    source: str
    until: datetime | None


@dataclass(frozen=True)
class Votes:
    """The 👍 and 👎 votes on one narrative's alerts."""

    relevant: int
    wrong: int


# a migrated group's rows: what, beside the chat, makes each row of these tables unique
_CHAT_KEYS = {"chats": (), "subscriptions": ("narrative_id",), "mutes": ("source",)}


class Audience:
    """Chats and their preferences, stored beside the outbox in the same database."""

    def __init__(self, store: Database, channel: str | None,
                 channel_narratives: Sequence[str] = (ALL,), language: str = "en") -> None:
        """`language`: the channel's, and any chat's that never said (`[telegram] language`)."""
        self.store = store
        self.channel = channel
        self.channel_narratives = set(channel_narratives)
        self.default_language = language

    # -- chats --------------------------------------------------------------------------

    def register_chat(self, chat_id: str, kind: str, title: str = "",
                      language: str | None = None) -> None:
        """`language`: the chat's until it chooses one (its user's Telegram language)."""
        with self.store.transaction() as db:
            run(db, "INSERT INTO chats (chat_id, kind, title, joined_at, language) "
                    "VALUES (:chat_id, :kind, :title, :at, :language) ON CONFLICT (chat_id) "
                    "DO UPDATE SET active = 1, reason = NULL, title = excluded.title, "
                    "language = COALESCE(chats.language, excluded.language)",
                {"chat_id": chat_id, "kind": kind, "title": title, "at": iso(utcnow()),
                 "language": language})

    def set_language(self, chat_id: str, language: str) -> None:
        with self.store.transaction() as db:
            run(db, "UPDATE chats SET language = :language WHERE chat_id = :chat_id",
                {"language": language, "chat_id": chat_id})

    def chosen_language(self, chat_id: str) -> str | None:
        """The language stored for the chat; None when it has none yet."""
        with self.store.reading() as db:
            language = run(db, "SELECT language FROM chats WHERE chat_id = :chat_id",
                           {"chat_id": chat_id}).scalar()
        return None if language is None else str(language)

    def language(self, chat_id: str) -> str:
        """What the bot writes to this chat in: its own, else the default."""
        return self.chosen_language(chat_id) or self.default_language

    def deactivate(self, chat_id: str, reason: str) -> None:
        """The chat blocked the bot or vanished: stop routing to it, keep its settings."""
        with self.store.transaction() as db:
            run(db, "UPDATE chats SET active = 0, reason = :reason WHERE chat_id = :chat_id",
                {"reason": reason, "chat_id": chat_id})

    def migrate(self, old: str, new: str) -> None:
        """A group became a supergroup: its settings follow it to the new id (where the new
        id already has a row, that one is kept and the old one dropped)."""
        params = {"old": old, "new": new}
        with self.store.transaction() as db:
            for table, keys in _CHAT_KEYS.items():
                same = "".join(f" AND d.{k} = {table}.{k}" for k in keys)
                run(db, f"UPDATE {table} SET chat_id = :new WHERE chat_id = :old AND NOT EXISTS "
                        f"(SELECT 1 FROM {table} d WHERE d.chat_id = :new{same})", params)
                run(db, f"DELETE FROM {table} WHERE chat_id = :old", params)
        if self.channel == old:
            self.channel = new

    def is_active(self, chat_id: str) -> bool:
        with self.store.reading() as db:
            active = run(db, "SELECT active FROM chats WHERE chat_id = :chat_id",
                         {"chat_id": chat_id}).scalar()
        return bool(active)

    # -- subscriptions ------------------------------------------------------------------

    def subscribe(self, chat_id: str, narrative_ids: Iterable[str]) -> None:
        with self.store.transaction() as db:
            for narrative_id in narrative_ids:
                run(db, "INSERT INTO subscriptions VALUES (:chat_id, :narrative_id) "
                        "ON CONFLICT (chat_id, narrative_id) DO NOTHING",
                    {"chat_id": chat_id, "narrative_id": narrative_id})

    def unsubscribe(self, chat_id: str, narrative_ids: Iterable[str] | None = None) -> int:
        """Drop some subscriptions, or all of them with None; return how many were dropped."""
        params: dict[str, Any] = {"chat_id": chat_id}
        only = "" if narrative_ids is None else in_filter(
            "narrative_id", list(dict.fromkeys(narrative_ids)), params, name="narrative")
        with self.store.transaction() as db:
            return run(db, f"DELETE FROM subscriptions WHERE chat_id = :chat_id{only}",
                       params).rowcount

    def subscriptions(self, chat_id: str) -> set[str]:
        with self.store.reading() as db:
            return set(run(db, "SELECT narrative_id FROM subscriptions WHERE chat_id = :chat_id",
                           {"chat_id": chat_id}).scalars())

    # -- mutes --------------------------------------------------------------------------

    def mute(self, chat_id: str, source: str, until: datetime | None, by: int | None) -> None:
        with self.store.transaction() as db:
            run(db, "INSERT INTO mutes VALUES (:chat_id, :source, :until, :by) "
                    "ON CONFLICT (chat_id, source) "
                    "DO UPDATE SET until = excluded.until, muted_by = excluded.muted_by",
                {"chat_id": chat_id, "source": source, "until": iso(until), "by": by})

    def unmute(self, chat_id: str, source: str) -> bool:
        """Forget the chat's mutes of `source`, in any case (as `_muted` compares them)."""
        with self.store.transaction() as db:
            stored = run(db, "SELECT source FROM mutes WHERE chat_id = :chat_id",
                         {"chat_id": chat_id}).scalars().all()
            params: dict[str, Any] = {"chat_id": chat_id}
            same = [s for s in stored if s.casefold() == source.casefold()]
            return run(db, f"DELETE FROM mutes WHERE chat_id = :chat_id"
                           f"{in_filter('source', same, params, name='source')}",
                       params).rowcount > 0

    def mutes(self, chat_id: str, now: datetime | None = None) -> list[Mute]:
        """The chat's mutes still in force (expired ones are forgotten here)."""
        now = now or utcnow()
        with self.store.reading() as db:
            rows = run(db, "SELECT source, until FROM mutes WHERE chat_id = :chat_id "
                           "ORDER BY source", {"chat_id": chat_id}).mappings().all()
        current = [Mute(chat_id, r["source"], parse_time(r["until"])) for r in rows]
        return [m for m in current if m.until is None or m.until > now]

    # -- routing ------------------------------------------------------------------------

    def routes(self, source: str, narrative_ids: Sequence[str],
               now: datetime | None = None) -> dict[str, list[str]]:
        """chat id → the matched narratives that chat should be alerted to."""
        now = now or utcnow()
        routes: dict[str, list[str]] = {}
        if self.channel and not self._muted(self.channel, source, now):
            chosen = [n for n in narrative_ids
                      if ALL in self.channel_narratives or n in self.channel_narratives]
            if chosen:
                routes[self.channel] = chosen
        with self.store.reading() as db:
            rows = run(db, "SELECT s.chat_id, s.narrative_id FROM subscriptions s JOIN chats c "
                           "ON c.chat_id = s.chat_id WHERE c.active = 1 "
                           "ORDER BY s.chat_id, s.narrative_id").mappings().all()
        wanted: dict[str, set[str]] = {}
        for row in rows:
            wanted.setdefault(row["chat_id"], set()).add(row["narrative_id"])
        for chat_id, subscribed in wanted.items():
            if chat_id == self.channel or self._muted(chat_id, source, now):
                continue
            chosen = [n for n in narrative_ids if ALL in subscribed or n in subscribed]
            if chosen:
                routes[chat_id] = chosen
        return routes

    def narrative_chats(self, narrative_id: str) -> list[str]:
        """Who gets a narrative-level message (a spike alert): the channel when it covers the
        narrative, and every active chat subscribed to it. Source mutes do not apply: a spike
        is about the narrative across all sources, not about one outlet."""
        chats: list[str] = []
        if self.channel and (ALL in self.channel_narratives
                             or narrative_id in self.channel_narratives):
            chats.append(self.channel)
        with self.store.reading() as db:
            subscribed = run(db, "SELECT DISTINCT s.chat_id FROM subscriptions s JOIN chats c "
                                 "ON c.chat_id = s.chat_id WHERE c.active = 1 AND "
                                 "s.narrative_id IN (:narrative_id, :all) ORDER BY s.chat_id",
                             {"narrative_id": narrative_id, "all": ALL}).scalars().all()
        chats += [c for c in subscribed if c != self.channel]
        return chats

    def _muted(self, chat_id: str, source: str, now: datetime) -> bool:
        return any(m.source.casefold() == source.casefold() for m in self.mutes(chat_id, now))

    # -- feedback -----------------------------------------------------------------------

    def vote(self, article_key: str, narrative_id: str, user_id: int, vote: str,
             outbox_id: int | None = None) -> int:
        """Store (or change) a user's vote; return how many distinct users said 'wrong'."""
        about = {"article_key": article_key, "narrative_id": narrative_id}
        with self.store.transaction() as db:
            run(db, "INSERT INTO feedback VALUES (:article_key, :narrative_id, :user_id, :vote, "
                    ":outbox_id, :at) ON CONFLICT (article_key, narrative_id, user_id) "
                    "DO UPDATE SET vote = excluded.vote",
                {**about, "user_id": user_id, "vote": vote, "outbox_id": outbox_id,
                 "at": iso(utcnow())})
            wrong: int = run(db, "SELECT COUNT(*) FROM feedback WHERE article_key = "
                                 ":article_key AND narrative_id = :narrative_id AND "
                                 "vote = 'wrong'", about).scalar_one()
            return wrong

    def wrong_voters(self, article_key: str, narrative_id: str) -> set[int]:
        """Who voted 👎 on that article for that narrative."""
        with self.store.reading() as db:
            return set(run(db, "SELECT user_id FROM feedback WHERE article_key = :article_key "
                               "AND narrative_id = :narrative_id AND vote = 'wrong'",
                           {"article_key": article_key, "narrative_id": narrative_id}).scalars())

    def learn_counter_example(self, narrative_id: str, text: str, article_key: str) -> bool:
        """Keep `text` as a counter-example of the narrative; False if it already was one."""
        with self.store.transaction() as db:
            return run(db, "INSERT INTO learned_counters VALUES (:narrative_id, :text, "
                           ":article_key, :at) ON CONFLICT (narrative_id, text) DO NOTHING",
                       {"narrative_id": narrative_id, "text": text, "article_key": article_key,
                        "at": iso(utcnow())}).rowcount > 0

    def learned_counter_examples(self) -> dict[str, list[str]]:
        learned: dict[str, list[str]] = {}
        with self.store.reading() as db:
            rows = run(db, "SELECT narrative_id, text FROM learned_counters "
                           "ORDER BY created_at, narrative_id, text").mappings().all()
        for row in rows:
            learned.setdefault(row["narrative_id"], []).append(row["text"])
        return learned

    def feedback_counts(self) -> Mapping[str, Votes]:
        """narrative id → its votes."""
        with self.store.reading() as db:
            rows = run(db, "SELECT narrative_id, "
                           "SUM(CASE WHEN vote = 'relevant' THEN 1 ELSE 0 END) AS relevant, "
                           "SUM(CASE WHEN vote = 'wrong' THEN 1 ELSE 0 END) AS wrong "
                           "FROM feedback GROUP BY narrative_id").mappings().all()
        return {r["narrative_id"]: Votes(int(r["relevant"]), int(r["wrong"])) for r in rows}
