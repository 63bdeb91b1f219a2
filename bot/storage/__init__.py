"""All state: SQL over SQLite, one module per entity; `bot.storage.store.Store` joins them
over one connection and re-exports the records (the audience lives in bot/storage/audience.py).
"""
