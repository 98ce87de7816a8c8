"""User pass files that misbehave, for pipelines run with ``pass_dirs``.

Each :class:`UserPass` is one file registering one pass ``fuzz-<kind>``. ``breaks_contract``
marks passes that must end as failed or rolled back (never "applied"): they mutate their
input, call ``sys.exit``, raise ``SystemExit``/``KeyboardInterrupt``/``MemoryError``, emit an
op onnxruntime cannot run, or return the wrong type. ``wrong_numbers`` marks passes whose
output differs from their input numerically (a baked batch, NaN, a scale): a model written after
one of them is caught by the independent oracle in :mod:`fuzz.invariants`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fuzz.choices import Choices

HEADER = '''"""A misbehaving user pass written by fuzz."""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphkit.transform.pass_base import Pass, PassResult
from graphkit.transform.registry import register


def _copy(model):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _mul_output(model, index, value):
    """A copy of model whose graph output `index` is multiplied by `value`."""
    out = _copy(model)
    name = out.graph.output[index].name
    for node in out.graph.node:
        node.output[:] = [o + "_pre" if o == name else o for o in node.output]
        node.input[:] = [i + "_pre" if i == name else i for i in node.input]
    out.graph.initializer.append(numpy_helper.from_array(np.array([value], dtype=np.float32), "fuzz_factor"))
    out.graph.node.append(helper.make_node("Mul", [name + "_pre", "fuzz_factor"], [name], name="fuzz_mul"))
    return out


@register("fuzz-{kind}")
class FuzzPass(Pass):
    """A pass that {doc}."""

    exact = True

    def run(self, model):
'''

BODIES = {
    "mutate-input": (
        "mutates its input in place",
        "model.graph.node[0].name += '_mutated'\n        return PassResult(_copy(model), True)",
    ),
    "sys-exit-0": ("calls sys.exit(0)", "sys.exit(0)"),
    "sys-exit-3": ("calls sys.exit(3)", "sys.exit(3)"),
    "raise-systemexit": ("raises SystemExit", "raise SystemExit('bye')"),
    "raise-keyboardinterrupt": ("raises KeyboardInterrupt", "raise KeyboardInterrupt"),
    "raise-memoryerror": ("raises MemoryError", "raise MemoryError"),
    "unknown-op": (
        "emits an op onnxruntime cannot run",
        "out = _copy(model)\n        out.graph.node[-1].op_type = 'NoSuchOp'\n        return PassResult(out, True)",
    ),
    "return-none": ("returns None", "return None"),
    "return-text": ("returns text", "return 'not a result'"),
    "bake-batch": (
        "replaces every Reshape target with a constant that bakes batch 1",
        "out = _copy(model)\n"
        "        for node in out.graph.node:\n"
        "            if node.op_type == 'Reshape':\n"
        "                name = node.input[1] + '_baked'\n"
        "                out.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), name))\n"
        "                node.input[1] = name\n"
        "        return PassResult(out, True)",
    ),
    "nan-output": (
        "multiplies the first output by NaN",
        "return PassResult(_mul_output(model, 0, float('nan')), True)",
    ),
    "scale-output": ("scales the first output by 1.05", "return PassResult(_mul_output(model, 0, 1.05), True)"),
    "honest-noop": ("changes nothing and says so", "return PassResult(model, False)"),
}
CONTRACT_BREAKERS = {
    "mutate-input",
    "sys-exit-0",
    "sys-exit-3",
    "raise-systemexit",
    "raise-keyboardinterrupt",
    "raise-memoryerror",
    "unknown-op",
    "return-none",
    "return-text",
}
WRONG_NUMBERS = {"bake-batch", "nan-output", "scale-output"}
BROKEN_FILES = {
    "syntax-error": "def broken(:\n",
    "import-error": "import graphkit_fuzz_no_such_module\n",
    "duplicate-name": HEADER.replace("fuzz-{kind}", "eliminate-noops").format(kind="", doc="steals a name")
    + "        return PassResult(model, False)\n",
}


@dataclass
class UserPass:
    """A generated pass file and the name it registers (None when the file is broken)."""

    filename: str
    text: str
    name: str | None
    label: str
    breaks_contract: bool = False
    wrong_numbers: bool = False


def user_pass(choices: Choices) -> UserPass:
    """One misbehaving pass file (about one in eight is a file that cannot even load)."""
    if choices.chance(0.12):
        kind = choices.pick(sorted(BROKEN_FILES))
        return UserPass("fuzz_broken.py", BROKEN_FILES[kind], None, f"userpass-{kind}")
    kind = choices.pick(sorted(BODIES))
    doc, body = BODIES[kind]
    text = HEADER.format(kind=kind, doc=doc) + f"        {body}\n"
    return UserPass(
        f"fuzz_{kind.replace('-', '_')}.py",
        text,
        f"fuzz-{kind}",
        f"userpass-{kind}",
        breaks_contract=kind in CONTRACT_BREAKERS,
        wrong_numbers=kind in WRONG_NUMBERS,
    )
