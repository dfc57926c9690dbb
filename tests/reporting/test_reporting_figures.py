import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from semrsm.reporting import figures


def _saved_size(figure, tmp_path):
    path = tmp_path / "figure.png"
    figure.savefig(path)
    assert path.stat().st_size > 1000
    height, width = imread(path).shape[:2]
    return width, height


def _expected_size(figure):
    width, height = figure.get_size_inches() * figure.dpi
    return round(width), round(height)


def test_rsm_heatmaps_share_one_colour_scale(tmp_path):
    rng = np.random.default_rng(0)
    figure = figures.rsm_heatmaps({"spatio-semantic": rng.random((6, 6)), "semantic": 2 + rng.random((6, 6))})
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(images) == 2
    assert images[0].get_clim() == images[1].get_clim()
    assert images[0].get_clim()[1] > 2
    assert _saved_size(figure, tmp_path) == _expected_size(figure)


def test_value_distributions_titles_carry_auroc(tmp_path):
    groups = np.repeat(np.arange(4), 3)
    same = groups[:, None] == groups[None, :]
    figure = figures.value_distributions(
        {"semantic": same * 1.0 + 0.001 * np.arange(144).reshape(12, 12)}, groups
    )
    assert "AUROC 1.000" in figure.axes[0].get_title()
    assert _saved_size(figure, tmp_path) == _expected_size(figure)


def test_retrieval_grid_layout_and_image_formats(tmp_path):
    rng = np.random.default_rng(1)
    queries = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), torch.rand(3, 16, 16)]
    retrieved = [
        [rng.random((16, 16)), rng.normal(size=(16, 16, 3))],
        [torch.rand(1, 16, 16), rng.random((16, 16))],
    ]
    figure = figures.retrieval_grid(
        queries,
        retrieved,
        np.array([[0.9, 0.8], [0.7, 0.6]]),
        query_titles=["a", "b"],
        retrieved_titles=[["x", "y"], ["z", "w"]],
    )
    assert len(figure.axes) == 6
    assert "0.900" in figure.axes[1].get_title() and "x" in figure.axes[1].get_title()
    assert _saved_size(figure, tmp_path) == _expected_size(figure)


def test_cka_heatmap_with_diagonal(tmp_path):
    matrix = np.array([[1.0, 0.5, 0.2], [0.5, 0.8, 0.4], [0.2, 0.4, 0.9]])
    figure = figures.cka_heatmap(matrix, ["l1", "l2", "l3"], ["l1", "l2", "l3"], title="CKA")
    line = figure.axes[1].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.8, 0.9])
    assert _saved_size(figure, tmp_path) == _expected_size(figure)
    rectangular = figures.cka_heatmap(matrix[:2], ["a", "b"], ["x", "y", "z"], show_diagonal=False)
    assert len(rectangular.axes) == 2  # heatmap + colour bar


def _results_table():
    rows = []
    for backbone in ("resnet18", "vit_tiny"):
        for kernel in ("cosine", "rbf"):
            for invariant in (False, True):
                rows.append(
                    {
                        "backbone": backbone,
                        "kernel": kernel,
                        "invariant": invariant,
                        "f1": 0.3 + 0.2 * invariant,
                    }
                )
    return pd.DataFrame(rows)


def test_metric_bars_one_panel_per_facet_one_bar_per_hue(tmp_path):
    figure = figures.metric_bars(_results_table(), value="f1", x="backbone", hue="invariant", facet="kernel")
    panels = [ax for ax in figure.axes if ax.patches]
    assert len(panels) == 2 and all(len(ax.patches) == 4 for ax in panels)
    heights = sorted(round(patch.get_height(), 6) for patch in panels[0].patches)
    assert heights == [0.3, 0.3, 0.5, 0.5]
    assert _saved_size(figure, tmp_path) == _expected_size(figure)


def test_metric_lines_and_matcher_tradeoff(tmp_path):
    table = pd.DataFrame(
        {
            "matcher": ["hungarian", "batch_optimal", "identity"] * 2,
            "spatial_size": [16] * 3 + [64] * 3,
            "runtime_s": [1e-3, 2e-4, 1e-6, 1e-1, 5e-3, 1e-6],
            "quality_ratio": [1.0, 0.99, 0.6, 1.0, 0.97, 0.55],
        }
    )
    figure = figures.matcher_tradeoff(table)
    assert figure.axes[0].get_yscale() == "log" and len(figure.axes[0].lines) == 3
    assert _saved_size(figure, tmp_path) == _expected_size(figure)
    lines = figures.metric_lines(table, x="spatial_size", y="quality_ratio", hue="matcher")
    assert len(lines.axes[0].lines) == 3


def test_matcher_tradeoff_ticks_only_the_spatial_sizes_and_never_crowds_labels():
    sizes = [4, 16, 49, 64, 196, 256, 784]
    table = pd.DataFrame(
        {"matcher": "greedy", "spatial_size": sizes, "runtime_s": 1e-3, "quality_ratio": 0.9}
    )
    for ax in figures.matcher_tradeoff(table).axes:
        assert ax.get_xscale() == "log" and list(ax.get_xticks(minor=True)) == []
        assert ax.get_xticks().tolist() == sizes
        labels = [label.get_text() for label in ax.get_xticklabels()]
        assert labels == ["4", "16", "49", "", "196", "", "784"]  # 64 and 256 sit too close to 49, 196


def test_bad_figure_input_raises():
    with pytest.raises(ValueError, match="non-empty mapping"):
        figures.rsm_heatmaps({})
    with pytest.raises(ValueError, match="square"):
        figures.rsm_heatmaps({"a": np.ones((2, 3))})
    with pytest.raises(ValueError, match="no column"):
        figures.metric_bars(_results_table(), value="missing", x="backbone", hue="invariant")
    with pytest.raises(ValueError, match="do not match"):
        figures.cka_heatmap(np.eye(2), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="scores must be"):
        figures.retrieval_grid([np.zeros((4, 4))], [[np.zeros((4, 4))]], np.array([0.5]))
    with pytest.raises(ValueError, match="image"):
        figures.retrieval_grid([np.zeros((4, 4, 5))], [[np.zeros((4, 4))]], np.array([[0.5]]))
    with pytest.raises(ValueError, match="different-group"):
        figures.value_distributions({"a": np.eye(3)}, [0, 1, 2])
