"""Shared fixtures: small models and a folder of user passes written the way a user would."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from graphkit.testing import run_cli

USER_PASSES = textwrap.dedent(
    '''
    """Passes a user drops into a folder; used by the core tests."""
    import onnx_graphsurgeon as gs

    from graphkit.ir.graph import to_graph, to_model
    from graphkit.transform.pass_base import Declined, Pass, PassResult, option
    from graphkit.transform.registry import register
    from dataclasses import dataclass


    @register("drop-identity")
    class DropIdentity(Pass):
        """Remove Identity nodes whose output is not a graph output."""

        def run(self, model):
            graph = to_graph(model)
            removed, declined = 0, []
            for node in list(graph.nodes):
                if node.op != "Identity":
                    continue
                if node.outputs[0] in graph.outputs:
                    declined.append(Declined(node.name, "output is a graph output"))
                    continue
                source = node.inputs[0]
                for consumer in list(node.outputs[0].outputs):
                    for i, tensor in enumerate(consumer.inputs):
                        if tensor is node.outputs[0]:
                            consumer.inputs[i] = source
                node.outputs.clear()
                removed += 1
            if not removed:
                return PassResult(model, False, declined=declined)
            graph.cleanup().toposort()
            return PassResult(to_model(graph, model), True, counts={"removed": removed}, declined=declined)


    @dataclass
    class ScaleOptions:
        factor: float = option(2.0, doc="multiply Relu outputs by this (wrong on purpose)")


    @register("break-relu")
    class BreakRelu(Pass):
        """A deliberately wrong pass: claims to be exact but scales every Relu output."""

        Options = ScaleOptions

        def run(self, model):
            graph = to_graph(model)
            changed = 0
            for node in list(graph.nodes):
                if node.op == "Relu":
                    out = node.outputs[0]
                    scaled = gs.Variable(out.name + "_unscaled", dtype=out.dtype, shape=out.shape)
                    node.outputs = [scaled]
                    factor = gs.Constant(out.name + "_factor", values=__import__("numpy").float32([self.options.factor]))
                    graph.nodes.append(gs.Node("Mul", inputs=[scaled, factor], outputs=[out]))
                    changed += 1
            if not changed:
                return PassResult(model, False)
            graph.toposort()
            return PassResult(to_model(graph, model), True, counts={"scaled": changed})


    @register("relu-as-max")
    class ReluAsMax(Pass):
        """Rewrite Relu(x) as Max(x, 0): exact."""

        def run(self, model):
            graph = to_graph(model)
            count = 0
            for node in graph.nodes:
                if node.op == "Relu":
                    zero = gs.Constant(node.name + "_zero", values=__import__("numpy").float32([0.0]))
                    node.op = "Max"
                    node.inputs.append(zero)
                    count += 1
            if not count:
                return PassResult(model, False)
            return PassResult(to_model(graph, model), True, counts={"rewritten": count})


    @register("liar")
    class Liar(Pass):
        """A dishonest pass: changes the graph but says it changed nothing."""

        def run(self, model):
            graph = to_graph(model)
            for node in graph.nodes:
                node.name = node.name + "_renamed"
            return PassResult(to_model(graph, model), False)
    '''
)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Golden caches of test runs go to a temp folder, never into the checkout's .cache/."""
    os.environ["GRAPHKIT_CACHE"] = str(tmp_path_factory.mktemp("graphkit_cache"))


@pytest.fixture(scope="session")
def user_pass_dir(tmp_path_factory) -> Path:
    """A folder holding user-written passes: drop-identity, break-relu (wrong), liar (dishonest)."""
    folder = tmp_path_factory.mktemp("user_passes")
    (folder / "my_passes.py").write_text(USER_PASSES)
    return folder


@pytest.fixture
def make_distribution(tmp_path):
    """``make(name, entry_points, modules)``: an installed distribution under ``tmp_path/site``
    (its modules plus a ``*.dist-info`` whose ``entry_points.txt`` is given), as pip would leave
    it; put the returned folder on PYTHONPATH."""

    def make(name: str, entry_points: str, modules: dict[str, str]) -> Path:
        site = tmp_path / "site"
        info = site / f"{name}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(entry_points)
        for module, text in modules.items():
            (site / f"{module}.py").write_text(text)
        return site

    return make


@pytest.fixture
def cli():
    """The run_cli helper as a fixture."""
    return run_cli


@pytest.fixture
def gk(capsys, monkeypatch):
    """Run the CLI in-process: ``gk(*args) -> (exit code, stdout, stderr)``, progress bars off."""
    from graphkit.cli.main import main

    monkeypatch.setenv("GRAPHKIT_NO_PROGRESS", "1")

    def call(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call
