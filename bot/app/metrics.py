"""Prometheus metrics (`[metrics] listen = "127.0.0.1:9464"`, off by default), served by
prometheus-client's own HTTP server in a thread: `GET /metrics`, text format.

Two kinds of figures, every name prefixed `narrative_bot_`:
- what this process did since it started, counted as it happens: polls and failures per feed,
  new articles, delivery outcomes (sent, retried, failed), the embedding latency, the time of
  the last poll;
- what the state holds, read at each scrape from a read-only connection of its own (so it is
  right across restarts and never touches the bot's connection): matches per narrative, alerts
  by status and interrupted sends, the outbox depth and the age of its oldest waiting row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.app.pipeline import PollReport
from bot.storage.database import Location
from bot.storage.figures import NoState, read_figures
from bot.telegram.report import DeliveryReport

log = logging.getLogger(__name__)

PREFIX = "narrative_bot_"
EMBED_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsUnavailable(Exception):
    """`[metrics] listen` cannot be served (the port is taken, the address is not ours)."""


class StateCollector(Collector):
    """The state's figures, read when Prometheus scrapes."""

    def __init__(self, state: Location) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        try:
            figures = read_figures(self.state)
        except NoState as exc:
            log.debug("metrics: %s", exc)
            return
        matches = CounterMetricFamily(f"{PREFIX}matches", "Matches stored, per narrative",
                                      labels=["narrative"])
        for narrative, count in sorted(figures.matches.items()):
            matches.add_metric([narrative], count)
        yield matches
        yield CounterMetricFamily(f"{PREFIX}articles_stored", "Articles in the state",
                                  value=figures.articles)
        alerts = GaugeMetricFamily(f"{PREFIX}outbox_alerts", "Alerts in the outbox by status",
                                   labels=["status"])
        for status in ("pending", "sending", "sent", "failed"):
            alerts.add_metric([status], figures.alerts.get(status, 0))
        yield alerts
        yield CounterMetricFamily(f"{PREFIX}alerts_interrupted",
                                  "Sends whose outcome was unknown, sent again (may show twice)",
                                  value=figures.alerts_interrupted)
        yield GaugeMetricFamily(f"{PREFIX}outbox_depth",
                                "Alerts and posts waiting to be sent", value=figures.outbox_depth)
        oldest = figures.oldest_waiting_at
        age = 0.0 if oldest is None else max(time.time() - oldest.timestamp(), 0.0)
        yield GaugeMetricFamily(f"{PREFIX}outbox_oldest_age_seconds",
                                "Age of the oldest waiting alert or post (0: none waits)",
                                value=age)
        yield GaugeMetricFamily(f"{PREFIX}feeds_failing", "Feeds whose last poll failed",
                                value=figures.feeds_failing)
        if figures.last_cycle_at is not None:
            yield GaugeMetricFamily(f"{PREFIX}last_cycle_timestamp_seconds",
                                    "When a feed was last polled (Unix time)",
                                    value=figures.last_cycle_at.timestamp())


class Metrics:
    """The bot's metrics registry; `serve()` exposes it, `observe_*` feed it."""

    def __init__(self, state: Location) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter(f"{PREFIX}feed_polls", "Feed polls by outcome",
                             ["feed", "status"], registry=r)
        self.failures = Counter(f"{PREFIX}feed_failures", "Failed feed polls", ["feed"],
                                registry=r)
        self.articles = Counter(f"{PREFIX}articles", "New articles embedded and matched",
                                registry=r)
        self.alerts = Counter(f"{PREFIX}alerts", "Delivery outcomes (alerts, spikes, digests)",
                              ["outcome"], registry=r)
        for outcome in ("sent", "retried", "failed"):
            self.alerts.labels(outcome)
        self.embed_seconds = Histogram(f"{PREFIX}embed_seconds",
                                       "Wait for one embedding request (queue and model)",
                                       buckets=EMBED_BUCKETS, registry=r)
        self.last_poll = Gauge(f"{PREFIX}last_poll_timestamp_seconds",
                               "When this process last finished polling a feed (Unix time)",
                               registry=r)
        r.register(StateCollector(state))
        self._server: tuple[WSGIServer, Thread] | None = None

    def observe_poll(self, report: PollReport) -> None:
        self.polls.labels(report.feed, report.status).inc()
        if report.status == "error":
            self.failures.labels(report.feed).inc()
        self.articles.inc(report.new_articles)
        self.last_poll.set_to_current_time()

    def observe_delivery(self, report: DeliveryReport) -> None:
        for outcome, count in (("sent", report.sent), ("retried", report.retried),
                               ("failed", report.failed)):
            if count:
                self.alerts.labels(outcome).inc(count)

    def serve(self, host: str, port: int) -> int:
        """Start serving /metrics; the port it listens on (`port` 0: a free one)."""
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsUnavailable(f"[metrics] listen = \"{host}:{port}\": "
                                     f"{exc.strerror or exc}") from None
        self._server = (server, thread)
        bound = int(server.server_address[1])
        log.info("metrics: http://%s:%d/metrics", host, bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._server = None
