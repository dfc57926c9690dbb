"""Faults a user meets, end to end through experiments/run.py (forked runs, see tests/cli_runs.py): kill -9 during
extraction and during a stage, a corrupted feature array, a truncated RSM cache file, two identical runs at once,
a full disk. Each ends in a clear message or a correct recomputation; results after a fault equal those of a
clean run, bit for bit (same machine, same code: the engine's results do not depend on tiling, and the stored
arrays are checked)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runs import CliProcess, CliServer, Completed, run_env

from semrsm.storage import file_lock

ARGS = [
    "dataset=synthetic",
    "dataset.num_classes=4",
    "dataset.train_per_class=1",
    "dataset.val_per_class=15",  # N = 60 images: 15 shards of 4 to kill extraction between
    "backbone=resnet18",
    "backbone.pretrained=false",
    "backbone.img_size=112",
    "backbone.layers=[layer3,layer4]",  # S = 49 and 16 at 112 px
    "features.batch_size=4",
    "features.shard_size=4",
    "features.progress_bar=false",
    "logger=none",
]
TABLE = Path("tables") / "layers_cka.csv"
pytestmark = pytest.mark.slow


def _env(root: Path, **extra: str) -> dict[str, str]:
    """Runs under ``root``, all reading one generated data set (so their feature keys agree)."""
    return run_env(root, SEMRSM_DATA=str(root.parent / "shared-data"), **extra)


def _run(cli: CliServer, root: Path, experiment: str = "layers_cka", **env: str) -> Completed:
    return cli.run([*ARGS, f"experiment={experiment}"], cwd=root, env=_env(root, **env))


def _start(cli: CliServer, root: Path, experiment: str = "layers_cka") -> CliProcess:
    return cli.start([*ARGS, f"experiment={experiment}"], cwd=root, env=_env(root))


def _kill_when(process: CliProcess, ready, timeout: float = 120) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds; fails if it ended before."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before it could be killed:\n{process.output()}"
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.01)
    process.kill()
    assert process.wait(timeout=60) == -signal.SIGKILL


def _results(root: Path, experiment: str = "layers_cka") -> Path:
    (run_dir,) = (root / "outputs" / "runs" / experiment).iterdir()
    return run_dir / "results"


def _cache(root: Path) -> Path:
    return root / "outputs" / "cache"


def _features(root: Path) -> dict[str, np.ndarray]:
    (entry,) = [p for p in (_cache(root) / "features").iterdir() if (p / "manifest.json").is_file()]
    return {p.name: np.load(p) for p in sorted((entry / "layers").iterdir())}


def _with_cache_of(clean: Path, root: Path) -> None:
    """Give ``root`` a copy of the clean run's caches (features and RSMs), but none of its runs."""
    shutil.copytree(_cache(clean), _cache(root))


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """A directory whose subdirectories are the tests' roots, beside their shared data set; one per pytest
    session, shared by its xdist workers (each may run some of these tests)."""
    top = tmp_path_factory.getbasetemp()
    path = (top.parent if os.environ.get("PYTEST_XDIST_WORKER") else top) / "faults"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def clean(base, cli) -> Path:
    """The clean run every test compares with, made once per session (the first worker to ask makes it)."""
    root = base / "clean"
    with file_lock(base / "clean.lock"):
        if not (root / "finished").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            done = _run(cli, root)
            assert done.returncode == 0, done.stderr[-3000:]
            (root / "finished").touch()
    return root


@pytest.fixture
def root(base, request) -> Path:
    path = base / request.node.name
    path.mkdir()
    return path


def _same_results(root: Path, clean: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_csv(_results(root) / TABLE), pd.read_csv(_results(clean) / TABLE))
    assert json.loads((_results(root) / "status.json").read_text())["status"] == "ok"


def test_kill_during_extraction_then_resume_gives_the_clean_features(cli, root, request):
    process = _start(cli, root, "extract")
    shards = _cache(root) / "features"
    _kill_when(process, lambda: any(shards.glob("*.partial/shards/000001.json")))
    published = [p for p in shards.iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    assert not published
    done = _run(cli, root, "extract")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((_results(root, "extract") / "metrics.json").read_text())
    assert 0 < metrics["computed_samples"] < metrics["num_samples"] == 60  # resumed: finished shards kept
    clean = request.getfixturevalue("clean")  # asked for last: another worker may be making it meanwhile
    for name, array in _features(clean).items():
        np.testing.assert_array_equal(_features(root)[name], array)


def test_kill_during_a_stage_then_resume_gives_the_clean_results(cli, clean, root):
    shutil.copytree(_cache(clean) / "features", _cache(root) / "features")  # the stage starts with matching
    process = _start(cli, root)
    runs = root / "outputs" / "runs" / "layers_cka"
    _kill_when(process, lambda: runs.is_dir() and any(runs.glob("*/results.partial-*")))
    assert not _results(root).exists()
    done = _run(cli, root)
    assert done.returncode == 0, done.stderr[-3000:]
    _same_results(root, clean)


def test_corrupt_features_and_a_truncated_rsm_cache_are_recomputed(cli, clean, root):
    _with_cache_of(clean, root)
    (entry,) = [p for p in (_cache(root) / "features").iterdir() if p.is_dir()]
    layer_file = entry / "layers" / "00_layer3.npy"
    data = bytearray(layer_file.read_bytes())
    data[-100] ^= 0x04  # a flipped bit in the last sample
    layer_file.write_bytes(bytes(data))
    rsm_file = sorted((_cache(root) / "rsm").glob("*.npz"))[0]
    rsm_file.write_bytes(rsm_file.read_bytes()[:200])
    done = _run(cli, root)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert f"corrupt or truncated file {layer_file}: checksum" in log and "computing the feature set" in log
    assert f"corrupt or truncated file {rsm_file}" in log
    for name, array in _features(clean).items():
        np.testing.assert_array_equal(_features(root)[name], array)
    _same_results(root, clean)


def test_two_identical_runs_at_once_both_end_with_complete_results(cli, clean, root):
    _with_cache_of(clean, root)
    first, second = _start(cli, root), _start(cli, root)
    codes = [process.wait() for process in (first, second)]
    outputs = [process.output() for process in (first, second)]
    assert codes == [0, 0], outputs
    results = _results(root)
    assert {"config.json", "config.yaml", "stage.json", "status.json"} <= {p.name for p in results.iterdir()}
    assert not list(results.parent.glob("results.partial-*"))
    assert any("already complete" in output for output in outputs)  # the second waited, then found them
    _same_results(root, clean)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a tmpfs needs root")
def test_a_full_disk_during_extraction_is_a_clear_error(cli, root):
    cache = root / "small"
    cache.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(cache)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        done = _run(cli, root, "extract", SEMRSM_CACHE=str(cache))
    finally:
        subprocess.run(["umount", str(cache)], check=True)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.returncode != -signal.SIGBUS
    assert f"cannot write to {cache}/features/" in done.stderr and "MiB needed" in done.stderr
    status = json.loads((_results(root, "extract").with_name("results.failed") / "status.json").read_text())
    assert status["status"] == "failed" and f"cannot write to {cache}/features/" in status["error"]
