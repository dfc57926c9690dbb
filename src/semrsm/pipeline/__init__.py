"""The pipeline: feature extraction into the on-disk feature store, and the Hydra stages.

- ``feature_store``: ``FeatureSet`` (memory-mapped per-layer arrays + ids, labels, objects, meta) and the
  resumable, atomically published ``ShardedFeatureWriter``.
- ``extraction``: ``extract_features(dataset, backbone, store_root, key_config, ...)``, a Lightning predict loop.
- ``stage_extract``: ``load_features(cfg)``, the configured dataset x backbone features every stage uses.
- ``stages``: ``register_stage`` and ``run_stage``, the one runner behind ``experiments/run.py``.
- ``config``: the run-directory resolver and the config checks Hydra does not make.
"""
