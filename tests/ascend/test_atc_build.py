"""graphkit.ascend.build and run_handoff against a fake ``atc`` written by the tests.

ATC itself is not available here: these tests put a small executable named ``atc`` on the
subprocess PATH that behaves like ATC (see conftest.py). They check everything up to the
process boundary: argv, streaming, success detection, OM discovery, error-code hints.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graphkit.ascend import AtcSpec, HandoffError, run_handoff
from graphkit.ascend.build import KNOWN_ERRORS, build_plan, find_om
from graphkit.ascend.command_lines import plan_commands, write_plan
from graphkit.ir.model_io import load_model
from graphkit.util.errors import ToolNotFoundError


def _plan(model_path, out, **spec):
    return write_plan(plan_commands(load_model(model_path), AtcSpec(**spec), model_path), out)


@pytest.mark.parametrize(("mode", "suffix"), [("success", ".om"), ("success_suffix", "_linux_x86_64.om")])
def test_success_finds_the_om(clean_export, tmp_path, mode, suffix, fake_atc):
    tool = fake_atc.write(tmp_path / "bin")
    calls = tmp_path / "calls.jsonl"
    plan = _plan(clean_export, tmp_path / "atc", batch_sizes=[1, 4], dynamic_batch_sizes=[1, 4])
    lines = []
    results = build_plan(plan, env=fake_atc.env(tool.parent, mode, calls), on_line=lines.append)
    assert [r.success for r in results] == [True, True, True]
    assert [r.om for r in results] == [
        str(tmp_path / "atc" / f"{name}{suffix}") for name in ("wseg_bs1", "wseg_bs4", "wseg_dynbs")
    ]
    assert any("ATC run success" in line for line in lines)
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [c.args for c in plan.commands]
    log = (tmp_path / "atc" / "wseg_bs1.log").read_text()
    assert "ATC run success" in log


@pytest.mark.parametrize("code", sorted(KNOWN_ERRORS))
def test_each_known_error_code_gets_a_hint(clean_export, tmp_path, code, fake_atc):
    tool = fake_atc.write(tmp_path / "bin")
    plan = _plan(clean_export, tmp_path / "atc", batch_sizes=[1])
    (result,) = build_plan(plan, env=fake_atc.env(tool.parent, f"error:{code}"))
    assert not result.success and result.returncode == 1 and result.om is None
    assert [e.code for e in result.errors] == [code]
    assert result.errors[0].hint == KNOWN_ERRORS[code][1] and result.errors[0].hint


def test_unknown_error_code_is_listed_without_hint(clean_export, tmp_path, fake_atc):
    tool = fake_atc.write(tmp_path / "bin")
    (result,) = build_plan(
        _plan(clean_export, tmp_path / "atc", batch_sizes=[1]), env=fake_atc.env(tool.parent, "error:E99999")
    )
    assert result.errors[0].code == "E99999" and result.errors[0].hint == ""


@pytest.mark.parametrize(("mode", "reason"), [("no_marker", "did not print"), ("no_om", "no wseg_bs1.om")])
def test_exit_0_is_not_enough(clean_export, tmp_path, mode, reason, fake_atc):
    tool = fake_atc.write(tmp_path / "bin")
    (result,) = build_plan(_plan(clean_export, tmp_path / "atc", batch_sizes=[1]), env=fake_atc.env(tool.parent, mode))
    assert result.returncode == 0 and not result.success and reason in result.reason


def test_stale_or_foreign_om_is_not_taken(tmp_path):
    (tmp_path / "wseg_bs16.om").write_bytes(b"x")
    (tmp_path / "wseg_bs1_extra.om").write_bytes(b"x")
    assert find_om(tmp_path, "wseg_bs1") is None
    (tmp_path / "wseg_bs1_linux_aarch64.om").write_bytes(b"x")
    assert find_om(tmp_path, "wseg_bs1").name == "wseg_bs1_linux_aarch64.om"
    assert find_om(tmp_path, "wseg_bs1", since=4e9) is None


def test_missing_atc_names_the_script(clean_export, tmp_path, fake_atc):
    plan = _plan(clean_export, tmp_path / "atc", batch_sizes=[1])
    with pytest.raises(ToolNotFoundError, match="atc_commands.sh"):
        build_plan(plan, env=fake_atc.env_without())


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "graphkit", "atc", *args], capture_output=True, text=True, env=env)


def test_cli_build_without_atc_exits_2_with_one_line(clean_export, tmp_path, fake_atc):
    result = _cli(["build", str(clean_export), "--output", str(tmp_path / "atc")], fake_atc.env_without())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "atc not found" in result.stderr and "atc_commands.sh" in result.stderr


def test_cli_build_success_and_failure(clean_export, tmp_path, fake_atc):
    tool = fake_atc.write(tmp_path / "bin")
    ok = _cli(
        ["build", str(clean_export), "--output", str(tmp_path / "a"), "--json"],
        fake_atc.env(tool.parent, "success_suffix"),
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["om"].endswith("wseg_bs1_linux_x86_64.om")
    bad = _cli(["build", str(clean_export), "--output", str(tmp_path / "b")], fake_atc.env(tool.parent, "error:EZ3003"))
    assert bad.returncode == 1
    assert "EZ3003" in bad.stdout and KNOWN_ERRORS["EZ3003"][1] in bad.stdout


def test_run_handoff_summary(clean_export, modelzoo_fix, tmp_path, monkeypatch, fake_atc):
    summary = run_handoff(AtcSpec(batch_sizes=[1, 4], dynamic_batch_sizes=[1, 4, 8, 16]), clean_export, tmp_path / "h")
    assert summary["precheck"]["counts"]["error"] == 0
    assert summary["build"] is None and len(summary["commands"]) == 3
    assert json.loads(json.dumps(summary)) == summary
    for key in ("script", "manifest"):
        assert (tmp_path / "h" / summary[key].rsplit("/", 1)[1]).exists()
    assert (tmp_path / "h" / "precheck.json").exists()

    flagged = run_handoff(AtcSpec(batch_sizes=[1]), modelzoo_fix, tmp_path / "f")
    assert flagged["precheck"]["counts"]["error"] == 1
    with pytest.raises(HandoffError, match="softmax-axis"):
        run_handoff(AtcSpec(batch_sizes=[1], fail_on_error=True), modelzoo_fix, tmp_path / "g")

    tool = fake_atc.write(tmp_path / "bin")
    for key, value in fake_atc.env(tool.parent, "success").items():
        monkeypatch.setenv(key, value)
    built = run_handoff(AtcSpec(batch_sizes=[1], build=True), clean_export, tmp_path / "b")
    assert built["build"][0]["success"] and built["build"][0]["om"].endswith("wseg_bs1.om")
    assert (tmp_path / "b" / "build.json").exists()
