"""Issue 28 items 5-6, from the hostile side: ``graphkit cache clear`` removes only what graphkit
wrote, refuses a folder it did not create, and neither ``ls`` nor ``clear`` recurses."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from graphkit.check.golden import make_or_load_golden
from graphkit.check.validation_cache import ValidationCache
from graphkit.pipeline.demo_model import demo_model
from graphkit.util.user_cache import MARKER, prepare_cache_dir


def error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphkit: error: "), result.stderr
    return lines[0]


def project(folder: Path) -> Path:
    """A folder a user might point GRAPHKIT_CACHE at by mistake."""
    for name, text in {"docs/a.md": "# notes\n", "src/main.py": "print('hi')\n", "golden/keep.txt": "mine\n"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_clear_on_a_folder_graphkit_did_not_create_is_refused_and_nothing_is_removed(tmp_path, cli, monkeypatch):
    root = project(tmp_path / "myproject")
    monkeypatch.setenv("GRAPHKIT_CACHE", str(root))
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    for args in (["clear"], ["clear", root / "src"], ["clear", root / "docs" / "a.md"], ["ls"]):
        line = error_line(cli("cache", *args))
        assert f"{root}: not a graphkit cache" in line and "refused" in line
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    assert (root / "docs" / "a.md").read_text() == "# notes\n" and (root / "src" / "main.py").exists()


def filled_cache(root: Path) -> Path:
    """A cache graphkit wrote (a golden set, a validation entry), plus items it did not write."""
    golden_folder = prepare_cache_dir("golden") / "demo-0123"
    golden, _ = make_or_load_golden(demo_model(), golden_folder, batch_sizes=[1])
    ValidationCache(run="t").put(ValidationCache.key("golden", model="m"), {"passed": True, "cases": []})
    (root / "golden" / "notes.txt").write_text("a user's file\n")
    (root / "golden" / "mine").mkdir()
    (root / "golden" / "mine" / "a.md").write_text("x")
    (root / "golden" / "linked").symlink_to(root.parent / "outside", target_is_directory=True)
    (root.parent / "outside").mkdir()
    (root.parent / "outside" / "manifest.json").write_text("{}")
    (root / "validation" / "readme.md").write_text("x")
    return golden_folder


def test_clear_removes_graphkits_entries_and_leaves_everything_else(tmp_path, cli, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("GRAPHKIT_CACHE", str(root))
    golden_folder = filled_cache(root)
    assert (root / MARKER).read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    listing = json.loads(cli("cache", "ls", "--json").stdout)
    assert sorted(e["kind"] for e in listing["entries"]) == ["golden", "validation"]
    assert len(listing["left_alone"]) == 4
    for foreign in (root / "golden" / "notes.txt", root / "golden" / "mine", root / "golden" / "linked"):
        assert "not a cache entry graphkit wrote" in error_line(cli("cache", "clear", foreign))
    cleared = cli("cache", "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert "removed 2 entries" in cleared.stdout and "left alone: 4 item(s) graphkit did not write" in cleared.stdout
    assert not golden_folder.exists() and not list((root / "validation").glob("*.json"))
    assert (root / "validation" / "graphkit.key").exists()  # the cache's key is not an entry: it stays
    assert (root / "golden" / "notes.txt").exists() and (root / "golden" / "mine" / "a.md").exists()
    assert (root / "validation" / "readme.md").exists() and (root.parent / "outside" / "manifest.json").exists()


def test_a_golden_folder_holding_a_users_file_is_not_an_entry(tmp_path, cli, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("GRAPHKIT_CACHE", str(root))
    golden_folder = prepare_cache_dir("golden") / "demo-0123"
    make_or_load_golden(demo_model(), golden_folder, batch_sizes=[1])
    (golden_folder / "thesis.tex").write_text("years of work\n")
    cleared = cli("cache", "clear")
    assert cleared.returncode == 0 and "removed 0 entries" in cleared.stdout
    assert (golden_folder / "thesis.tex").exists() and (golden_folder / "manifest.json").exists()


def test_a_cache_made_before_the_tag_is_still_cleared(tmp_path, cli, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("GRAPHKIT_CACHE", str(root))
    make_or_load_golden(demo_model(), root / "golden" / "old-set", batch_sizes=[1])  # no tag written
    assert not (root / MARKER).exists()
    cleared = cli("cache", "clear")
    assert cleared.returncode == 0 and "removed 1 entries" in cleared.stdout, cleared.stderr


@pytest.mark.parametrize("command", [["ls"], ["ls", "--json"], ["clear"]])
def test_an_entry_nested_1100_folders_deep_is_neither_walked_nor_a_recursion_error(tmp_path, cli, monkeypatch, command):
    root = tmp_path / "c"
    monkeypatch.setenv("GRAPHKIT_CACHE", str(root))
    prepare_cache_dir("golden")
    deep = root / "golden" / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    try:  # 1,100 levels, created relative to each folder (no path-length limit)
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as handle:
            handle.write("x")
    finally:
        os.close(fd)
    try:
        result = cli("cache", *command)
        assert result.returncode == 0, result.stderr
        assert "RecursionError" not in result.stderr and "Traceback" not in result.stderr
        assert (deep / "d").is_dir()  # left alone
    finally:
        _flatten_away(deep)


def _flatten_away(deep: Path) -> None:
    """Remove the 1,100-level tree one level at a time (pytest's own cleanup recurses into it and
    ends in RecursionError): move d/d up beside d, drop the now shallow d, rename it back."""
    while (deep / "d").is_dir():
        if (deep / "d" / "d").is_dir():
            os.rename(deep / "d" / "d", deep / "next")
            shutil.rmtree(deep / "d")
            os.rename(deep / "next", deep / "d")
        else:
            shutil.rmtree(deep / "d")
