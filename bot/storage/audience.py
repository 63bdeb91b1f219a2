"""Who gets which alert: chats, subscriptions, mutes, feedback, and the routing rule.

- The channel gets every narrative (or the configured subset) from every source it has not muted.
- A private chat or group gets only the narratives it subscribed to, minus its own mutes.
- A mute hides a source from one chat until it expires; the source is still fetched, matched and
  counted.
- Narrative-level messages (spike alerts) go to the channel (if it covers the narrative) and to
  the narrative's subscribers; source mutes do not apply to them.
- Feedback is kept per article, narrative and user; enough 👎 turns the evidence passage into a
  counter-example of that narrative (learned, kept in state, used from then on).
These tables live in the same SQLite file as the rest of the state (bot/storage/migrations.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.storage.sqlite import Database, iso, parse_time, utcnow

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
            db.execute("INSERT INTO chats (chat_id, kind, title, joined_at, language) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT(chat_id) DO UPDATE SET active = 1, "
                       "reason = NULL, title = excluded.title, "
                       "language = COALESCE(chats.language, excluded.language)",
                       (chat_id, kind, title, iso(utcnow()), language))

    def set_language(self, chat_id: str, language: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE chats SET language = ? WHERE chat_id = ?", (language, chat_id))

    def chosen_language(self, chat_id: str) -> str | None:
        """The language stored for the chat; None when it has none yet."""
        row = self.store.db.execute("SELECT language FROM chats WHERE chat_id = ?",
                                    (chat_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def language(self, chat_id: str) -> str:
        """What the bot writes to this chat in: its own, else the default."""
        return self.chosen_language(chat_id) or self.default_language

    def deactivate(self, chat_id: str, reason: str) -> None:
        """The chat blocked the bot or vanished: stop routing to it, keep its settings."""
        with self.store.transaction() as db:
            db.execute("UPDATE chats SET active = 0, reason = ? WHERE chat_id = ?",
                       (reason, chat_id))

    def migrate(self, old: str, new: str) -> None:
        """A group became a supergroup: its settings follow it to the new id."""
        with self.store.transaction() as db:
            for table in ("chats", "subscriptions", "mutes"):
                db.execute(f"UPDATE OR IGNORE {table} SET chat_id = ? WHERE chat_id = ?",
                           (new, old))
                db.execute(f"DELETE FROM {table} WHERE chat_id = ?", (old,))
        if self.channel == old:
            self.channel = new

    def is_active(self, chat_id: str) -> bool:
        row = self.store.db.execute("SELECT active FROM chats WHERE chat_id = ?",
                                    (chat_id,)).fetchone()
        return bool(row and row[0])

    # -- subscriptions ------------------------------------------------------------------

    def subscribe(self, chat_id: str, narrative_ids: Iterable[str]) -> None:
        with self.store.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)",
                           [(chat_id, n) for n in narrative_ids])

    def unsubscribe(self, chat_id: str, narrative_ids: Iterable[str] | None = None) -> int:
        """Drop some subscriptions, or all of them with None; return how many were dropped."""
        with self.store.transaction() as db:
            if narrative_ids is None:
                return db.execute("DELETE FROM subscriptions WHERE chat_id = ?",
                                  (chat_id,)).rowcount
            return sum(db.execute("DELETE FROM subscriptions WHERE chat_id = ? AND "
                                  "narrative_id = ?", (chat_id, n)).rowcount
                       for n in narrative_ids)

    def subscriptions(self, chat_id: str) -> set[str]:
        rows = self.store.db.execute("SELECT narrative_id FROM subscriptions WHERE chat_id = ?",
                                     (chat_id,))
        return {r[0] for r in rows}

    # -- mutes --------------------------------------------------------------------------

    def mute(self, chat_id: str, source: str, until: datetime | None, by: int | None) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO mutes VALUES (?, ?, ?, ?) ON CONFLICT(chat_id, source) "
                       "DO UPDATE SET until = excluded.until, muted_by = excluded.muted_by",
                       (chat_id, source, iso(until), by))

    def unmute(self, chat_id: str, source: str) -> bool:
        with self.store.transaction() as db:
            return db.execute("DELETE FROM mutes WHERE chat_id = ? AND source = ? COLLATE NOCASE",
                              (chat_id, source)).rowcount > 0

    def mutes(self, chat_id: str, now: datetime | None = None) -> list[Mute]:
        """The chat's mutes still in force (expired ones are forgotten here)."""
        now = now or utcnow()
        rows = self.store.db.execute("SELECT source, until FROM mutes WHERE chat_id = ? "
                                     "ORDER BY source", (chat_id,)).fetchall()
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
        rows = self.store.db.execute(
            "SELECT s.chat_id, s.narrative_id FROM subscriptions s JOIN chats c "
            "ON c.chat_id = s.chat_id WHERE c.active = 1").fetchall()
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
        rows = self.store.db.execute(
            "SELECT DISTINCT s.chat_id FROM subscriptions s JOIN chats c ON c.chat_id = s.chat_id "
            "WHERE c.active = 1 AND s.narrative_id IN (?, ?) ORDER BY s.chat_id",
            (narrative_id, ALL)).fetchall()
        chats += [r[0] for r in rows if r[0] != self.channel]
        return chats

    def _muted(self, chat_id: str, source: str, now: datetime) -> bool:
        return any(m.source.casefold() == source.casefold() for m in self.mutes(chat_id, now))

    # -- feedback -----------------------------------------------------------------------

    def vote(self, article_key: str, narrative_id: str, user_id: int, vote: str,
             outbox_id: int | None = None) -> int:
        """Store (or change) a user's vote; return how many distinct users said 'wrong'."""
        with self.store.transaction() as db:
            db.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                       "(article_key, narrative_id, user_id) DO UPDATE SET vote = excluded.vote",
                       (article_key, narrative_id, user_id, vote, outbox_id, iso(utcnow())))
            wrong: int = db.execute("SELECT COUNT(*) FROM feedback WHERE article_key = ? AND "
                                    "narrative_id = ? AND vote = 'wrong'",
                                    (article_key, narrative_id)).fetchone()[0]
            return wrong

    def wrong_voters(self, article_key: str, narrative_id: str) -> set[int]:
        """Who voted 👎 on that article for that narrative."""
        rows = self.store.db.execute(
            "SELECT user_id FROM feedback WHERE article_key = ? AND narrative_id = ? AND "
            "vote = 'wrong'", (article_key, narrative_id))
        return {r[0] for r in rows}

    def learn_counter_example(self, narrative_id: str, text: str, article_key: str) -> bool:
        """Keep `text` as a counter-example of the narrative; False if it already was one."""
        with self.store.transaction() as db:
            return db.execute("INSERT OR IGNORE INTO learned_counters VALUES (?, ?, ?, ?)",
                              (narrative_id, text, article_key, iso(utcnow()))).rowcount > 0

    def learned_counter_examples(self) -> dict[str, list[str]]:
        learned: dict[str, list[str]] = {}
        for row in self.store.db.execute("SELECT narrative_id, text FROM learned_counters "
                                         "ORDER BY created_at"):
            learned.setdefault(row[0], []).append(row[1])
        return learned

    def feedback_counts(self) -> Mapping[str, Votes]:
        """narrative id → its votes."""
        rows = self.store.db.execute(
            "SELECT narrative_id, SUM(vote = 'relevant'), SUM(vote = 'wrong') FROM feedback "
            "GROUP BY narrative_id")
        return {r[0]: Votes(int(r[1]), int(r[2])) for r in rows}
