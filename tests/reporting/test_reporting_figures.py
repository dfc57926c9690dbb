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
    long = "pink stripes ell, green checker bar, lime dots star, orange gradient crescent"
    wrapped = figures.retrieval_grid(
        queries[:1], retrieved[:1], np.array([[0.9, 0.8]]), [long], [[long, "y"]]
    )
    for ax in wrapped.axes[
        :2
    ]:  # long category lists wrap to the panel's width instead of running into the next
        lines = ax.get_title().split("\n")
        assert len(lines) > 3 and max(len(line) for line in lines) <= 37
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
            for semantic in (False, True):
                rows.append(
                    {
                        "backbone": backbone,
                        "kernel": kernel,
                        "semantic": semantic,
                        "f1": 0.3 + 0.2 * semantic,
                    }
                )
    return pd.DataFrame(rows)


def test_metric_bars_one_panel_per_facet_one_bar_per_hue(tmp_path):
    figure = figures.metric_bars(_results_table(), value="f1", x="backbone", hue="semantic", facet="kernel")
    panels = [ax for ax in figure.axes if ax.patches]
    assert len(panels) == 2 and all(len(ax.patches) == 4 for ax in panels)
    heights = sorted(round(patch.get_height(), 6) for patch in panels[0].patches)
    assert heights == [0.3, 0.3, 0.5, 0.5]
    assert _saved_size(figure, tmp_path) == _expected_size(figure)


def _tradeoff_table():
    return pd.DataFrame(
        {
            "matcher": ["hungarian", "batch_optimal", "identity"] * 2,
            "spatial_size": [16] * 3 + [64] * 3,
            "runtime_s": [1e-3, 2e-4, 0.0, 1e-1, 5e-3, 1e-6],
            "quality_ratio": [1.0, 0.99, 0.6, 1.0, 0.97, 0.55],
        }
    )


def test_matcher_tradeoff_is_log_time_against_quality_one_curve_per_matcher(tmp_path):
    figure = figures.matcher_tradeoff(
        _tradeoff_table(), title="trade-off", runtime_label="time per pair (s)", quality_label="quality"
    )
    (ax,) = figure.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time per pair (s)", "quality")
    curves = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(curves) == 3 and all(len(line.get_xdata()) == 2 for line in curves)  # 3 matchers x 2 sizes
    markers = {line.get_marker() for line in ax.lines if line.get_linestyle() == "None"}
    assert len(markers) == 2  # one marker shape per spatial size
    hungarian = next(c for c in curves if list(c.get_ydata()) == [1.0, 1.0])
    np.testing.assert_allclose(hungarian.get_xdata(), [1e-3, 1e-1])
    identity = next(c for c in curves if list(c.get_ydata()) == [0.6, 0.55])
    assert identity.get_xdata()[0] > 0  # a zero time is drawn at the axis floor, not lost on the log axis
    (legend,) = figure.legends  # outside the axes: a figure legend, not an axes legend
    assert ax.get_legend() is None
    texts = [text.get_text() for text in legend.get_texts()]
    assert texts == ["batch_optimal", "hungarian", "identity", "S = 16", "S = 64"]
    assert _saved_size(figure, tmp_path) == _expected_size(figure)


def test_single_point_plots_are_refused():
    one = _tradeoff_table().iloc[:1]
    with pytest.raises(ValueError, match="at least two"):
        figures.matcher_tradeoff(one)
    with pytest.raises(ValueError, match=">= 2 distinct values of 'spatial_size'"):
        figures.metric_lines(
            _tradeoff_table().assign(spatial_size=49), x="spatial_size", y="quality_ratio", hue="matcher"
        )
    lines = figures.metric_lines(
        _tradeoff_table(), x="spatial_size", y="quality_ratio", hue="matcher", x_label="S", y_label="q"
    )
    assert len(lines.axes[0].lines) == 3 and (lines.axes[0].get_xlabel(), lines.axes[0].get_ylabel()) == (
        "S",
        "q",
    )
    assert lines.axes[0].get_legend() is None and len(lines.legends) == 1


def test_long_titles_wrap_inside_the_figure(tmp_path):
    title = (
        "resnet18_synthetic layer1 (S=256) on synthetic_crops: cosine kernel, semantic RSM by lapjv matching"
    )
    figure = figures.metric_bars(_results_table(), value="f1", x="backbone", hue="semantic", title=title)
    text = figure.get_suptitle()
    assert "\n" in text and text.replace("\n", " ") == title
    figure.savefig(tmp_path / "f.png")
    box = figure._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width  # not cut off on either side


def test_crop_heatmaps_outline_same_image_blocks_and_label_the_colour_bar():
    groups = np.repeat([0, 1, 2], 3)
    rsm = np.eye(9) + 0.1
    figure = figures.rsm_heatmaps(
        {"a": rsm, "b": rsm}, groups=groups, value_label="cosine similarity", sample_label="crops"
    )
    panels = [ax for ax in figure.axes if ax.images]
    colour_bar = next(ax for ax in figure.axes if not ax.images)
    assert colour_bar.get_ylabel() == "cosine similarity"
    for ax in panels:
        boxes = [(p.get_x(), p.get_y(), p.get_width()) for p in ax.patches]
        assert boxes == [(-0.5, -0.5, 3), (2.5, 2.5, 3), (5.5, 5.5, 3)]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="adjacent"):
        figures.rsm_heatmaps({"a": rsm}, groups=[0, 1, 0, 1, 2, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="groups has 4 labels"):
        figures.rsm_heatmaps({"a": rsm}, groups=[0, 0, 1, 1])


def test_metric_bars_draw_intervals_and_rename_hues():
    table = _results_table().assign(low=lambda t: t["f1"] - 0.05, high=lambda t: t["f1"] + 0.1)
    figure = figures.metric_bars(
        table, value="f1", x="backbone", hue="semantic", interval=("low", "high"),
        value_label="F1@1 (n=40 queries)", hue_names={True: "semantic", False: "spatio-semantic"},
    )  # fmt: skip
    ax = figure.axes[0]
    assert ax.get_ylabel() == "F1@1 (n=40 queries)"
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["spatio-semantic", "semantic"]
    errorbars = [c for c in ax.containers if hasattr(c, "has_yerr")]
    segments = errorbars[0].lines[2][0].get_segments()  # spatio-semantic (False) bars of both backbones
    assert [round(float(s[0][1]), 6) for s in segments] == [0.25, 0.25]
    assert [round(float(s[1][1]), 6) for s in segments] == [0.4, 0.4]


def test_bad_figure_input_raises():
    with pytest.raises(ValueError, match="non-empty mapping"):
        figures.rsm_heatmaps({})
    with pytest.raises(ValueError, match="square"):
        figures.rsm_heatmaps({"a": np.ones((2, 3))})
    with pytest.raises(ValueError, match="no column"):
        figures.metric_bars(_results_table(), value="missing", x="backbone", hue="semantic")
    with pytest.raises(ValueError, match="do not match"):
        figures.cka_heatmap(np.eye(2), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="scores must be"):
        figures.retrieval_grid([np.zeros((4, 4))], [[np.zeros((4, 4))]], np.array([0.5]))
    with pytest.raises(ValueError, match="image"):
        figures.retrieval_grid([np.zeros((4, 4, 5))], [[np.zeros((4, 4))]], np.array([[0.5]]))
    with pytest.raises(ValueError, match="different-group"):
        figures.value_distributions({"a": np.eye(3)}, [0, 1, 2])
