"""Text to vectors: the Embedder interface, its backends, the shared queue and cache."""
