"""Telegram: message rendering, commands, buttons and delivery."""
