"""The running bot: the pipeline, the schedule, the one wiring object (`App`), reload, and the
commands' bodies."""

from bot.app.wiring import App

__all__ = ["App"]
