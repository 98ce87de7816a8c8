"""The model builders that the corpus, the benchmarks and the tests share (one module, one place).

- The corpus architectures (``python -m benchmarks.corpus``): tiny seeded random configs built
  in code, exported with torch's legacy exporter.
- The segmentation stand-ins of the eval tests and benchmarks (:func:`colour_classifier`,
  :func:`linear_model`): a 1x1 convolution in the wseg model's I/O layout.
- The synthetic graphs of the scaling benchmarks (:func:`identity_chain`, :func:`matmul_chain`).

Each corpus entry builds a ``torch.nn.Module`` from a ``transformers`` Config class (never
``from_pretrained``: nothing is downloaded) or from graphkit's own code, plus example inputs.
``export(name, opset, dynamic, path)`` writes one ONNX file; the batch dim is named ``batch``
when ``dynamic`` (and the sequence dim ``seq`` on text models, with its golden value in
:data:`SEQ_LEN`). The detector is built directly as an ONNX graph (NonMaxSuppression and a
Loop), because torchvision (and its NMS) needs a different torch build here.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEQ_LEN = 8  # tokens in the example input and the golden cases of text models
IMAGE = 32  # image side of vision models (SegFormer, Swin and DETR need multiples of 32)
VOCAB = 64


@dataclass(frozen=True)
class Arch:
    """One corpus architecture: its family and how to build it."""

    name: str
    family: str
    build: Callable
    text: bool = False
    image: int = IMAGE  # side of the square pixel_values input (vision models)
    no_cache: bool = False  # call with use_cache=False (no key/value cache built while tracing)


def _seeded(factory):
    import torch

    torch.manual_seed(0)
    model = factory()
    model.eval()
    return model


def _hf(model_cls_name: str, config_cls_name: str, **config):
    import transformers

    def build():
        config_obj = getattr(transformers, config_cls_name)(**config)
        config_obj._attn_implementation = "eager"
        return _seeded(lambda: getattr(transformers, model_cls_name)(config_obj))

    return build


class _FirstOutput:
    """Wrap a transformers model so the export sees plain tensors: (logits or last hidden state)."""

    def __new__(cls, model, text: bool, no_cache: bool = False):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *args):
                if not hasattr(self.model, "config"):  # a torch-written corpus model returns its tensor
                    return self.model(*args)
                if text:
                    # encoder-decoders (BART, T5) get the input ids as decoder ids: one [batch, seq] pair of inputs
                    extra = {"decoder_input_ids": args[0]} if self.model.config.is_encoder_decoder else {}
                    if no_cache:
                        extra["use_cache"] = False
                    out = self.model(input_ids=args[0], attention_mask=args[1], return_dict=True, **extra)
                else:
                    out = self.model(pixel_values=args[0], return_dict=True)
                first = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
                return first

        return Wrapper().eval()


_TEXT = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
_DECODER = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
_VIT = dict(
    image_size=IMAGE,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    num_labels=10,
)

ARCHS: dict[str, Arch] = {
    arch.name: arch
    for arch in [
        Arch("bert", "text encoder", _hf("BertModel", "BertConfig", **_TEXT, max_position_embeddings=64), text=True),
        Arch(
            "distilbert",
            "text encoder",
            _hf(
                "DistilBertModel",
                "DistilBertConfig",
                vocab_size=VOCAB,
                dim=32,
                n_layers=2,
                n_heads=2,
                hidden_dim=64,
                max_position_embeddings=64,
            ),
            text=True,
        ),
        Arch(
            "roberta",
            "text encoder",
            _hf("RobertaModel", "RobertaConfig", **_TEXT, max_position_embeddings=72, pad_token_id=1),
            text=True,
        ),
        Arch(
            "gpt2",
            "decoder",
            _hf("GPT2Model", "GPT2Config", vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64),
            text=True,
        ),
        Arch(
            "t5-encoder",
            "text encoder",
            _hf(
                "T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2
            ),
            text=True,
        ),
        Arch("vit", "vision transformer", _hf("ViTForImageClassification", "ViTConfig", **_VIT)),
        Arch(
            "swin",
            "vision transformer (shifted window)",
            _hf(
                "SwinForImageClassification",
                "SwinConfig",
                image_size=IMAGE,
                patch_size=2,
                embed_dim=16,
                depths=[2, 2],
                num_heads=[2, 2],
                window_size=4,
                num_labels=10,
            ),
        ),
        Arch(
            "convnext",
            "CNN classifier",
            _hf(
                "ConvNextForImageClassification",
                "ConvNextConfig",
                num_stages=2,
                hidden_sizes=[8, 16],
                depths=[1, 1],
                num_labels=10,
            ),
        ),
        Arch(
            "resnet",
            "CNN classifier",
            _hf(
                "ResNetForImageClassification",
                "ResNetConfig",
                embedding_size=8,
                hidden_sizes=[8, 16],
                depths=[1, 1],
                layer_type="basic",
                num_labels=10,
            ),
        ),
        Arch(
            "mobilenetv2",
            "CNN classifier",
            _hf(
                "MobileNetV2ForImageClassification",
                "MobileNetV2Config",
                image_size=IMAGE,
                depth_multiplier=0.25,
                num_labels=10,
            ),
        ),
        Arch(
            "segformer",
            "segmentation",
            _hf(
                "SegformerForSemanticSegmentation",
                "SegformerConfig",
                num_encoder_blocks=2,
                depths=[1, 1],
                sr_ratios=[2, 1],
                hidden_sizes=[8, 16],
                num_attention_heads=[1, 2],
                decoder_hidden_size=16,
                num_labels=5,
                patch_sizes=[7, 3],
                strides=[4, 2],
                mlp_ratios=[2, 2],
            ),
        ),
        Arch("wseg", "segmentation (graphkit's WideResNet38, width 1/32)", lambda: _wseg()),
        Arch("detector-nms", "detector (NonMaxSuppression + Loop, ONNX-built)", lambda: None),
        # the larger corpus (issue 23): decoders with rotary embeddings and grouped KV heads, encoder-decoders,
        # MobileViT, and torch-written MaxViT-, ShuffleNetV2- and YOLO-style models (benchmarks/vision_nets.py)
        Arch(
            "llama",
            "decoder (rotary, grouped KV heads)",
            _hf("LlamaModel", "LlamaConfig", **_DECODER),
            text=True,
            no_cache=True,
        ),
        Arch(
            "qwen2",
            "decoder (rotary, grouped KV heads)",
            _hf("Qwen2Model", "Qwen2Config", **_DECODER),
            text=True,
            no_cache=True,
        ),
        Arch(
            "bart",
            "encoder-decoder",
            _hf(
                "BartModel",
                "BartConfig",
                vocab_size=VOCAB,
                d_model=32,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                max_position_embeddings=64,
            ),
            text=True,
            no_cache=True,
        ),
        Arch(
            "t5",
            "encoder-decoder (relative position bias)",
            _hf(
                "T5Model",
                "T5Config",
                vocab_size=VOCAB,
                d_model=32,
                d_kv=16,
                d_ff=64,
                num_layers=2,
                num_decoder_layers=2,
                num_heads=2,
            ),
            text=True,
            no_cache=True,
        ),
        Arch(
            "mobilevit",
            "hybrid CNN/transformer (unfold into patches)",
            _hf(
                "MobileViTForImageClassification",
                "MobileViTConfig",
                image_size=128,
                hidden_sizes=[16, 24, 32],
                neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                num_attention_heads=2,
                num_labels=10,
            ),
            image=128,
        ),
        Arch("maxvit", "vision transformer (block + grid attention)", lambda: _torch_net("MaxVitStyle")),
        Arch("shufflenetv2", "CNN classifier (channel split + shuffle)", lambda: _torch_net("ShuffleNetV2Style")),
        Arch("yolo-head", "detector (anchor decode on two levels)", lambda: _torch_net("YoloStyleHead")),
    ]
}


def _torch_net(class_name: str):
    from benchmarks import vision_nets

    return _seeded(getattr(vision_nets, class_name))


def _wseg():
    from graphkit.wseg.network import WsegModel

    return WsegModel(width=0.03125, seed=0).eval()


def traced_module(name: str):
    """The torch module that :func:`export` traces for architecture ``name`` (plain tensors in and out)."""
    arch = ARCHS[name]
    module = arch.build()
    return module if name == "wseg" else _FirstOutput(module, text=arch.text, no_cache=arch.no_cache)


def export(name: str, opset: int, dynamic: bool, path: str, batch: int = 1) -> onnx.ModelProto:
    """Export corpus architecture ``name`` at ``opset`` (batch dim named ``batch`` when ``dynamic``) to ``path``."""
    import torch

    arch = ARCHS[name]
    if name == "detector-nms":
        proto = detector_model(opset, dynamic, batch)
        onnx.save(proto, path)
        return proto
    module = traced_module(name)
    if name == "wseg":
        inputs, input_names, output_names = (torch.zeros(batch, 3, IMAGE, IMAGE),), ["image"], ["cls", "mask"]
    elif arch.text:
        ids = torch.randint(0, VOCAB, (batch, SEQ_LEN), generator=torch.Generator().manual_seed(0))
        inputs, input_names, output_names = (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"], ["output"]
    else:
        inputs, input_names, output_names = (
            (torch.zeros(batch, 3, arch.image, arch.image),),
            ["pixel_values"],
            ["output"],
        )
    axes = None
    if dynamic:
        axes = {n: {0: "batch"} for n in input_names + output_names}
        if arch.text:
            axes = {n: {0: "batch", 1: "seq"} for n in input_names + output_names}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.save(proto, path)
    return proto


def detector_model(opset: int, dynamic: bool, batch: int = 1) -> onnx.ModelProto:
    """A tiny one-stage detector as an ONNX graph: conv head -> boxes, scores -> NonMaxSuppression.

    ``image`` [B,3,16,16] -> Conv (4+1 channels per location) -> boxes [B,64,4] and scores
    [B,1,64] -> ``NonMaxSuppression`` (max 8 per class, IoU 0.5) -> ``selected`` [K,3] and
    ``detections`` [K,4] (a Gather of the selected boxes), plus a ``Loop`` that sums the score
    per batch row (``row_scores`` [B]). The exported-at-batch-1 form (``dynamic`` False) bakes
    the batch into a ``Split`` of the head, as the legacy exporter does; the outputs' first dim
    K is the detection count, not the batch.
    """
    rng = np.random.default_rng(0)
    b = "batch" if dynamic else batch
    weight = numpy_helper.from_array(rng.normal(0, 0.5, (5, 3, 3, 3)).astype(np.float32), "head_w")
    nodes = [
        helper.make_node("Conv", ["image", "head_w"], ["head"], pads=[1, 1, 1, 1], strides=[2, 2]),  # [B,5,8,8]
        helper.make_node("Reshape", ["head", "head_shape"], ["head_flat"]),  # [B,5,64]
        helper.make_node("Transpose", ["head_flat"], ["head_t"], perm=[0, 2, 1]),  # [B,64,5]
    ]
    if not dynamic:  # per-image processing unrolled over the exported batch, as a traced Python loop does
        pieces = [f"image_{i}" for i in range(batch)]
        if opset >= 13:
            inits_split = [numpy_helper.from_array(np.ones(batch, np.int64), "per_image")]
            nodes.append(helper.make_node("Split", ["head_t", "per_image"], pieces, axis=0))
        else:
            inits_split = []
            nodes.append(helper.make_node("Split", ["head_t"], pieces, axis=0, split=[1] * batch))
        nodes.append(helper.make_node("Concat", pieces, ["head_rows"], axis=0))
    head_t = "head_t" if dynamic else "head_rows"
    inits = [weight, numpy_helper.from_array(np.array([0 if dynamic else batch, 5, 64], np.int64), "head_shape")]
    inits += [] if dynamic else inits_split
    split_axis_sizes = np.array([4, 1], np.int64)
    if opset >= 13:
        inits.append(numpy_helper.from_array(split_axis_sizes, "split_sizes"))
        nodes.append(helper.make_node("Split", [head_t, "split_sizes"], ["boxes_raw", "logit"], axis=2))
    else:
        nodes.append(helper.make_node("Split", [head_t], ["boxes_raw", "logit"], axis=2, split=[4, 1]))
    nodes += [
        helper.make_node("Sigmoid", ["boxes_raw"], ["boxes"]),  # [B,64,4] in (0,1)
        helper.make_node("Sigmoid", ["logit"], ["score_t"]),  # [B,64,1]
        helper.make_node("Transpose", ["score_t"], ["scores"], perm=[0, 2, 1]),  # [B,1,64]
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_thr"], ["selected"]),
        helper.make_node("Gather", ["selected", "col2"], ["box_idx"], axis=1),  # [K]
        helper.make_node("Gather", ["selected", "col0"], ["batch_idx"], axis=1),
        helper.make_node(
            "Unsqueeze" if opset < 13 else "Unsqueeze",
            ["batch_idx"] + ([] if opset < 13 else ["ax1"]),
            ["batch_idx2"],
            **({"axes": [1]} if opset < 13 else {}),
        ),
        helper.make_node(
            "Unsqueeze",
            ["box_idx"] + ([] if opset < 13 else ["ax1"]),
            ["box_idx2"],
            **({"axes": [1]} if opset < 13 else {}),
        ),
        helper.make_node("Concat", ["batch_idx2", "box_idx2"], ["gather_idx"], axis=1),  # [K,2]
        helper.make_node("GatherND", ["boxes", "gather_idx"], ["detections"]),  # [K,4]
        helper.make_node(
            "ReduceSum",
            ["score_t"] + ([] if opset < 13 else ["ax12"]),
            ["row_sum_k"],
            keepdims=0,
            **({"axes": [1, 2]} if opset < 13 else {}),
        ),  # [B]
    ]
    # a Loop over the rows: row_scores[i] = row_sum[i] * 1 (keeps a Loop in the graph)
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    nodes += [
        helper.make_node(
            "Loop",
            ["trip", "cond"],
            [
                "",
            ],
            body=body,
        )
        if False
        else helper.make_node("Loop", ["trip", "cond", "row_sum_k"], ["row_scores"], body=body),
    ]
    inits += [
        numpy_helper.from_array(np.array([8], np.int64), "max_out"),
        numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
        numpy_helper.from_array(np.array([0.0], np.float32), "score_thr"),
        numpy_helper.from_array(np.array(2, np.int64), "col2"),
        numpy_helper.from_array(np.array(0, np.int64), "col0"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "ax12"),
        numpy_helper.from_array(np.array(3, np.int64), "trip"),
        numpy_helper.from_array(np.array(True), "cond"),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [b, 3, 16, 16])],
        [
            helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["K", 4]),
            helper.make_tensor_value_info("row_scores", TensorProto.FLOAT, [b]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


# --- segmentation stand-ins (the eval tests and benchmarks) ----------------------------------------

# class -> RGB colour of its pixels in the synthetic images (well separated)
CLASS_COLOURS = {0: (20, 20, 20), 1: (230, 40, 40), 7: (40, 220, 60), 15: (50, 60, 235), 12: (240, 230, 60)}
PRESENT_LOGIT, ABSENT_LOGIT = 5.0, -5.0


def _normalized(rgb) -> np.ndarray:
    from graphkit.wseg.eval.views import MEAN, STD

    return (np.asarray(rgb, dtype=np.float64) / 255.0 - MEAN) / STD


def _cls_constant(n_classes_fg: int, present) -> np.ndarray:
    logits = np.full((1, n_classes_fg), ABSENT_LOGIT, dtype=np.float32)
    for c in present:
        logits[0, c - 1] = PRESENT_LOGIT
    return logits


def build_model(
    weight: np.ndarray, bias: np.ndarray, cls_logits: np.ndarray, pad: int, softmax: bool
) -> onnx.ModelProto:
    """image [N,3,pad,pad] -> mask = (softmax of) 1x1 conv [N,C,pad,pad]; cls = constant [N,C-1]."""
    n_out = weight.shape[0]
    nodes = [
        helper.make_node("Conv", ["image", "W", "B"], ["logits"] if softmax else ["mask"], kernel_shape=[1, 1]),
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),
        helper.make_node("Unsqueeze", ["m0", "ax1"], ["col"]),
        helper.make_node("Add", ["col", "cls_const"], ["cls"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["mask"], axis=1))
    inits = [
        numpy_helper.from_array(weight.reshape(n_out, 3, 1, 1).astype(np.float32), "W"),
        numpy_helper.from_array(bias.astype(np.float32), "B"),
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(cls_logits.astype(np.float32), "cls_const"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_seg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, pad, pad])],
        [
            helper.make_tensor_value_info("cls", TensorProto.FLOAT, ["N", cls_logits.shape[1]]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", n_out, pad, pad]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def colour_classifier(pad: int, num_classes: int = 21, beta: float = 4.0) -> onnx.ModelProto:
    """Softmax over classes of -beta * ||x - colour_k||^2 (written linearly); unused classes ~ 0."""
    weight = np.zeros((num_classes, 3))
    bias = np.full(num_classes, -1e3)
    for cls, rgb in CLASS_COLOURS.items():
        centre = _normalized(rgb)
        weight[cls] = 2 * beta * centre
        bias[cls] = -beta * float(centre @ centre)
    present = [c for c in CLASS_COLOURS if c]
    return build_model(weight, bias, _cls_constant(num_classes - 1, present), pad, softmax=True)


def linear_model(
    pad: int, seed: int = 0, num_classes: int = 21, present=(1, 3, 7)
) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray, np.ndarray]:
    """mask_c = w_c . x + b_c per pixel (no softmax): linear, so the merge is predictable."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(num_classes, 3)).astype(np.float32)
    bias = rng.normal(size=num_classes).astype(np.float32)
    cls = _cls_constant(num_classes - 1, present)
    return build_model(weight, bias, cls, pad, softmax=False), weight, bias, cls


# --- synthetic graphs of the scaling benchmarks ----------------------------------------------------


def identity_chain(pairs: int, path: Path) -> Path:
    """x -> (Relu -> Identity) x pairs -> y: ``pairs`` rewrites for eliminate-noops in a graph of 2 x pairs nodes."""
    nodes, previous = [], "x"
    for i in range(pairs):
        nodes.append(helper.make_node("Relu", [previous], [f"r{i}"], name=f"relu{i}"))
        out = "y" if i == pairs - 1 else f"i{i}"
        nodes.append(helper.make_node("Identity", [f"r{i}"], [out], name=f"identity{i}"))
        previous = out
    graph = helper.make_graph(
        nodes,
        "identity_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def matmul_chain(path: Path, layers: int, width: int) -> None:
    """x [batch, width] -> ``layers`` MatMuls with seeded [width, width] weights, saved to ``path``."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    previous = "x"
    for i in range(layers):
        weight = rng.standard_normal((width, width), dtype=np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [f"h{i}"], name=f"matmul{i}"))
        previous = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "stand_in",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
