"""All state: SQL over SQLite, split by what it stores."""
