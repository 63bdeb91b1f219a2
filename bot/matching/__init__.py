"""Vectors to decisions: narrative index, lexical evidence, guards, syndication."""
