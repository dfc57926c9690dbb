"""Every conf/dataset option composes with Hydra and instantiates into a contract dataset."""

from pathlib import Path

import pytest
from data_fixtures import write_cityscapes, write_egoobjects, write_imagenet_folders, write_tiny_imagenet
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONF = Path(__file__).resolve().parents[2] / "conf"
OPTIONS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))
SMALL_TINY = ["num_classes=3", "train_per_class=2", "val_per_class=2", "image_size=32"]
# Small synthetic sizes so the test generates in a fraction of a second; the defaults are checked below.
OVERRIDES = {
    "synthetic": [f"dataset.{o}" for o in SMALL_TINY],
    "synthetic_crops": [f"++dataset.base.{o}" for o in SMALL_TINY] + ["dataset.num_images=3"],
    "synthetic_scenes": ["dataset.num_images=4", "dataset.image_size=48"],
    "synthetic_cityscapes": ["dataset.num_images=3", "dataset.width=64", "dataset.height=32"],
    "tinyimagenet_crops": ["dataset.num_images=2"],
    "photo_views": ["dataset.num_views=5"],
}
EXPECTED_LEN = {
    "cityscapes": 3, "egoobjects": 3, "imagenet_val": 3, "photos": 10, "photos_crops": 90, "synthetic": 6,
    "synthetic_cityscapes": 3, "synthetic_crops": 27, "synthetic_scenes": 4, "tinyimagenet": 4, "tinyimagenet_crops": 18,
    "photo_views": 5,
}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny_imagenet(root / "tiny-imagenet-200")
    write_egoobjects(root / "egoobjects")
    write_cityscapes(root / "cityscapes")
    write_imagenet_folders(root / "imagenet")
    return root


def compose_dataset(tmp_path: Path, option: str, data_dir: Path, overrides: list[str]):
    """Compose the dataset group from the repository's conf/ under a minimal primary config with a paths node."""
    (tmp_path / "probe.yaml").write_text(
        f"defaults:\n  - dataset: synthetic\n  - _self_\nhydra:\n  searchpath:\n    - file://{CONF}\n"
        f"paths:\n  data_dir: {data_dir}\n"
    )
    with initialize_config_dir(str(tmp_path), version_base="1.3"):
        return compose("probe", overrides=[f"dataset={option}", *overrides])


def test_every_option_is_covered():
    assert set(OPTIONS) == set(EXPECTED_LEN)


@pytest.mark.parametrize("option", OPTIONS)
def test_dataset_option_instantiates(tmp_path, data_dir, option):
    cfg = compose_dataset(tmp_path, option, data_dir, OVERRIDES.get(option, []))
    assert cfg.dataset.name == option
    ds = instantiate(cfg.dataset, _convert_="all")
    assert ds.name == option and len(ds) == EXPECTED_LEN[option]
    sample = ds[len(ds) - 1]
    assert sample["image"].mode == "RGB" and isinstance(sample["id"], str)


@pytest.mark.slow
def test_synthetic_defaults(tmp_path):
    """The embedded default at its configured sizes: 10 classes x (100 train + 20 val), 200 scenes, 100 streets."""
    sizes = {"synthetic": (200, 10), "synthetic_scenes": (200, 10), "synthetic_cityscapes": (100, 34)}
    for option, (length, num_classes) in sizes.items():
        cfg = compose_dataset(tmp_path, option, tmp_path / "data", [])
        ds = instantiate(cfg.dataset, _convert_="all")
        assert len(ds) == length and len([c for c in ds.classes if c]) == num_classes
    train = compose_dataset(tmp_path, "synthetic", tmp_path / "data", ["dataset.split=train"])
    assert len(instantiate(train.dataset, _convert_="all")) == 1000
