"""Shared test settings: everything offline, wandb disabled, one torch thread per worker."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"

import pytest  # noqa: E402
import torch  # noqa: E402
from cli_runs import CliServer  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    """Runs of experiments/run.py, each a process forked from one that has imported the CLI (cli_runs.py)."""
    server = CliServer(tmp_path_factory.mktemp("cli-runs"))
    yield server
    server.close()


def pytest_collection_modifyitems(items):
    """Modules with slow end-to-end tests first, so that with ``-n 2`` the short ones fill the gaps at the end
    instead of one worker finishing a long test alone. Each module's tests stay together (their module-scoped
    fixtures are made once) and the sort is stable, so every xdist worker gets the same order."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)
