"""narrative-bot: alerts on Telegram when news feeds push known state-media narratives."""

__version__ = "0.1.0"
