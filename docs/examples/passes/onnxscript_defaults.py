"""onnxscript's default rewrite rules (the set ``onnxscript.rewriter.rewrite`` applies) as a graphkit pass.

Needs the ``rules`` extra (``onnxscript==0.7.2``). The rules are onnxscript's own, taken from
its public ``onnxscript.rewriter.rules.common`` module: no-op arithmetic and Dropout, Cast/
Reshape/Transpose/Unsqueeze chains, Min/Max/Clip/Relu merges, Slice collapse, BatchNorm and Pad
into Conv/Gemm, optional-bias removal, redundant ScatterND, broadcast MatMul reshapes. graphkit
runs them to a fixed point with onnxscript's engine, reports the sites a rule's condition
refused with onnxscript's reason, and validates the result like any other pass.
"""

from onnxscript.rewriter import RewriteRuleSet
from onnxscript.rewriter.rules import common

from graphkit.transform.rules import rule_pass

NAMES = """cast_cast no_op_cast no_op_expand no_op_transpose reshape_reshape transpose_transpose
unsqueeze_unsqueeze squeeze_reshape_1d flatten_to_reshape slice_split sub_0 div_by_1 dropout_zero
dropout_inference one_reshape_matmul_reshape two_reshapes_matmul_reshape cast_constant_of_shape
cast_constant_of_shape_without_value collapse_slice collapse_slice2 materialize_reshape_shape min_min
max_max min_max max_min successive_relu successive_clip successive_clip_relu successive_relu_clip
no_op_static_scatter_nd no_op_dynamic_scatter_nd fuse_pad_into_conv fuse_pad_into_conv_integer
normalize_pad_format_conv normalize_pad_format_conv_integer fuse_batchnorm_into_conv
fuse_batchnorm_into_conv_transpose fuse_batchnorm_into_gemm remove_optional_bias_from_conv
remove_optional_bias_from_conv_transpose remove_optional_bias_from_gemm remove_optional_bias_from_qlinear_conv"""


@rule_pass("onnxscript-defaults")
def onnxscript_defaults():
    """onnxscript's default rewrite rules (46 rules), run to a fixed point and validated by graphkit."""
    rules = [getattr(common, f"{name}_rule") for name in NAMES.split()]
    return RewriteRuleSet([*rules, *common.mul_by_1_rule.commute(), *common.add_0_rule.commute()])
