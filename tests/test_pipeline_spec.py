"""Pipeline YAML: typed schema, errors that name the file and key, overrides, round-trip."""

from __future__ import annotations

import pytest

from graphkit.errors import PipelineSpecError
from graphkit.pipeline import build_passes, load_pipeline, parse_pipeline, spec_to_yaml

GOOD = """
name: t
source: {builtin: demo}
golden: {batch_sizes: [1, 2], tolerance: {atol: 1e-6, rtol: 0}}
passes:
  - drop-identity
  - break-relu: {factor: 3}
  - name: drop-identity
    options: {}
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_pipeline_types_every_field(tmp_path, user_pass_dir):
    spec = load_pipeline(write(tmp_path, GOOD + f"pass_dirs: [{user_pass_dir}]\n"))
    assert spec.golden.batch_sizes == [1, 2]
    assert spec.golden.tolerance.atol == 1e-6 and isinstance(spec.golden.tolerance.atol, float)
    passes = build_passes(spec)
    assert [p.name for p in passes] == ["drop-identity", "break-relu", "drop-identity"]
    assert passes[1].options.factor == 3.0


def test_round_trip_yaml_gives_equal_spec(tmp_path, user_pass_dir):
    spec = load_pipeline(write(tmp_path, GOOD))
    again = load_pipeline(write(tmp_path, spec_to_yaml(spec), "again.yaml"))
    assert again == spec


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "name: t\nsource: {builtin: demo}\ngolden: {batch_size: [1]}\n",
            "golden: unknown key 'batch_size' (did you mean: batch_sizes?)",
        ),
        ("name: t\nsource: {builtin: demo}\npasess: []\n", "unknown key 'pasess' (did you mean: passes"),
        ("name: t\nsource: {builtin: demo}\ngolden: {seed: one}\n", "golden.seed: expected int"),
        ("name: t\nsource: {builtin: demo}\ngolden: {tolerance: {atol: [1]}}\n", "golden.tolerance.atol"),
        ("name: t\nsource: {builtin: demo}\non_failure: maybe\n", "on_failure: expected one of 'stop', 'skip'"),
        ("name: t\nsource: {}\n", "give exactly one of onnx, export, builtin"),
        ("source: {builtin: demo}\n", "name: required key is missing"),
        ("name: t\nsource: {builtin: demo}\npasses: [[1]]\n", "passes[0]: expected a pass name"),
        ("- just\n- a list\n", "a pipeline must be a mapping"),
        ("name: t\nsource: {builtin: demo\n", "invalid YAML at line"),
    ],
)
def test_bad_pipelines_name_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(PipelineSpecError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert message.startswith(str(path)) and expected in message, message


def test_unknown_pass_lists_close_names(tmp_path, user_pass_dir):
    spec = load_pipeline(
        write(tmp_path, f"name: t\nsource: {{builtin: demo}}\npass_dirs: [{user_pass_dir}]\npasses: [drop-identiy]\n")
    )
    with pytest.raises(
        PipelineSpecError, match=r"passes\[0\]: unknown pass 'drop-identiy' \(did you mean: drop-identity"
    ):
        build_passes(spec, "p.yaml")


def test_wrong_option_type_names_option_and_expected_type(tmp_path, user_pass_dir):
    spec = load_pipeline(
        write(
            tmp_path,
            f"name: t\nsource: {{builtin: demo}}\npass_dirs: [{user_pass_dir}]\npasses: [{{break-relu: {{factor: big}}}}]\n",
        )
    )
    with pytest.raises(PipelineSpecError, match=r"break-relu\)\.options\.factor: expected float, got a string 'big'"):
        build_passes(spec, "p.yaml")
    spec = load_pipeline(
        write(
            tmp_path,
            f"name: t\nsource: {{builtin: demo}}\npass_dirs: [{user_pass_dir}]\npasses: [{{break-relu: {{fator: 1}}}}]\n",
        )
    )
    with pytest.raises(PipelineSpecError, match=r"unknown key 'fator' \(did you mean: factor\?\)"):
        build_passes(spec, "p.yaml")


def test_overrides_set_nested_fields_and_list_items(tmp_path):
    spec = load_pipeline(
        write(tmp_path, GOOD),
        ["golden.batch_sizes=[1, 4]", "passes.1.options.factor=5", "output.dir=elsewhere", "validate.localize=true"],
    )
    assert spec.golden.batch_sizes == [1, 4]
    assert spec.passes[1].options == {"factor": 5}
    assert spec.output.dir == "elsewhere" and spec.validate.localize is True


@pytest.mark.parametrize(
    "override, expected",
    [
        ("golden", "expected key.path=value"),
        ("passes.9.name=x", "not an index"),
        ("golden.seed=abc", "golden.seed: expected int"),
    ],
)
def test_bad_overrides_are_clear(tmp_path, override, expected):
    with pytest.raises(PipelineSpecError, match=expected.replace(".", r"\.")):
        load_pipeline(write(tmp_path, GOOD), [override])


def test_parse_pipeline_rejects_non_mapping():
    with pytest.raises(PipelineSpecError, match="mapping"):
        parse_pipeline("text")


def test_cli_bad_yaml_is_one_line_exit_2(tmp_path, cli):
    path = write(tmp_path, "name: t\nsource: {builtin: demo}\ngolden: {batch_size: [1]}\n")
    result = cli("apply", path, "--output", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "batch_size" in result.stderr and str(path) in result.stderr
    assert not (tmp_path / "run").exists()


def test_override_can_replace_the_whole_pass_list(tmp_path):
    spec = load_pipeline(write(tmp_path, GOOD), ["passes=[relu-as-max, {break-relu: {factor: 2}}]"])
    assert [(p.name, p.options) for p in spec.passes] == [("relu-as-max", {}), ("break-relu", {"factor": 2})]
