"""graphkit: transform ONNX model graphs with passes that are proven numerically, one by one.

The public API is :mod:`graphkit.api` (docs/api.md), re-exported here: ``graphkit.apply(...)``,
``from graphkit import Rule, rule_pass``. It is imported on first use of one of its names, so
``import graphkit`` (and ``graphkit --version``) loads neither onnx nor onnxruntime.
"""

__version__ = "0.1.0"

# graphkit.api.__all__ but "diff" (graphkit.diff is the diff subpackage: use graphkit.api.diff),
# listed here so that looking a name up does not import the API first (tests/test_api.py checks it)
_API_NAMES = frozenset(
    {
        "apply", "Result", "record_golden", "validate", "localize", "load", "save",
        "Pass", "PassResult", "Declined", "NoOptions", "option", "register", "Rule", "Constant", "RuleContext",
        "rule_pass", "apply_rules", "PassGroup", "PassRecord", "PassStatus", "Tolerance", "Tolerances",
        "to_graph", "to_model", "ValueTypes", "replace_all_uses", "bypass_node", "remove_nodes", "remove_dead",
        "constant_value", "producer", "node_site", "is_default_domain", "fresh_name", "add_initializer", "tensor_array",
        "testing",
    }
)  # fmt: skip


def __getattr__(name: str):
    if name == "api" or name in _API_NAMES:
        import importlib

        api = importlib.import_module("graphkit.api")
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'graphkit' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_API_NAMES, "api"})
