"""The 1-stage-wseg test-time model (WideResNet38 backbone, "ae" softmax head), written for graphkit.

:class:`WsegModel` reproduces the test-mode forward of the reference implementation
(Araslanov & Roth, CVPR 2020, public repo ``visinf/1-stage-wseg``, class ``SoftMaxAE`` on the
``resnet38`` backbone) with the same module tree, so the released checkpoint
``model_enc_e020Xs0.928.pth`` loads unchanged: 309 state_dict keys, same names and shapes.

``model(image)`` with ``image`` [N,3,H,W] returns ``(cls, mask)``: ``cls`` [N,20] class scores
and ``mask`` [N,21,H,W] per-pixel class probabilities (background first). The decoder and
the softmax run at H/4, ASPP at H/8; three bilinear ``align_corners`` resizes; the mask is
upsampled x4 at the end. The op order follows the reference so that the legacy opset-11 ONNX
export has the same graph (``Transpose -> Softmax(axis=3) -> Transpose`` around the softmax).

``width`` scales every internal channel count (min 1) and keeps the graph and the key names:
``WsegModel(width=1/32)`` is a tiny model of the same structure for fast tests. Shapes match
the checkpoint only at ``width=1``.

Without a checkpoint, :meth:`WsegModel.init_random` gives seeded random weights with
non-trivial BatchNorm statistics; they are drawn with numpy (identical on every machine) and
scaled by propagating an expected activation second moment through the network, so
activations stay O(1) at any depth and the softmax is not saturated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 21  # 20 VOC classes + background
SG_PSI = 0.3  # stochastic gate mixing rate at test time
FOCAL_P = 3  # focal penalty exponent
FOCAL_LAMBDA = 0.01  # focal penalty log offset
ASPP_DILATIONS = (12, 24, 36)  # output stride 8
DESIGN_SIZE = 1024  # input side the random init is scaled for (GCI global max pooling)
TINY_WIDTH = 1 / 32  # the width of the tiny test variant


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` scaled by ``width``, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def resize_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (align_corners) of ``x`` to the spatial size of ``like``."""
    height, width = like.size()[2:]
    return F.interpolate(x, size=[height, width], mode="bilinear", align_corners=True)


# --------------------------------------------------------------------------- seeded init


class SeededInit:
    """Draws weights from one numpy generator, tracking the second moment E[x^2] of activations.

    Each method initialises one layer given the second moment of its input and returns the
    second moment of its output (assuming roughly zero-mean, independent channels).
    """

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def _set(self, tensor: torch.Tensor, values: np.ndarray) -> None:
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(tensor.shape))

    def conv(self, conv: nn.Conv2d, moment: float) -> float:
        """He-normal weights (gain 2); a small random bias where the conv has one."""
        fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        std = math.sqrt(2.0 / fan_in)
        self._set(conv.weight, self.rng.standard_normal(conv.weight.shape, dtype=np.float32) * np.float32(std))
        out = 2.0 * moment
        if conv.bias is not None:
            bias = self.rng.normal(0.0, 0.1, conv.bias.shape)
            self._set(conv.bias, bias)
            out += float(np.mean(bias**2))
        return out

    def batchnorm(self, bn: nn.BatchNorm2d, moment: float) -> float:
        """Running stats near the expected input statistics, random gamma/beta."""
        channels = bn.num_features
        mean = self.rng.normal(0.0, 0.3 * math.sqrt(moment), channels)
        var = moment * self.rng.uniform(0.5, 2.0, channels)
        self._set(bn.running_mean, mean)
        self._set(bn.running_var, var)
        gamma = np.ones(channels)
        beta = np.zeros(channels)
        if bn.affine:
            gamma = self.rng.uniform(0.5, 1.5, channels)
            beta = self.rng.normal(0.0, 0.2, channels)
            self._set(bn.weight, gamma)
            self._set(bn.bias, beta)
        return float(np.mean(gamma**2 * (moment + mean**2) / (var + bn.eps) + beta**2))


def relu_moment(moment: float) -> float:
    """Second moment after ReLU of a zero-mean symmetric input."""
    return moment / 2.0


def concat_moment(parts: list[tuple[int, float]]) -> float:
    """Second moment of a channel concatenation of (channels, moment) parts."""
    return sum(c * m for c, m in parts) / sum(c for c, _ in parts)


# --------------------------------------------------------------------------- backbone


