"""Benchmarks (``make bench``), each printed as ratios against a reference measured in the same run:

- ``engine``: the similarity engine vs a per-pair numpy + scipy reference, the cost of tiling-independent
  products, and the matcher table per spatial size;
- ``extraction``: Lightning feature extraction into the store vs a bare forward loop.

    python -m semrsm.bench            # both
    python -m semrsm.bench.engine     # one, with its own options (--help)
"""
