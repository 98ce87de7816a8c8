"""Pipeline YAML: typed schema, errors that name the file and key, overrides, round-trip."""

from __future__ import annotations

import pytest

from graphkit.pipeline.spec import build_passes, load_pipeline, parse_pipeline, spec_to_yaml
from graphkit.util.errors import PipelineSpecError

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
        (
            "name: t\npasses: []\n",
            "source: required key is missing; give it in the file (source: {onnx: MODEL.onnx}) or name the model with --input MODEL.onnx",
        ),
        ("name: t\nsource: {builtin: demo}\npasses: [[1]]\n", "passes[0]: expected a pass name"),
        ("- just\n- a list\n", "a pipeline must be a mapping"),
        ("name: t\nsource: {builtin: demo\n", "invalid YAML at line"),
        # found by the fuzz harness (seed 10): a NUL in a path reached os.path.realpath (ValueError)
        ('name: t\nsource: {builtin: demo}\ngolden: {dir: "model\\0.onnx"}\n', "golden.dir: holds a NUL character"),
        ('name: t\nsource: {builtin: demo}\noutput: {dir: "o\\0ut"}\n', "output.dir: holds a NUL character"),
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


# --- paths that must stay in their folder -------------------------------------------------------

DEMO = "source: {builtin: demo}\n"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "../../escape"),
        ("name", "/abs"),
        ("name", "a/b"),
        ("name", ".."),
        ("name", ".hidden"),
        ("name", "'a\\nb'"),
        ("name", '"a\\\\b"'),
        ("name", "''"),
        ("output.model", "../../x.onnx"),
        ("output.model", "/tmp/x.onnx"),
        ("output.model", "sub/model.onnx"),
        ("output.model", "'..'"),
        ("output.model", '"m\\0.onnx"'),
    ],
)
def test_names_that_would_leave_their_folder_are_refused(tmp_path, field, value):
    if field == "name":
        text = f"name: {value}\n{DEMO}"
    else:
        text = f"name: t\n{DEMO}output: {{model: {value}}}\n"
    with pytest.raises(PipelineSpecError, match=rf"p.yaml: {field}: must be a plain name"):
        load_pipeline(write(tmp_path, text))


def test_plain_names_are_accepted_and_output_dir_only_substitutes_name(tmp_path):
    spec = load_pipeline(
        write(tmp_path, f"name: wseg_310p-v1.2\n{DEMO}output: {{dir: 'out/{{name}}/{{0}}', model: m+fp16.onnx}}\n")
    )
    assert str(spec.run_dir()) == "out/wseg_310p-v1.2/{0}"  # no str.format: {0} or {x.y} are plain text
    assert spec.output.model == "m+fp16.onnx"


# --- YAML within limits -------------------------------------------------------------------------


def billion_laughs(levels: int = 9, where: str = "perf") -> str:
    lines = ["name: t", DEMO.strip(), f"{where}:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("section", ["perf", "eval", "handoff", "golden"])
def test_alias_bomb_is_refused_in_any_section(tmp_path, section):
    with pytest.raises(PipelineSpecError, match="YAML aliases expand to more than 100000 values"):
        load_pipeline(write(tmp_path, billion_laughs(where=section)))


def test_many_aliases_and_recursive_aliases_are_refused(tmp_path):
    many = "name: t\n" + DEMO + "perf:\n  a: &a 1\n  b: [" + ",".join(["*a"] * 1001) + "]\n"
    with pytest.raises(PipelineSpecError, match="more than 1000 aliases"):
        load_pipeline(write(tmp_path, many))
    recursive = "name: t\n" + DEMO + "perf: &p\n  self: *p\n"
    with pytest.raises(PipelineSpecError, match="recursive"):
        load_pipeline(write(tmp_path, recursive))


def test_small_aliases_still_work(tmp_path):
    text = "name: t\n" + DEMO + "golden:\n  tolerance: &tol {atol: 1.0e-5, rtol: 0.0}\n  outputs: {prob: *tol}\n"
    spec = load_pipeline(write(tmp_path, text))
    assert spec.golden.outputs["prob"].atol == 1e-5


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000])
def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path, nested):
    with pytest.raises(PipelineSpecError, match="nested more than 64 levels deep"):
        load_pipeline(write(tmp_path, f"name: t\n{DEMO}perf: {nested}\n"))


def test_messages_never_print_an_expanded_structure(tmp_path):
    text = billion_laughs(levels=4) + "golden: {seed: *l3}\n"  # 6561 'lol's, under the expansion limit
    with pytest.raises(PipelineSpecError) as error:
        load_pipeline(write(tmp_path, text))
    assert len(str(error.value)) < 400
    huge = "name: t\n" + DEMO + "golden: {seed: '" + "9" * 100_000 + "'}\n"
    with pytest.raises(PipelineSpecError) as error:
        load_pipeline(write(tmp_path, huge))
    assert "golden.seed: expected int" in str(error.value) and len(str(error.value)) < 400


