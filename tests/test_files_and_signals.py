"""Writes that never replace what they must not, never leave partial files, and survive signals.

Signals are real: a real ``graphkit apply`` subprocess gets SIGTERM/SIGINT at chosen moments
(start-up imports, while the model file is being written, at fixed delays).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ir.model_io import save_model
from graphkit.pipeline.demo_model import demo_model
from graphkit.util.errors import OutputError
from graphkit.util.files import atomic_path, write_text_atomic


def leftovers(root: Path) -> list[Path]:
    """Temporary files or folders of an atomic write (current and former naming)."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".graphkit-")]


# --- targets that are not regular files ---------------------------------------------------------


def test_fifo_socket_and_folder_targets_are_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match=r"fifo: is a FIFO \(named pipe\), not a regular file"):
        write_text_atomic(fifo, "x")
    assert fifo.is_fifo()
    sock_path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        with pytest.raises(OutputError, match="is a socket"):
            save_model(demo_model(), sock_path)
        assert sock_path.is_socket()
    finally:
        server.close()
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        save_model(demo_model(), folder)
    assert leftovers(tmp_path) == []


def test_symlink_to_a_device_is_refused(tmp_path, device):
    link = tmp_path / "out.onnx"
    link.symlink_to(device)
    with pytest.raises(OutputError, match="is a character device"):
        save_model(demo_model(), link)
    assert link.is_symlink() and device.is_char_device()


@pytest.fixture
def device(tmp_path) -> Path:
    """A character device node like /dev/full, made in tmp_path: a test of old code must not
    get the chance to replace the machine's real /dev/full (it did)."""
    node = tmp_path / "full"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return node


def test_cli_export_to_a_device_is_one_line_and_keeps_the_device(cli, device):
    result = cli("export", "-o", device, "--width", "0.03125", "--input-size", "32", "32")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"graphkit: error: {device}: is a character device, not a regular file; graphkit only replaces regular files"
    ]
    assert device.is_char_device()


def test_cli_diff_html_to_a_fifo_is_refused(tmp_path, cli):
    model = tmp_path / "m.onnx"
    save_model(demo_model(), model)
    fifo = tmp_path / "page.html"
    os.mkfifo(fifo)
    result = cli("diff", model, model, "--html", fifo)
    assert result.returncode == 2, result.stderr
    assert "is a FIFO" in result.stderr and "Traceback" not in result.stderr
    assert fifo.is_fifo()


# --- unwritable places --------------------------------------------------------------------------


def test_path_under_a_file_is_one_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="a parent of it is a file"):
        save_model(demo_model(), tmp_path / "file" / "m.onnx")
    with pytest.raises(OutputError, match="sub/r.json: cannot write: a parent of it is a file"):
        write_text_atomic(tmp_path / "file" / "sub" / "r.json", "{}")


def test_proc_is_refused_with_one_error():
    with pytest.raises(OutputError, match="/proc/graphkit-test"):
        write_text_atomic("/proc/graphkit-test/report.json", "{}")


