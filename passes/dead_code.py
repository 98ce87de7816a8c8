"""dead-code: remove nodes and initializers that no graph output depends on."""

from __future__ import annotations

import onnx

from graphkit.ir.model_io import ONNX_DOMAINS, clone, remove_initializers, remove_nodes_at, subgraph_reads
from graphkit.transform.pass_base import Declined, NoOptions, Pass, PassResult
from graphkit.transform.registry import register


@register("dead-code")
class DeadCode(Pass):
    """Remove nodes and initializers that no graph output depends on.

    Rewrite: walking back from the graph outputs (names read inside If/Loop/Scan bodies
    included), every default-domain node none of whose outputs is read is removed, then every
    initializer nothing reads (unless it is also a graph input: those can be fed at run time
    and are part of the model's interface), and the ``value_info`` of removed tensors. Exact:
    an unread value cannot change an output.

    Declines: a dead node of a custom domain is kept (it may have effects graphkit cannot
    see), with its site in the report. Graph inputs and outputs never change.
    """

    Options = NoOptions
    exact = True

    def run(self, model: onnx.ModelProto) -> PassResult:
        graph = model.graph
        used = {o.name for o in graph.output}
        dead, declined = set(), []
        for index in range(len(graph.node) - 1, -1, -1):
            node = graph.node[index]
            outputs = [o for o in node.output if o]
            if not any(o in used for o in outputs):
                if node.domain in ONNX_DOMAINS:
                    dead.add(index)
                    continue
                site = f"{node.domain}::{node.op_type} {node.name or (outputs[0] if outputs else '?')}"
                declined.append(Declined(site, "dead, but of a custom domain (effects unknown); kept"))
            used.update(node.input)
            used |= subgraph_reads(node)
        inputs = {v.name for v in graph.input}
        unread = {t.name for t in graph.initializer if t.name not in used and t.name not in inputs}
        if model.ir_version < 4:  # initializers listed as inputs there are constants, not interface
            unread = {t.name for t in graph.initializer if t.name not in used}
        if not dead and not unread:
            return PassResult(model, False, {}, declined)
        work = clone(model)
        graph = work.graph
        remove_nodes_at(graph, dead)
        remove_initializers(graph, unread)
        if work.ir_version < 4:
            kept = [v for v in graph.input if v.name not in unread]
            del graph.input[:]
            graph.input.extend(kept)
        live = {name for node in graph.node for name in node.output} | {t.name for t in graph.initializer}
        live |= {v.name for v in graph.input}
        info = [v for v in graph.value_info if v.name in live]
        del graph.value_info[:]
        graph.value_info.extend(info)
        counts = {"nodes_removed": len(dead), "initializers_removed": len(unread)}
        return PassResult(work, True, {k: v for k, v in counts.items() if v}, declined)
