"""Delivery without a bot token: alerts, posts and notices printed to the console."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.storage.store import Store
from bot.telegram.render import render_alert, render_copy
from bot.telegram.report import DeliveryReport


class ConsoleSink:
    """Without a bot token, alerts are printed; printing them counts as their delivery."""

    def __init__(self, store: Store, stream: TextIO | None = None) -> None:
        self.store = store
        self.stream = stream or sys.stdout

    def stop(self) -> None:
        """Printing is never cut off half-way: nothing to finish."""

    async def deliver_pending(self) -> DeliveryReport:
        report = DeliveryReport()
        for alert in self.store.pending_alerts(limit=10_000):
            rendered = render_copy(alert) if alert.origin_key else render_alert(alert)
            print(f"--- alert for {alert.chat_id}\n{rendered.plain}\n",
                  file=self.stream, flush=True)
            self.store.mark_sent(alert.id, None)
            report.sent += 1
        for post in self.store.pending_posts(limit=10_000):
            chart = " (with a chart)" if post.chart_id is not None else ""
            print(f"--- {post.kind} for {post.chat_id}{chart}\n{post.plain}\n",
                  file=self.stream, flush=True)
            self.store.mark_post_sent(post.id, None)
            report.sent += 1
        for notice in self.store.pending_notices(limit=10_000):
            print(f"--- notice for {notice.chat_id}\n{notice.text}\n", file=self.stream, flush=True)
            self.store.mark_notice(notice.id, "sent")
        return report
