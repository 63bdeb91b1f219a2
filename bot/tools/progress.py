"""Progress on a terminal for the long commands (eval, calibrate, backtest, convert-model, and
any other that walks many items): tqdm bars on standard error.

Only when standard error is a terminal: piped, redirected, under systemd or in CI nothing is
drawn, so logs and captured output stay clean. Bars are transient (`leave=False`): the
command's own report is what remains on screen.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

TICK_S = 0.5


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable[T], what: str, *, total: int | None = None,
             unit: str = "it") -> Iterator[T]:
    """`items`, with a bar while they are walked (on a terminal only)."""
    if not on_terminal():
        yield from items
        return
    from tqdm import tqdm

    if total is None and isinstance(items, Sized):
        total = len(items)
    yield from tqdm(items, desc=what, total=total, unit=unit, leave=False, file=sys.stderr,
                    dynamic_ncols=True)


@contextmanager
def working(what: str) -> Iterator[None]:
    """A step with no count to show (building a model): its elapsed time, ticking."""
    if not on_terminal():
        yield
        return
    from tqdm import tqdm

    bar = tqdm(desc=what, total=None, leave=False, file=sys.stderr, bar_format="{desc} {elapsed}")
    done = threading.Event()

    def tick() -> None:
        while not done.wait(TICK_S):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        bar.close()
