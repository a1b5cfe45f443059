"""Articles on disk -> chunks -> vectors -> a FAISS + BM25 index, and search over it.

This package knows nothing of Discord or of answering: `bot/` builds on it, never the reverse.
"""
