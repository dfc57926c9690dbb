"""scripts/gpu_check.py on a machine without a GPU: it says so (exit 2), and its comparisons run on the CPU
against the CPU, where the two computations must agree exactly (same device, same products)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from semrsm.similarity.workloads import smooth_relu_features

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: make bench-gpu runs the check")
def test_without_cuda_the_check_says_so(gpu_check, capsys):
    assert gpu_check.main(["--n", "4"]) == 2
    assert "no CUDA device here" in capsys.readouterr().out


def test_engine_and_pipeline_checks_agree_on_the_cpu(gpu_check, tmp_path):
    reps = smooth_relu_features(10, 8, 3)
    assert gpu_check.check_engine(reps, "lapjv", device="cpu")[2] == 0.0
    assert gpu_check.check_pipeline(reps, "lapjv", tmp_path, accelerator="cpu")[2] == 0.0
