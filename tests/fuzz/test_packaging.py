"""The product boundary: the fuzz harness is a dev tool beside the package, never in the wheel."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _wheel_files(tmp_path: Path) -> list[str]:
    """Build the wheel from a copy of what the build reads (no network, no build folder in the checkout)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("graphkit", "passes", "fuzz"):  # fuzz copied too: the packages list must leave it out
        shutil.copytree(ROOT / folder, source / folder, ignore=skip)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_wheel_holds_the_product_and_no_fuzz_code(tmp_path):
    files = _wheel_files(tmp_path)
    assert "graphkit/cli/main.py" in files and any(f.startswith("graphkit_passes/") for f in files)
    fuzz_files = [f for f in files if "fuzz" in f.split("/")[0] or "/fuzz/" in f]
    assert fuzz_files == []
    harness_only = "def signal_attempt("  # a function only the harness defines
    assert harness_only in (ROOT / "fuzz" / "attempt_builders.py").read_text()
    wheel = zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl")))
    assert not any(harness_only in wheel.read(f).decode("utf-8", "replace") for f in files if f.endswith(".py"))


def test_harness_runs_from_the_checkout():
    result = subprocess.run([sys.executable, "-m", "fuzz", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "--attempts" in result.stdout
