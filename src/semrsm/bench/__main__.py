"""``python -m semrsm.bench``: every benchmark with its default options."""

from semrsm.bench import engine, extraction, scaling

engine.main([])
print()
extraction.main([])
print()
scaling.main([])
