"""The fuzz generators: reproducible, covering every command and every input class of issue 10."""

from __future__ import annotations

import json

import onnx

from fuzz import goldens, models, pipelines, userpasses
from fuzz.attempt_builders import COMMANDS, make_attempt, signal_attempt
from fuzz.campaign import Result, Summary, reproducer, save_finding
from fuzz.choices import Choices
from fuzz.invariants import Violation
from fuzz.runner import Outcome
from graphkit.pipeline.demo_model import demo_model


def test_an_attempt_is_a_function_of_seed_and_index():
    for index in range(12):
        first, again = make_attempt(5, index), make_attempt(5, index)
        assert first.describe() == again.describe()
        assert first.files == again.files
    assert [make_attempt(5, i).argv for i in range(12)] != [make_attempt(6, i).argv for i in range(12)]
    assert signal_attempt(2, 3).describe() == signal_attempt(2, 3).describe()


def test_every_command_is_drawn():
    drawn = {make_attempt(0, i).command for i in range(250)}
    assert drawn == set(COMMANDS)
    assert {signal_attempt(0, i).command for i in range(40)} == {"apply", "golden make", "export"}


def test_invalid_graphs_listed_in_the_issue_are_generated():
    listed = {
        "cycle",
        "dangling-input",
        "duplicate-output-name",
        "unknown-op",
        "unknown-domain",
        "opset-99",
        "ir-version-999",
        "raw-data-length",
        "complex-input",
        "untyped-input",
        "sequence-input",
        "empty-op-type",
    }
    assert listed <= set(models.INVALID_GRAPHS)
    for name, mutate in {**models.INVALID_GRAPHS, **models.ODD_GRAPHS}.items():
        model = demo_model()
        mutate(model)
        assert model.SerializeToString() != demo_model().SerializeToString(), name


def test_byte_corruptions_change_the_bytes():
    data = demo_model().SerializeToString()
    labels = set()
    for i in range(200):
        corrupted, label = models.corrupt_bytes(Choices(0, i), data)
        assert corrupted != data
        labels.add(label)
    assert labels == {"truncated", "byte-flipped", "random-bytes", "empty", "tiny-random", "huge-length-field"}


def test_golden_corruptions_cover_the_issue_list():
    files = goldens.record(demo_model())
    assert json.loads(files["manifest.json"])["cases"]
    labels = {goldens.corrupt(Choices(1, i), files).label for i in range(600)}
    for wanted in [
        "golden-npz-truncated",
        "npy-for-npz",
        "golden-manifest-type",
        "golden-manifest-not-utf8",
        "golden-no-cases",
        "golden-case-without-outputs",
        "golden-label-escape",
        "golden-input-dtype",
        "golden-output-nan",
        "golden-output-inf",
    ]:
        assert wanted in labels, wanted
    assert any(label.startswith("golden-manifest-without-") for label in labels)
    assert any(label.startswith("golden-tolerance-") for label in labels)


def test_pipeline_edits_cover_the_issue_list():
    labels = " ".join(pipelines.pipeline_case(Choices(2, i), {"builtin": "demo"}, None, []).label for i in range(500))
    for wanted in ["alias-bomb", "deep-nesting", "wrong-type", "hostile-model-path", "hostile-name", "tolerance"]:
        assert wanted in labels, wanted
    for wanted in ["unknown-key", "atc-injection", "pipeline-not-utf8", "pipeline-valid"]:
        assert wanted in labels, wanted


def test_alias_bomb_expands_enormously():
    import yaml

    small = yaml.safe_load(f"bomb:\n{pipelines.alias_bomb(levels=3, width=3)}\n")
    assert len(small["bomb"]["l2"]) == 3 and len(small["bomb"]["l2"][0]) == 3


def test_user_passes_compile_and_register_one_name():
    for kind, (doc, body) in userpasses.BODIES.items():
        text = userpasses.HEADER.format(kind=kind, doc=doc) + f"        {body}\n"
        compile(text, kind, "exec")
    assert set(userpasses.BODIES) >= userpasses.CONTRACT_BREAKERS
    assert set(userpasses.BODIES) >= userpasses.WRONG_NUMBERS


def test_segmentation_model_is_valid():
    onnx.checker.check_model(models.segmentation_model(), full_check=True)


def test_finding_folder_has_inputs_and_reproducers(tmp_path):
    attempt = make_attempt(0, 1)
    result = Result(attempt, Outcome(1, "out", "Traceback (most recent call last):\nValueError: x", 0.1), [])
    result.violations.append(Violation("traceback", "ValueError at x.py:f"))
    folder = save_finding(result, tmp_path)
    record = json.loads((folder / "attempt.json").read_text())
    assert record["reproducer"] == reproducer(attempt) == "python -m fuzz --seed 0 --replay 1"
    assert record["violations"][0]["signature"] == "traceback: ValueError at x.py:f"
    script = (folder / "repro.sh").read_text()
    assert "graphkit " + attempt.argv[0] in script
    for relative in attempt.files:
        assert (folder / "sandbox" / relative).exists() or (folder / "sandbox" / relative).is_fifo()
    summary = Summary(0, [result], 1.0).to_dict()
    assert (summary["attempts"], summary["clean"], summary["crashes"]) == (1, 0, 1)
    assert summary["signatures"][0]["reproducer"] == reproducer(attempt)


def test_hostile_absolute_paths_stay_in_the_sandbox():
    """Generated absolute paths name the sandbox root, or places that cannot be written (/proc)."""
    import re

    allowed = ("/proc", "/etc/b1")
    for index in range(150):
        attempt = make_attempt(0, index)
        texts = list(attempt.argv) + [
            content.decode("utf-8", "replace") if isinstance(content, bytes) else content
            for name, content in attempt.files.items()
            if name.endswith((".yaml", ".json", ".txt", ".py"))
        ]
        for text in texts:
            for path in re.findall(r"(?:^|[\s'\"\[:])(/[\w.-]+)", text):
                assert path.startswith(allowed), (attempt.key, path)


def test_the_reproducer_of_a_signal_attempt_is_a_command_the_parser_accepts():
    """A signal attempt's reproducer used to end in a bare ``--signals``, which the parser refuses."""
    import shlex

    from fuzz.__main__ import build_parser
    from fuzz.attempt_builders import signal_attempt

    command = reproducer(signal_attempt(11, 25))
    args = build_parser().parse_args(shlex.split(command)[3:])
    assert (args.seed, args.replay) == (11, 25) and args.signals >= 1
