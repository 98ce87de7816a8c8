"""benchmarks.corpus_speed: every corpus row, shards that cover them once, and the summary over
merged runs (median, worst, every row over 1.0, failures)."""

from __future__ import annotations

import json

import pytest

from benchmarks.corpus_speed import main, rows, shard, summarize
from benchmarks.models import ARCHS


def test_all_is_every_architecture_at_each_opset_and_batch():
    every = rows(["all"], [13, 17], ["dynamic", "static"])
    assert len(every) == len(set(every)) == len(ARCHS) * 2 * 2
    assert {(a, o, b) for a in ARCHS for o in (13, 17) for b in ("dynamic", "static")} == set(every)
    assert rows(["bert@13", "swin"], [11], ["static"]) == [("bert", 13, "static"), ("swin", 17, "static")]
    with pytest.raises(SystemExit, match="unknown model 'nosuch'"):
        rows(["nosuch@13"], [13], ["dynamic"])


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
def test_shards_cover_every_row_once(count):
    every = rows(["all"], [13, 17], ["dynamic", "static"])
    parts = [shard(every, f"{k}/{count}") for k in range(1, count + 1)]
    assert sorted(row for part in parts for row in part) == sorted(every)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("spec", ["0/3", "4/3", "1/0", "a/b", "2"])
def test_a_bad_shard_is_one_line(spec):
    with pytest.raises(SystemExit, match="--shard"):
        shard([1, 2, 3], spec)


def _row(gk_wall: float, slim_wall: float, rc: int = 0, validated: bool = True) -> dict:
    gk = {"wall_s": gk_wall, "cpu_s": gk_wall, "peak_rss_mb": 100, "rc": [rc], "validated": validated}
    slim = {"wall_s": slim_wall, "cpu_s": slim_wall, "peak_rss_mb": 125, "rc": [0]}
    ratio = round(gk_wall / slim_wall, 2)
    return {"graphkit": gk, "onnxslim": slim, "ratios": {"wall_s": ratio, "cpu_s": ratio, "peak_rss_mb": 0.8}}


def test_summary_names_the_worst_row_every_row_over_one_and_every_failure():
    per_row = {
        "a@13 static": _row(1.0, 2.0),
        "b@13 static": _row(3.0, 2.0),
        "c@17 dynamic": _row(2.2, 2.0, rc=1),
        "d@17 dynamic": _row(1.8, 2.0, validated=False),
    }
    wall = summarize(per_row)["graphkit_over_onnxslim"]["wall_s"]
    assert wall["rows"] == 4 and wall["median"] == 1.0 and wall["worst"] == 1.5
    assert wall["worst_model"] == "b@13 static"
    assert wall["over_1.0"] == {"b@13 static": 1.5, "c@17 dynamic": 1.1}
    assert summarize(per_row)["failures"] == ["c@17 dynamic", "d@17 dynamic"]


def test_merge_joins_the_rows_of_several_runs(tmp_path, capsys):
    runs = []
    for k, rows_of_run in enumerate(({"a@13 static": _row(1.0, 2.0)}, {"b@17 static": _row(3.0, 2.0)})):
        path = tmp_path / f"run{k}.json"
        path.write_text(json.dumps({"what": "x", "shard": f"{k + 1}/2", "rounds": 1, "models": rows_of_run}))
        runs.append(str(path))
    merged = main(["--merge", *runs, "--out", str(tmp_path / "all.json")])
    assert sorted(merged["models"]) == ["a@13 static", "b@17 static"]
    assert merged["graphkit_over_onnxslim"]["wall_s"]["median"] == 1.0
    assert [m["shard"] for m in merged["merged"]] == ["1/2", "2/2"]
    assert json.loads((tmp_path / "all.json").read_text()) == merged
    capsys.readouterr()
