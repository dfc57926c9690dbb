"""Fixtures: tiny trees in the real formats, written under the test's tmp_path."""

import pytest
from data_fixtures import write_cityscapes, write_egoobjects, write_tiny_imagenet


@pytest.fixture
def tiny_imagenet(tmp_path):
    return write_tiny_imagenet(tmp_path / "tiny-imagenet-200")


@pytest.fixture
def egoobjects(tmp_path):
    return write_egoobjects(tmp_path / "egoobjects")


@pytest.fixture
def cityscapes(tmp_path):
    return write_cityscapes(tmp_path / "cityscapes")
