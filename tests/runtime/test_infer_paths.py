"""graphkit.runtime.infer_paths: ais_bench's output/summary/filesinfo paths and the device split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphkit.runtime.infer_paths import (
    check_output_dirname,
    device_dirname,
    input_texts,
    output_prefix,
    split_for_devices,
    summary_path,
)
from graphkit.util.errors import InputError


@pytest.mark.parametrize(
    ("output", "dirname", "prefix", "summary"),
    [
        ("./", "./result/", "././result/", "././result/_summary.json"),  # InceptionV3's line
        ("result", "result_bs4", "result/result_bs4", "result/result_bs4_summary.json"),  # Wseg's line
        ("out", "data/bin_out", "out/data/bin_out", "out/data/bin_out_summary.json"),
        ("out", "bs1_out/", "out/bs1_out/", "out/bs1_out/_summary.json"),
    ],
)
def test_prefix_and_summary_are_ais_bench_text_joins(output, dirname, prefix, summary):
    assert output_prefix(output, check_output_dirname(dirname)) == prefix
    assert summary_path(prefix) == summary
    assert device_dirname(dirname, 3, 1) == os.path.join(dirname, "device3_1")


@pytest.mark.parametrize(
    ("dirname", "message"),
    [
        ("/abs", "absolute path is refused"),
        ("~user/x", "absolute path is refused"),
        ("..", "'..' would climb out"),
        ("a/../../b", "'..' would climb out"),
        ("a/..", "'..' would climb out"),
        ("a\nb", "without control characters"),
        ("", "non-empty"),
    ],
)
def test_dirnames_that_leave_output_are_refused(dirname, message):
    with pytest.raises(InputError, match=message):
        check_output_dirname(dirname)


@given(st.lists(st.sampled_from(["a", "b_1", ".", "x.y"]), min_size=1, max_size=4))
def test_relative_dirnames_without_dotdot_stay_under_output(parts):
    dirname = "/".join(parts)
    prefix = output_prefix("out", check_output_dirname(dirname))
    assert os.path.normpath(prefix) == "out" or os.path.normpath(prefix).startswith("out" + os.sep)


def test_input_texts_keep_the_input_entry_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("prep").mkdir()
    files = [Path("prep/a.bin"), Path("prep/b.bin")]
    for f in files:
        f.write_bytes(b"\0" * 4)
    assert input_texts(["./prep/"], [files]) == {files[0]: "./prep/a.bin", files[1]: "./prep/b.bin"}
    assert input_texts(["./prep/a.bin", "prep//b.bin"], [[files[0]], [files[1]]]) == {
        files[0]: "./prep/a.bin",
        files[1]: "prep//b.bin",
    }


def test_split_for_devices_follows_ais_bench_ceil_chunks():
    first = [Path(f"x{i}") for i in range(5)]
    second = [Path(f"y{i}") for i in range(5)]
    shares = split_for_devices([first, second], 2)
    assert shares == [first[:3] + second[:3], first[3:] + second[3:]]
    assert split_for_devices([first], 4)[-1] == []  # ceil(5/4) = 2: 2, 2, 1, 0 (the caller refuses)
