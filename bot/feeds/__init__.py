"""Feed sources: fetching, parsing, article text and language."""
