"""Run metadata: git commit, package versions, host, Python, torch and device."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "semrsm",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "lapjv",
    "numba",
    "hydra-core",
    "omegaconf",
    "pytorch-lightning",
    "timm",
    "open_clip_torch",
    "segment-anything",
    "transformers",
    "pandas",
    "wandb",
    "matplotlib",
    "scikit-learn",
)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(start: Path | None = None) -> dict[str, Any]:
    """Commit, repository root and dirty flag of the git checkout holding `start` (default: this package)."""
    where = start or Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], where)
    if commit is None:
        return {"commit": None, "root": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {
        "commit": commit,
        "root": _git(["rev-parse", "--show-toplevel"], where),
        "dirty": None if status is None else bool(status),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict[str, Any]:
    """Torch version, CPU count and the accelerator torch sees (CUDA name or 'cpu')."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda_device_count": torch.cuda.device_count() if cuda else 0,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def run_metadata() -> dict[str, Any]:
    """Everything needed to say where and with what a run was made."""
    return {
        "git": git_info(),
        "packages": package_versions(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "argv": list(sys.argv),
        **device_info(),
    }
