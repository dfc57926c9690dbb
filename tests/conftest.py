"""Shared test settings: everything offline, wandb disabled, one torch thread per worker."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"

import torch  # noqa: E402

torch.set_num_threads(1)
