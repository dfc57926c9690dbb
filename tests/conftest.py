"""Shared test settings: everything offline, wandb disabled, one torch thread per worker."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """Slow end-to-end tests first, so that with ``-n 2`` the short ones fill the gaps at the end instead of
    one worker finishing a long test alone (a stable sort: every xdist worker gets the same order)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
