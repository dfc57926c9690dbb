"""Benchmarks (``make bench``), each printed as ratios against a reference measured in the same run:

- ``engine``: the similarity engine vs a per-pair numpy + scipy reference, the cost of tiling-independent
  products, and the matcher table per spatial size;
- ``extraction``: Lightning feature extraction into the store vs a bare forward loop;
- ``scaling``: strong scaling of one layer's matching through the Lightning tile prediction (devices=1 vs 2
  processes, speed-ups, bit-identical results) and a cost model (``cost_model``) fitted here, checked against
  those runs and extrapolated to the paper's EgoObjects x DINOv2-giant retrieval RSM.

    python -m semrsm.bench            # all three
    python -m semrsm.bench.engine     # one, with its own options (--help)
    python -m semrsm.bench.scaling --quick
"""