def test_read_only_mount_is_one_error_and_nothing_written(tmp_path):
    """Root ignores permission bits, so the read-only place is a read-only bind mount."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {mounted.stderr.decode().strip()}")
    try:
        if os.access(folder, os.W_OK) and _writable(folder):
            pytest.skip("the bind mount did not become read-only")
        with pytest.raises(OutputError, match="Read-only file system"):
            save_model(demo_model(), folder / "m.onnx")
        assert list(folder.iterdir()) == []
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_immutable_folder_is_one_error_and_nothing_written(tmp_path):
    folder = tmp_path / "frozen"
    folder.mkdir()
    frozen = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if frozen.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {frozen.stderr.decode().strip()}")
    try:
        with pytest.raises(OutputError, match="Operation not permitted"):
            write_text_atomic(folder / "report.json", "{}")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert list(folder.iterdir()) == []


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def test_writer_failure_leaves_nothing_and_the_old_file_intact(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_text_is_written_as_utf8_whatever_the_locale(tmp_path):
    from graphkit.util.files import write_text_atomic as write_text

    path = write_text(tmp_path / "metrics.txt", "mIoU ± 0.1 — café")
    assert path.read_bytes() == "mIoU ± 0.1 — café".encode()


# --- signals ------------------------------------------------------------------------------------


def big_model(path: Path) -> Path:
    """A 64 MiB model (one big initializer) so that saving it takes a noticeable moment."""
    weights = numpy_helper.from_array(np.full(16 * 2**20, 1e-7, dtype=np.float32), "w")
    nodes = [helper.make_node("ReduceSum", ["w"], ["s"], keepdims=1), helper.make_node("Add", ["x", "s"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def big_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    source = big_model(root / "big.onnx")
    golden = root / "golden"

    def make(run_dir: Path) -> Path:
        path = run_dir.parent / f"{run_dir.name}.yaml"
        path.write_text(
            f"name: big\nsource: {{onnx: {source}}}\ngolden: {{dir: {golden}, batch_sizes: [1, 2]}}\n"
            f"output: {{dir: {run_dir}}}\npasses: [eliminate-noops]\n"
        )
        return path

    return make


def start_apply(pipeline: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "graphkit", "apply", str(pipeline)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GRAPHKIT_NO_PROGRESS": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, even under nohup
    )


def wait_until(condition, process: subprocess.Popen, what: str, limit: float = 120.0) -> bool:
    """Poll ``condition`` until true; False if the process ended first."""
    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)
    return True


def catches_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (graphkit's CLI does first thing)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def assert_clean_interrupt(process: subprocess.Popen, signum: int, root: Path) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        "graphkit: terminated" if signum == signal.SIGTERM else "graphkit: interrupted"
    )
    assert leftovers(root) == [], "temporary files were left behind"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_the_model_is_being_written_leaves_no_temporary_file(tmp_path, big_pipeline, signum):
    run_dir = tmp_path / "run"
    process = start_apply(big_pipeline(run_dir))
    saving = wait_until(
        lambda: any(p.name.startswith(".model.onnx.") for p in run_dir.glob(".*")), process, "the model's save"
    )
    assert saving, f"the run ended before its model was written: {process.communicate()}"
    process.send_signal(signum)
    assert_clean_interrupt(process, signum, tmp_path)
    if (run_dir / "model.onnx").exists():  # only if this test was descheduled past the whole write
        assert onnx.load(run_dir / "model.onnx").graph.initializer[0].dims == [16 * 2**20]


def test_sigterm_during_start_up_imports_is_clean(tmp_path, big_pipeline):
    process = start_apply(big_pipeline(tmp_path / "run"))
    assert wait_until(lambda: catches_sigterm(process.pid), process, "the SIGTERM handler")
    process.send_signal(signal.SIGTERM)
    assert_clean_interrupt(process, signal.SIGTERM, tmp_path)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.0, 1.5])
def test_sigterm_at_any_moment_leaves_complete_files_only(tmp_path, big_pipeline, delay):
    """Wherever the signal lands (imports, golden, passes, save, report), the exit is 143 and clean."""
    run_dir = tmp_path / "run"
    process = start_apply(big_pipeline(run_dir))
    if wait_until(lambda: catches_sigterm(process.pid), process, "the SIGTERM handler"):
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, 143, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr, stderr
    assert leftovers(tmp_path) == []
    if process.returncode == -signal.SIGTERM:  # the default action: only once the command had finished
        assert json.loads((run_dir / "report.json").read_text())["status"] == "ok"
    if (run_dir / "model.onnx").exists():  # written whole or not at all
        assert onnx.load(run_dir / "model.onnx").graph.initializer[0].dims == [16 * 2**20]


def test_deferred_block_finishes_before_the_signal_is_raised():
    from graphkit.util.signals import Terminated, deferred, handle_signals, received

    steps, before = [], signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), handle_signals():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now, and only recorded the signal
            steps.append("finished")
        steps.append("after")  # never reached: raised as the deferred block ends
    assert steps == ["finished"] and received() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


def test_full_disk_during_golden_make_is_one_line_and_leaves_no_partial_file(tmp_path, cli):
    """A 16 KiB tmpfs fills up while the golden cases are written (root can mount one here)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        model = save_model(demo_model(), tmp_path / "m.onnx")
        result = cli("golden", "make", model, "-o", disk / "golden", "--batch-sizes", "1,2")
        assert result.returncode == 2, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"graphkit: error: {disk / 'golden'}: cannot write the golden set") and last.endswith(
            "(No space left on device); no set was written"
        )
        assert "Traceback" not in result.stderr
        assert leftovers(disk) == []
        assert not (disk / "golden" / "manifest.json").exists()  # an incomplete set is never reusable
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_signal_after_the_command_finished_never_kills_the_process(tmp_path):
    """Found by the fuzz harness: SIGINT/SIGTERM while the interpreter shut down (torch tearing
    down, with the handlers reset by Python's finalization) killed the process (-2/-15)."""
    import signal as signals

    command = [sys.executable, "-m", "graphkit", "export", "-o", "out/m.onnx", "--width", "0.03125"]
    command += ["--input-size", "32", "32"]
    for signum in (signals.SIGINT, signals.SIGTERM):
        child = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL),
        )
        for line in child.stdout:  # the last line is printed once the model is written
            if line.startswith("wrote "):
                os.killpg(child.pid, signum)
                break
        child.communicate(timeout=120)
        assert child.returncode in (0, 128 + signum), child.returncode  # never death by the signal
        assert (tmp_path / "out" / "m.onnx").is_file()


def test_the_console_script_runs_atexit_functions_and_exits_with_mains_code(tmp_path):
    code = (
        "import atexit, sys; sys.argv = ['graphkit', 'passes'];"
        "atexit.register(lambda: print('atexit ran', flush=True));"
        "from graphkit.cli.main import console_main; console_main(); print('not reached')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "eliminate-noops" in result.stdout and "atexit ran" in result.stdout and "not reached" not in result.stdout


def test_a_signal_that_code_turns_into_its_own_error_is_still_the_interrupt(tmp_path):
    """Found by the fuzz harness: SIGTERM during onnxruntime's import became 'ImportError:
    initialization failed' and a traceback; a signal received is the interrupt, whatever it raised."""
    code = (
        "import os, signal, sys, time\n"
        "from graphkit.cli import main as cli\n"
        "def fake_main(argv):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
        "    except BaseException as exc:\n"
        "        raise ImportError('initialization failed') from exc\n"
        "cli._main = fake_main\n"
        "sys.exit(cli.main([]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip() == "graphkit: terminated"
