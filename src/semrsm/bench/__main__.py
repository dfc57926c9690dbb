"""``python -m semrsm.bench``: every benchmark with its default options."""

from semrsm.bench import engine, extraction

engine.main([])
print()
extraction.main([])
