"""Size of graphkit's core install (no extras) against the install with every dependency the
package required before issue 25 (scipy, pillow, matplotlib), in fresh virtual environments built
in the same run from the same package sources (PyPI or the local wheel cache).

Prints JSON: MB of site-packages for each, the packages each pulled in, and the ratio.
Target: the core install under 250 MB. Needs network access to the package index (or a cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_EXTRAS = ["scipy>=1.11", "pillow>=10", "matplotlib>=3.8"]


def site_packages_mb(venv: Path) -> float:
    site = next(venv.glob("lib/python*/site-packages"))
    total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 2**20


def build(venv: Path, packages: list[str]) -> tuple[float, list[str]]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    subprocess.run([*pip, "install", "-q", "--disable-pip-version-check", *packages], check=True)
    baseline = site_packages_mb(venv)
    frozen = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True, check=True).stdout
    return baseline, sorted(line.split("==")[0] for line in frozen.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        core_mb, core_packages = build(Path(tmp) / "core", [str(ROOT)])
        old_mb, old_packages = build(Path(tmp) / "old", [str(ROOT), *OLD_EXTRAS])
    print(
        json.dumps(
            {
                "core_install_mb": round(core_mb, 1),
                "with_scipy_pillow_matplotlib_mb": round(old_mb, 1),
                "ratio": round(core_mb / old_mb, 3),
                "core_packages": core_packages,
                "target_mb": 250,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