def test_huge_integer_and_non_utf8_and_non_regular_files_are_one_error(tmp_path):
    with pytest.raises(PipelineSpecError, match="invalid YAML value"):
        load_pipeline(write(tmp_path, "name: t\n" + DEMO + "golden: {seed: " + "9" * 5000 + "}\n"))
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(PipelineSpecError, match="not UTF-8"):
        load_pipeline(tmp_path / "latin1.yaml")
    with pytest.raises(PipelineSpecError, match="not a regular file"):
        load_pipeline("/dev/zero")
    with pytest.raises(PipelineSpecError, match="is a folder"):
        load_pipeline(tmp_path)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("name=a\nb", "name: must be a plain name"),
        ("golden.seed=" + "1" * 100_000, "invalid YAML value"),
        ("golden.seed=[1, 2]", "golden.seed: expected int, got a list"),
        ("golden..seed=1", "expected a dotted key path"),
        ("golden.\nseed=1", "expected a dotted key path"),
        ("." * 100 + "=1", "expected a dotted key path"),
        ("perf=" + "[" * 100 + "]" * 100, "nested more than 64 levels deep"),
        ("output.model=../x.onnx", "output.model: must be a plain name"),
    ],
)
def test_hostile_set_values_are_one_clear_error(tmp_path, override, expected):
    with pytest.raises(PipelineSpecError, match=expected) as error:
        load_pipeline(write(tmp_path, "name: t\n" + DEMO), [override])
    assert "\n" not in str(error.value).replace("a\nb", "") and len(str(error.value)) < 600


@pytest.mark.parametrize(
    ("passes", "expected"),
    [
        ("[{fix-input-shape: {batch: -1}}]", "fix-input-shape option batch must be a positive integer, got -1"),
        ("[{fix-input-shape: {shapes: {x: [1, 0, 16, 16]}}}]", "dims must be positive"),
        ("[{fold-shapes: {size_limit_bytes: -5}}]", "size_limit_bytes must be >= 0"),
        ("[{fold-shapes: {max_rounds: 0}}]", "max_rounds must be >= 1"),
        ("[{dynamic-batch: {name: ''}}]", "name must be a non-empty printable name"),
        ("[{convert-opset: {target: 0}}]", "opset 0 is outside"),
    ],
)
def test_bad_pass_option_values_are_spec_errors_naming_the_pass(tmp_path, passes, expected):
    spec = load_pipeline(write(tmp_path, f"name: t\n{DEMO}passes: {passes}\n"))
    with pytest.raises(PipelineSpecError, match=expected) as error:
        build_passes(spec, "p.yaml")
    assert str(error.value).startswith("p.yaml: passes[0]")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("{model: report.json}", "output.model: 'report.json' is a file or folder of the run itself"),
        ("{model: diffs}", "output.model: 'diffs' is a file or folder of the run itself"),
        ("{dir: ''}", "output.dir: must not be empty"),
    ],
)
def test_outputs_that_collide_with_the_run_are_refused(tmp_path, output, expected):
    with pytest.raises(PipelineSpecError, match=expected):
        load_pipeline(write(tmp_path, f"name: t\n{DEMO}output: {output}\n"))


def test_eval_spec_file_is_read_within_the_same_limits(tmp_path, cli):
    import os

    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    result = cli("eval", tmp_path / "m.onnx", "--spec", fifo, "--out", tmp_path / "o", timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"graphkit: error: {fifo}: not a regular file (a device, FIFO or socket)\n"
    bomb = write(tmp_path, billion_laughs(where="eval"), "bomb.yaml")
    result = cli("eval", tmp_path / "m.onnx", "--spec", bomb, "--out", tmp_path / "o", timeout=60)
    assert result.returncode == 2 and "YAML aliases expand to more than 100000 values" in result.stderr


def test_a_key_given_twice_is_an_error(tmp_path):
    """Found by the fuzz harness: PyYAML kept the last of two 'name'/'source' keys silently."""
    with pytest.raises(PipelineSpecError, match=r"key 'name' is given twice \(line 2\)"):
        load_pipeline(write(tmp_path, "name: x\nname: y\n" + DEMO))
    with pytest.raises(PipelineSpecError, match="key 'atol' is given twice"):
        load_pipeline(write(tmp_path, "name: t\n" + DEMO + "golden:\n  tolerance: {atol: 1.0e-5, atol: 1.0}\n"))
    merged = "name: t\n" + DEMO + "golden:\n  tolerance: &t {atol: 1.0e-5, rtol: 0.0}\n  outputs: {prob: {<<: *t}}\n"
    assert load_pipeline(write(tmp_path, merged)).golden.outputs["prob"].atol == 1e-5  # merge keys still work
