import json
import re

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from semrsm.reporting.aggregate import (
    aggregate,
    collect_results,
    main,
    parse_override,
    read_overrides,
    to_markdown,
)
from semrsm.reporting.hydra_callback import AggregateResults


def _fake_job(sweep, number, overrides, metrics, table=None):
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "metrics.json").write_text(json.dumps(metrics))
    if table is not None:
        (job / "tables").mkdir()
        table.to_csv(job / "tables" / "retrieval.csv", index=False)
    return job


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun"
    for number, (kernel, f1) in enumerate([("cosine", 0.5), ("rbf", 0.25), ("linear", 0.125)]):
        table = pd.DataFrame({"layer": ["layer3", "layer4"], "f1_at_1": [f1, f1 + 0.1]})
        _fake_job(
            root, number, ["experiment=retrieval", f"kernel={kernel}", "+seed=7"], {"f1_at_1": f1}, table
        )
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def cells(line: str) -> list[str]:
    """The cells of one Markdown table row, stripped (a \\| inside a cell is not a separator)."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_markdown_blanks_nan_escapes_pipes_and_keeps_four_digits():
    table = pd.DataFrame({"run": ["a|b", "two\n lines"], "value": [0.123456, float("nan")], "n": [3, 4]})
    lines = to_markdown(table).splitlines()
    assert [cells(line) for line in (lines[0], lines[2], lines[3])] == [
        ["run", "value", "n"],
        ["a|b", "0.1235", "3"],
        ["two lines", "", "4"],
    ]
    assert "a\\|b" in lines[2] and set(lines[1]) <= set("|:-")


def test_three_jobs_become_one_table_with_override_columns(sweep):
    table = aggregate(sweep)
    assert list(table.columns) == ["job", "experiment", "kernel", "seed", "f1_at_1"]
    assert table["kernel"].tolist() == ["cosine", "rbf", "linear"]
    assert table["seed"].tolist() == [7, 7, 7]
    assert table["f1_at_1"].tolist() == [0.5, 0.25, 0.125]
    written = pd.read_csv(sweep / "aggregate.csv")
    assert written["job"].astype(str).tolist() == ["0", "1", "2"]
    markdown = (sweep / "aggregate.md").read_text().splitlines()
    assert cells(markdown[0]) == ["job", "experiment", "kernel", "seed", "f1_at_1"]
    assert cells(markdown[2]) == ["0", "retrieval", "cosine", "7", "0.5"] and len(markdown) == 5
    # a second aggregation does not read its own output back in
    assert len(aggregate(sweep, pattern="*.csv")) == 6


def test_results_of_failed_or_running_runs_are_skipped(sweep):
    (sweep / "0" / "status.json").write_text(json.dumps({"status": "failed"}))
    (sweep / "1" / "status.json").write_text(json.dumps({"status": "ok"}))
    partial = sweep / "2" / "results.partial-99"
    partial.mkdir()
    (partial / "metrics.json").write_text(json.dumps({"f1_at_1": 0.9}))
    (partial / "status.json").write_text(json.dumps({"status": "running"}))
    table = collect_results(sweep)
    assert table["job"].tolist() == ["1", "2"]
    assert table["f1_at_1"].tolist() == [0.25, 0.125]


def test_csv_results_keep_every_row_per_job(sweep):
    table = collect_results(sweep, pattern="tables/retrieval.csv")
    assert len(table) == 6
    assert table.loc[table["kernel"] == "rbf", "f1_at_1"].tolist() == [0.25, 0.35]


def test_jobs_sorted_numerically(tmp_path):
    for number in (10, 2, 1):
        _fake_job(tmp_path, number, [f"n={number}"], {"v": number})
    assert collect_results(tmp_path)["n"].tolist() == [1, 2, 10]


def test_conflicting_override_and_result_column_raises(tmp_path):
    _fake_job(tmp_path, 0, ["kernel=rbf"], {"kernel": "cosine"})
    with pytest.raises(ValueError, match="disagrees"):
        collect_results(tmp_path)


def test_parse_override_forms(tmp_path):
    assert parse_override("kernel=rbf") == ("kernel", "rbf")
    assert parse_override("++trainer.max_epochs=3") == ("trainer.max_epochs", 3)
    assert parse_override("~logger") == ("logger", None)
    assert parse_override("layers=[a,b]") == ("layers", "[a,b]")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("novalue")
    assert read_overrides(tmp_path) == {}


def test_missing_inputs_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_results(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no result files"):
        collect_results(tmp_path)


def test_command_line_and_hydra_callback(sweep, capsys):
    assert main([str(sweep), "--name", "summary"]) == 0
    assert "| cosine   |" in capsys.readouterr().out
    assert (sweep / "summary.csv").is_file()
    AggregateResults(name="from_callback").on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    )
    assert len(pd.read_csv(sweep / "from_callback.csv")) == 3