class PreActBlock(nn.Module):
    """Pre-activation residual block of WideResNet38 (two 3x3 convs).

    ``projection`` adds the 1x1 shortcut conv (where the full-width model changes shape).
    """

    def __init__(self, cin: int, cmid: int, cout: int, stride=1, first_dilation=None, dilation=1, projection=False):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.projection = projection
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(
            cin, cmid, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False
        )
        self.bn_branch2b1 = nn.BatchNorm2d(cmid)
        self.conv_branch2b1 = nn.Conv2d(cmid, cout, 3, padding=dilation, dilation=dilation, bias=False)
        if projection:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (block output, the block's normalised input after ReLU)."""
        pre = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(pre) if self.projection else x
        y = self.conv_branch2a(pre)
        y = F.relu(self.bn_branch2b1(y))
        y = self.conv_branch2b1(y)
        return shortcut + y, pre

    def init_random(self, init: SeededInit, moment: float) -> float:
        pre = relu_moment(init.batchnorm(self.bn_branch2a, moment))
        shortcut = init.conv(self.conv_branch1, pre) if self.projection else moment
        y = relu_moment(init.batchnorm(self.bn_branch2b1, init.conv(self.conv_branch2a, pre)))
        return shortcut + init.conv(self.conv_branch2b1, y)


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck block (1x1 -> dilated 3x3 -> 1x1) with a 1x1 shortcut conv."""

    def __init__(self, cin: int, cmid: int, cwide: int, cout: int, dilation: int, dropout: float):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cmid, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cmid)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cmid, cwide, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cwide)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cwide, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (block output, the block's normalised input after ReLU)."""
        pre = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(pre)
        y = self.conv_branch2a(pre)
        y = self.dropout_2b1(F.relu(self.bn_branch2b1(y)))
        y = self.conv_branch2b1(y)
        y = self.dropout_2b2(F.relu(self.bn_branch2b2(y)))
        y = self.conv_branch2b2(y)
        return shortcut + y, pre

    def init_random(self, init: SeededInit, moment: float) -> float:
        pre = relu_moment(init.batchnorm(self.bn_branch2a, moment))
        shortcut = init.conv(self.conv_branch1, pre)
        y = relu_moment(init.batchnorm(self.bn_branch2b1, init.conv(self.conv_branch2a, pre)))
        y = relu_moment(init.batchnorm(self.bn_branch2b2, init.conv(self.conv_branch2b1, y)))
        return shortcut + init.conv(self.conv_branch2b2, y)


# --------------------------------------------------------------------------- head modules


class AtrousBranch(nn.Module):
    """One ASPP branch: (dilated) conv -> BatchNorm -> ReLU."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d):
        super().__init__()
        self.atrous_conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.atrous_conv(x)))

    def init_random(self, init: SeededInit, moment: float) -> float:
        return relu_moment(init.batchnorm(self.bn, init.conv(self.atrous_conv, moment)))


def init_sequential(seq: nn.Sequential, init: SeededInit, moment: float) -> float:
    """Seeded init of a Sequential made of Conv2d, BatchNorm2d, ReLU, Dropout and pooling."""
    for layer in seq:
        if isinstance(layer, nn.Conv2d):
            moment = init.conv(layer, moment)
        elif isinstance(layer, nn.BatchNorm2d):
            moment = init.batchnorm(layer, moment)
        elif isinstance(layer, nn.ReLU):
            moment = relu_moment(moment)
        elif isinstance(layer, nn.AdaptiveAvgPool2d):
            moment = moment / math.pi  # squared mean of a ReLU output
    return moment


class AtrousPyramid(nn.Module):
    """ASPP at output stride 8: 1x1, three dilated 3x3, and an image-level branch; then 1x1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.aspp1 = AtrousBranch(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        for index, dilation in enumerate(ASPP_DILATIONS, start=2):
            conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False)
            setattr(self, f"aspp{index}", AtrousBranch(conv, nn.BatchNorm2d(cout)))
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
        )
        self.conv1 = nn.Conv2d(5 * cout, cout, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.aspp1(x)
        x2 = self.aspp2(x)
        x3 = self.aspp3(x)
        x4 = self.aspp4(x)
        x5 = resize_like(self.global_avg_pool(x), x4)
        x = torch.cat((x1, x2, x3, x4, x5), dim=1)
        return self.dropout(F.relu(self.bn1(self.conv1(x))))

    def init_random(self, init: SeededInit, moment: float) -> float:
        branches = [getattr(self, f"aspp{i}").init_random(init, moment) for i in range(1, 5)]
        branches.append(init_sequential(self.global_avg_pool, init, moment))
        merged = concat_moment([(1, m) for m in branches])
        return relu_moment(init.batchnorm(self.bn1, init.conv(self.conv1, merged)))


class GlobalCueInjection(nn.Module):
    """GCI: shallow features modulated (AdaIN-style) by a global max-pooled code of deep features."""

    def __init__(self, cdeep: int, cshallow: int):
        super().__init__()
        self.fc_deep = nn.Sequential(
            nn.Conv2d(cdeep, 2 * cshallow, 1, bias=False), nn.BatchNorm2d(2 * cshallow), nn.ReLU()
        )
        self.fc_skip = nn.Sequential(
            nn.Conv2d(cshallow, cshallow, 1, bias=False), nn.BatchNorm2d(cshallow, affine=False)
        )
        self.fc_cls = nn.Sequential(nn.Conv2d(cshallow, cshallow, 1, bias=False), nn.BatchNorm2d(cshallow), nn.ReLU())

    def forward(self, shallow: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        code = self.fc_deep(deep)
        code, _ = code.view(code.size(0), code.size(1), -1).max(-1)
        x = self.fc_skip(shallow)
        x = F.relu(self._modulate(x, code))
        return self.fc_cls(x)

    @staticmethod
    def _modulate(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        batch, channels, _, _ = x.size()
        code = code.view(batch, 2, channels)
        scale, shift = code[:, 0], code[:, 1]
        scale = scale.unsqueeze(-1).unsqueeze(-1)
        shift = shift.unsqueeze(-1).unsqueeze(-1)
        return x * (scale + 1) + shift

    def init_random(self, init: SeededInit, shallow: float, deep: float) -> float:
        code = init_sequential(self.fc_deep, init, deep)
        code_max = 2.0 * math.log((DESIGN_SIZE // 4) ** 2) * code  # expected max over H/4 x W/4 positions
        x = init_sequential(self.fc_skip, init, shallow)
        x = relu_moment(x * (code_max + 1.0) + code_max)
        return init_sequential(self.fc_cls, init, x)


class PixelAffinityKernels(nn.Module):
    """The fixed 3x3 shift kernels of the reference's PAMR refinement (training only).

    They are part of the checkpoint (``_aff.aff_x.kernel``, ``_aff.aff_m.kernel``,
    ``_aff.aff_std.kernel``) but take no part in the test-time forward.
    """

    def __init__(self):
        super().__init__()
        self.aff_x = _KernelBuffer((8, 1, 3, 3))
        self.aff_m = _KernelBuffer((8, 1, 3, 3))
        self.aff_std = _KernelBuffer((9, 1, 3, 3))

    @torch.no_grad()
    def reset(self) -> None:
        """Set the kernels: neighbour differences, neighbour copies, and the 3x3 window."""
        neighbours = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]
        difference = torch.zeros(8, 1, 3, 3)
        copy = torch.zeros(8, 1, 3, 3)
        for k, (row, col) in enumerate(neighbours):
            difference[k, 0, 1, 1] = 1
            difference[k, 0, row, col] = -1
            copy[k, 0, row, col] = 1
        self.aff_x.kernel.copy_(difference)
        self.aff_m.kernel.copy_(copy)
        self.aff_std.kernel.copy_(torch.eye(9).view(9, 1, 3, 3))


class _KernelBuffer(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("kernel", torch.zeros(shape))


# --------------------------------------------------------------------------- the model


class WsegModel(nn.Module):
    """The 1-stage-wseg WideResNet38 "ae" model, test mode: ``forward(image) -> (cls, mask)``.

    Args:
        width: channel multiplier (1.0 = the released model; e.g. 1/32 for tests).
        seed: seed of the random weights set at construction (see :meth:`init_random`);
            None leaves the weights uninitialised, for a checkpoint to be loaded next.

    The model is returned in eval mode. ``weights_description`` says where its weights come
    from ("random (seed N)" until a checkpoint is loaded).
    """

    def __init__(self, width: float = 1.0, seed: int | None = 0):
        super().__init__()
        if not (isinstance(width, (int, float)) and 0 < width <= 1):
            raise ValueError(f"width must be in (0, 1], got {width!r}")
        self.width = float(width)
        # Layers are built on the meta device (torch's default init of 138M parameters is slow
        # and overwritten anyway), then materialised and filled by init_random.
        with torch.device("meta"):
            self._build_layers()
        self.to_empty(device="cpu")
        self.weights_description = "uninitialised"
        if seed is not None:
            self.init_random(seed)
        else:
            self._aff.reset()
        self.eval()

    def _build_layers(self) -> None:
        def c(n: int) -> int:
            return scaled_channels(n, self.width)

        self.conv1a = nn.Conv2d(3, c(64), 3, padding=1, bias=False)
        self.b2 = PreActBlock(c(64), c(128), c(128), stride=2, projection=True)
        self.b2_1 = PreActBlock(c(128), c(128), c(128))
        self.b2_2 = PreActBlock(c(128), c(128), c(128))
        self.b3 = PreActBlock(c(128), c(256), c(256), stride=2, projection=True)
        self.b3_1 = PreActBlock(c(256), c(256), c(256))
        self.b3_2 = PreActBlock(c(256), c(256), c(256))
        self.b4 = PreActBlock(c(256), c(512), c(512), stride=2, projection=True)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", PreActBlock(c(512), c(512), c(512)))
        self.b5 = PreActBlock(c(512), c(512), c(1024), first_dilation=1, dilation=2, projection=True)
        self.b5_1 = PreActBlock(c(1024), c(512), c(1024), dilation=2)
        self.b5_2 = PreActBlock(c(1024), c(512), c(1024), dilation=2)
        self.b6 = BottleneckBlock(c(1024), c(512), c(1024), c(2048), dilation=4, dropout=0.3)
        self.b7 = BottleneckBlock(c(2048), c(1024), c(2048), c(4096), dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(c(4096))

        self.aspp = AtrousPyramid(c(4096), c(256))
        self._aff = PixelAffinityKernels()
        self.shallow_mask = GlobalCueInjection(c(256), c(256))
        self.fc8_skip = nn.Sequential(nn.Conv2d(c(256), c(48), 1, bias=False), nn.BatchNorm2d(c(48)), nn.ReLU())
        self.fc8_x = nn.Sequential(
            nn.Conv2d(c(256) + c(48), c(256), 3, padding=1, bias=False), nn.BatchNorm2d(c(256)), nn.ReLU()
        )
        self.last_conv = nn.Sequential(
            nn.Conv2d(c(256), c(256), 3, padding=1, bias=False),
            nn.BatchNorm2d(c(256)),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Conv2d(c(256), c(256), 3, padding=1, bias=False),
            nn.BatchNorm2d(c(256)),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(c(256), NUM_CLASSES - 1, 1),
        )

    def _residual_blocks(self) -> list[nn.Module]:
        names = ["b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2", "b4", *[f"b4_{i}" for i in range(1, 6)]]
        return [getattr(self, n) for n in [*names, "b5", "b5_1", "b5_2", "b6", "b7"]]

    def backbone(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """WideResNet38: returns (features at H/4 after b3_2, features at H/8 after bn7+ReLU)."""
        x = self.conv1a(image)
        shallow = None
        for block in self._residual_blocks():
            x, _ = block(x)
            if block is self.b3_2:
                shallow = x
        return shallow, F.relu(self.bn7(x))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` [N,3,H,W] -> ``cls`` [N,20], ``mask`` [N,21,H,W] (test mode)."""
        shallow, deep = self.backbone(image)
        x = self.aspp(deep)

        skip = self.fc8_skip(shallow)
        x = resize_like(x, skip)
        x = self.fc8_x(torch.cat([x, skip], 1))
        gated = self.shallow_mask(shallow, x)
        x = (1 - SG_PSI) * x + SG_PSI * gated
        x = self.last_conv(x)

        background = torch.ones_like(x[:, :1])
        x = torch.cat([background, x], 1)
        batch, classes, _, _ = x.size()
        probs = F.softmax(x, dim=1)

        logits_flat = x.view(batch, classes, -1)
        probs_flat = probs.view(batch, classes, -1)
        score = (logits_flat * probs_flat).sum(-1) / (1.0 + probs_flat.sum(-1))
        area = probs_flat.mean(-1)
        penalty = torch.pow(1 - area, FOCAL_P) * torch.log(FOCAL_LAMBDA + area)
        cls = score[:, 1:] + penalty[:, 1:]
        return cls, resize_like(probs, image)

    @torch.no_grad()
    def init_random(self, seed: int) -> None:
        """Seeded random weights and BatchNorm statistics (deterministic on every machine)."""
        init = SeededInit(seed)
        moment = init.conv(self.conv1a, 1.0)  # a normalised image has unit second moment
        shallow = moment
        for block in self._residual_blocks():
            moment = block.init_random(init, moment)
            if block is self.b3_2:
                shallow = moment
        deep = relu_moment(init.batchnorm(self.bn7, moment))
        x = self.aspp.init_random(init, deep)
        skip = init_sequential(self.fc8_skip, init, shallow)
        skip_channels = self.fc8_skip[0].out_channels
        merged = concat_moment([(self.fc8_x[0].in_channels - skip_channels, x), (skip_channels, skip)])
        x = init_sequential(self.fc8_x, init, merged)
        gated = self.shallow_mask.init_random(init, shallow, x)
        x = (1 - SG_PSI) ** 2 * x + SG_PSI**2 * gated
        init_sequential(self.last_conv, init, x)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.num_batches_tracked.zero_()
        self._aff.reset()
        self.weights_description = f"random (seed {seed})"


def tiny_model(seed: int = 0) -> WsegModel:
    """The tiny variant (``width=TINY_WIDTH``) with seeded random weights: a zero-argument factory."""
    return WsegModel(width=TINY_WIDTH, seed=seed)
