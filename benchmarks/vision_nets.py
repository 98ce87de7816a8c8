"""Tiny vision networks written in torch for the corpus, following their papers' structure.

torchvision is not installed here (its builds pin another torch), so the corpus writes the
structures whose exports matter for simplification itself, at toy sizes:

- :class:`MaxVitStyle` (Tu et al. 2022, "MaxViT"): a conv stem, an MBConv block, then block
  attention (non-overlapping P x P windows) and grid attention (a G x G grid dilated over the
  image), each with a learned relative position bias gathered from a (2P-1)^2 table.
- :class:`ShuffleNetV2Style` (Ma et al. 2018, "ShuffleNet V2"): units that split the channels in
  two (``chunk``), transform one half, concatenate and shuffle the channels
  (``view -> transpose -> view``, as torchvision writes it); stride-2 units run both branches.
- :class:`YoloStyleHead` (a one-stage anchor-based detector head, YOLOv5-style decode): two
  feature levels, per level ``view -> permute -> sigmoid`` and a grid built from the feature
  map's own size (``arange`` + ``meshgrid``), boxes decoded and concatenated over levels.

Shapes are read from the tensors (``x.shape``), as the reference code does, so a dynamic export
keeps the Shape arithmetic the peers fold.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_act(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


# --- MaxViT -----------------------------------------------------------------------------------------


class RelativeAttention(nn.Module):
    """Multi-head self-attention over P*P tokens with a relative position bias (MaxViT / Swin style)."""

    def __init__(self, dim: int, heads: int, size: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.randn((2 * size - 1) ** 2, heads) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (size - 1)
        self.register_buffer("bias_index", rel[..., 0] * (2 * size - 1) + rel[..., 1], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [windows, tokens, dim]
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.bias_table[self.bias_index.reshape(-1)].reshape(t, t, self.heads).permute(2, 0, 1)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.unsqueeze(0)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, c))


def _block_partition(x: torch.Tensor, p: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, p * p, c)


def _block_reverse(x: torch.Tensor, p: int, b: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(b, h // p, w // p, p, p, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def _grid_partition(x: torch.Tensor, g: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, g, h // g, g, w // g, c).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, g * g, c)


def _grid_reverse(x: torch.Tensor, g: int, b: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(b, h // g, w // g, g, g, c).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, h, w, c)


class PartitionAttention(nn.Module):
    """Pre-norm attention + MLP over block (``grid=False``) or grid (``grid=True``) partitions; x is [B, H, W, C]."""

    def __init__(self, dim: int, heads: int, size: int, grid: bool):
        super().__init__()
        self.size, self.grid = size, grid
        self.norm1, self.attn = nn.LayerNorm(dim), RelativeAttention(dim, heads, size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        split, merge = (_grid_partition, _grid_reverse) if self.grid else (_block_partition, _block_reverse)
        x = x + merge(self.attn(split(self.norm1(x), self.size)), self.size, b, h, w)
        return x + self.mlp(self.norm2(x))


class MBConv(nn.Module):
    """Inverted residual with squeeze-excitation (MaxViT's MBConv, stride 1)."""

    def __init__(self, dim: int, expand: int = 2):
        super().__init__()
        mid = dim * expand
        self.expand = _conv_bn_act(dim, mid, 1)
        self.depthwise = _conv_bn_act(mid, mid, 3, groups=mid)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, 8, 1), nn.SiLU(), nn.Conv2d(8, mid, 1))
        self.project = _conv_bn_act(mid, dim, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        y = y * torch.sigmoid(self.se(y))
        return x + self.project(y)


class MaxVitStyle(nn.Module):
    """pixel_values [B, 3, 32, 32] -> logits [B, classes]: stem, MBConv, block attention, grid attention, head."""

    def __init__(self, dim: int = 16, heads: int = 2, size: int = 4, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_act(3, dim, 3, stride=2), _conv_bn_act(dim, dim, 3))
        self.mbconv = MBConv(dim)
        self.block = PartitionAttention(dim, heads, size, grid=False)
        self.grid = PartitionAttention(dim, heads, size, grid=True)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.mbconv(self.stem(pixel_values)).permute(0, 2, 3, 1)  # [B, H, W, C]
        x = self.grid(self.block(x))
        return self.head(self.norm(x.mean(dim=(1, 2))))


# --- ShuffleNetV2 -----------------------------------------------------------------------------------


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit: stride 1 splits the channels, stride 2 runs both branches on the whole input."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, half = stride, cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                _conv_bn_act(cin, cin, 3, stride, groups=cin, act=False), _conv_bn_act(cin, half, 1)
            )
        branch_in = cin if stride > 1 else half
        self.branch2 = nn.Sequential(
            _conv_bn_act(branch_in, half, 1),
            _conv_bn_act(half, half, 3, stride, groups=half, act=False),
            _conv_bn_act(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2Style(nn.Module):
    """pixel_values [B, 3, 32, 32] -> logits [B, classes]: stem, max-pool, two stages of shuffle units, conv5, head."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), repeats: tuple[int, ...] = (2, 2), classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_act(3, widths[0], 3, stride=2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], widths[0]
        for cout, repeat in zip(widths[1:], repeats, strict=True):
            stages += [ShuffleUnit(cin, cout, 2)] + [ShuffleUnit(cout, cout, 1) for _ in range(repeat - 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = _conv_bn_act(cin, 96, 1)
        self.fc = nn.Linear(96, classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stages(self.stem(pixel_values)))
        return self.fc(x.mean([2, 3]))


# --- detector head ----------------------------------------------------------------------------------


class YoloStyleHead(nn.Module):
    """pixel_values [B, 3, 32, 32] -> detections [B, N, 5 + classes]: boxes decoded on two levels (strides 8, 16)."""

    def __init__(self, classes: int = 3, anchors: int = 2):
        super().__init__()
        self.anchors, self.outputs = anchors, 5 + classes
        self.backbone = nn.Sequential(_conv_bn_act(3, 8, 3, 2), _conv_bn_act(8, 16, 3, 2), _conv_bn_act(16, 16, 3, 2))
        self.down = _conv_bn_act(16, 32, 3, 2)
        self.heads = nn.ModuleList(nn.Conv2d(c, anchors * self.outputs, 1) for c in (16, 32))
        self.register_buffer("anchor_wh", torch.tensor([[[10.0, 13.0], [16.0, 30.0]], [[33.0, 23.0], [30.0, 61.0]]]))
        self.strides = (8.0, 16.0)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        p3 = self.backbone(pixel_values)
        levels = []
        for i, feature in enumerate((p3, self.down(p3))):
            y = self.heads[i](feature)
            b, _, h, w = y.shape
            y = y.view(b, self.anchors, self.outputs, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, h, w, 2).float()
            xy = (y[..., :2] * 2 - 0.5 + grid) * self.strides[i]
            wh = (y[..., 2:4] * 2) ** 2 * self.anchor_wh[i].view(1, self.anchors, 1, 1, 2)
            levels.append(torch.cat((xy, wh, y[..., 4:]), -1).view(b, -1, self.outputs))
        return torch.cat(levels, 1)
