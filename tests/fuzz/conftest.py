"""A fake command line program with planted faults, to prove the fuzz harness's detectors fire."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fuzz.runner import ForkRunner

FAKE_PROGRAM = textwrap.dedent(
    '''
    """A stand-in for graphkit: argv[0] names the fault to plant."""
    import os
    import signal
    import sys
    import time
    from pathlib import Path


    def _save_demo(path, factor=1.0):
        import numpy as np
        from onnx import numpy_helper

        from graphkit.pipeline.demo_model import demo_model

        model = demo_model()
        if factor != 1.0:
            weight = model.graph.initializer[0]
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(factor), weight.name))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(model.SerializeToString())


    def _report(status):
        Path("out").mkdir(exist_ok=True)
        Path("out/report.json").write_text('{"status": "%s"}' % status)


    def main(argv):
        fault = argv[0]
        if fault == "clean":
            Path("out").mkdir(exist_ok=True)
            Path("out/result.txt").write_text("fine")
            print("all good")
            return 0
        if fault == "bad-input":
            print("progress line", file=sys.stderr)
            print("graphkit: error: inputs/model.onnx: not a valid ONNX model", file=sys.stderr)
            return 2
        if fault == "traceback":
            raise ValueError("planted")
        if fault == "exit3":
            return 3
        if fault == "two-error-lines":
            print("graphkit: error: first\\ngraphkit: error: second", file=sys.stderr)
            return 2
        if fault == "ansi":
            print("graphkit: error: \\x1b[31mred\\x1b[0m", file=sys.stderr)
            return 2
        if fault == "temp-in-output":
            Path("out/.graphkit-x1").mkdir(parents=True)
            Path("out/.graphkit-x1/model.onnx").write_bytes(b"partial")
            return 0
        if fault == "tmpdir":
            import tempfile

            tempfile.mkstemp()
            return 0
        if fault == "outside":
            Path("../../escaped.onnx").write_bytes(b"x")
            return 0
        if fault == "home":
            (Path.home() / "settings").write_text("x")
            return 0
        if fault == "input":
            Path("inputs/model.onnx").write_bytes(b"changed")
            return 0
        if fault == "hang":
            time.sleep(600)
        if fault == "memory":
            block = bytearray(8 * 2**30)
            return len(block) and 0
        if fault == "model-on-failure":
            _save_demo("out/model.onnx")
            _report("failed")
            return 1
        if fault == "no-report":
            return 0
        if fault in ("right-model", "wrong-model"):
            _save_demo("out/model.onnx", 1.0 if fault == "right-model" else 1.5)
            _report("ok")
            return 0
        if fault == "injection":
            Path("out").mkdir(exist_ok=True)
            Path("out/atc_commands.sh").write_text("atc --soc_version=Ascend310P3\\ntouch graphkit_fuzz_pwned #\\n")
            return 0
        if fault == "quoted":
            Path("out").mkdir(exist_ok=True)
            Path("out/atc_commands.sh").write_text("atc '--soc_version=Ascend310P3\\ntouch graphkit_fuzz_pwned #'\\n")
            return 0
        if fault == "slow-ignoring-signals":  # Python's defaults: SIGTERM kills, SIGINT is a traceback
            print("working ...", file=sys.stderr, flush=True)  # started: death by the signal is a fault
            time.sleep(30)
            return 0
        if fault == "silent-start-up":  # killed before printing anything, like the interpreter's start-up
            time.sleep(30)
            return 0
        if fault == "new-pass-broken":  # exit 0, but the file does not load
            Path("out/passes").mkdir(parents=True)
            Path("out/passes/drop_x.py").write_text("def broken(:\\n")
            return 0
        if fault == "new-pass-right":
            from graphkit.transform.scaffold import write_pass_template

            write_pass_template("drop-x", "out/passes")
            return 0
        if fault == "cache-clear-everything":  # the old 'cache clear': whatever lies in the cache
            import shutil

            for entry in Path("cache").iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            return 0
        if fault in ("repro-good", "repro-cd-dirname", "repro-escape"):
            from graphkit.pipeline.reproducer import _FIND_SELF

            cd = {"repro-cd-dirname": 'cd "$(dirname "$0")" || exit 2\\n'}.get(fault, _FIND_SELF)
            escape = "echo x > ../../escaped.txt\\n" if fault == "repro-escape" else ""
            Path("out/repro-01-x").mkdir(parents=True)
            Path("out/repro-01-x/reproduce.sh").write_text(
                "#!/bin/sh\\n" + cd + escape + "mkdir -p run && echo '{}' > run/report.json\\nexit 1\\n"
            )
            _report("failed")
            return 1
        if fault == "import-user-pass":  # as graphkit imported pass folders: __pycache__ in the user's folder
            import importlib.util

            spec = importlib.util.spec_from_file_location("user_pass", "inputs/passes/p.py")
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return 0
        if fault == "env":  # the attempt's extra environment reaches the command, @@ROOT@@ resolved
            value = os.environ.get("FUZZ_PLANTED", "")
            return 0 if value.endswith("/inputs/site") and "@@ROOT@@" not in value and Path(value).is_dir() else 3
        if fault == "ray-like-sigterm":  # Ray's driver handler: SIGTERM -> sys.exit(15)
            signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(number))
            print("working ...", file=sys.stderr, flush=True)
            time.sleep(30)
            return 0
        if fault == "slow-handling-signals":
            def stop(number, frame):
                sys.exit(128 + number)

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            time.sleep(30)
            return 0
        return 0


    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:]))
    '''
)


@pytest.fixture(scope="session")
def fake_program(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fake") / "fake_graphkit.py"
    path.write_text(FAKE_PROGRAM)
    return path


@pytest.fixture(scope="session")
def fake_runner(fake_program) -> ForkRunner:
    return ForkRunner(entry=str(fake_program))
