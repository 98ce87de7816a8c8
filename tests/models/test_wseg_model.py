"""The wseg torch model: checkpoint layout parity, test-time forward, seeded weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from graphkit.wseg.network import NUM_CLASSES, WsegModel, scaled_channels, tiny_model

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "wseg_state_dict_keys.json"
TINY = 1 / 32


@pytest.fixture(scope="module")
def checkpoint_layout() -> dict[str, list[int]]:
    data = json.loads(FIXTURE.read_text())
    assert data["count"] == len(data["keys"]) == 309
    return data["keys"]


@pytest.fixture(scope="module")
def tiny() -> WsegModel:
    return WsegModel(width=TINY, seed=0)


def test_full_width_state_dict_matches_the_released_checkpoint_layout(checkpoint_layout):
    model = WsegModel(width=1.0, seed=None)  # layout only: skip the random init
    state = model.state_dict()
    assert list(state) == list(checkpoint_layout)  # same keys, same order
    wrong = {
        k: (list(v.shape), checkpoint_layout[k]) for k, v in state.items() if list(v.shape) != checkpoint_layout[k]
    }
    assert wrong == {}
    assert sum(p.numel() for p in model.parameters()) == 137_973_172  # the released model's parameter count


@pytest.mark.parametrize("width", [1 / 16, 1 / 32, 1 / 64, 1 / 1000])
def test_every_width_keeps_the_key_names(checkpoint_layout, width):
    state = WsegModel(width=width, seed=None).state_dict()
    assert list(state) == list(checkpoint_layout)
    assert list(state["last_conv.8.weight"].shape[:1]) == [NUM_CLASSES - 1]  # classes never scale


def test_scaled_channels_rounds_and_never_reaches_zero():
    assert scaled_channels(4096, 1 / 32) == 128
    assert scaled_channels(48, 1 / 32) == 2
    assert scaled_channels(64, 1 / 1000) == 1


@pytest.mark.parametrize("width", [0, -1, 1.5])
def test_width_out_of_range_is_refused(width):
    with pytest.raises(ValueError, match="width"):
        WsegModel(width=width)


def test_forward_shapes_and_softmax_over_classes(tiny):
    image = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cls, mask = tiny(image)
    assert cls.shape == (2, NUM_CLASSES - 1)
    assert mask.shape == (2, NUM_CLASSES, 64, 96)
    assert torch.isfinite(cls).all() and torch.isfinite(mask).all()
    # bilinear upsampling of a softmax keeps per-pixel sums at 1 and values in [0, 1]
    torch.testing.assert_close(mask.sum(1), torch.ones(2, 64, 96), atol=1e-5, rtol=0)
    assert mask.min() >= 0 and mask.max() <= 1


def test_samples_in_a_batch_are_independent(tiny):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cls, mask = tiny(images)
        cls_1, mask_1 = tiny(images[1:])
    torch.testing.assert_close(cls[1:], cls_1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mask[1:], mask_1, atol=1e-6, rtol=1e-5)


def test_model_is_in_eval_mode_and_deterministic(tiny):
    assert not tiny.training
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first = tiny(image)
        second = tiny(image)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_seeded_weights_are_reproducible_and_seed_dependent():
    a = WsegModel(width=TINY, seed=7).state_dict()
    b = WsegModel(width=TINY, seed=7).state_dict()
    c = WsegModel(width=TINY, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1a.weight"], c["conv1a.weight"])
    assert not torch.equal(a["b4_3.bn_branch2a.running_var"], c["b4_3.bn_branch2a.running_var"])


def test_seeded_weights_have_nontrivial_batchnorm_statistics(tiny):
    norms = [m for m in tiny.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 50
    for bn in norms:
        assert bn.running_mean.abs().max() > 0
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
        assert (bn.running_var > 0).all()
        if bn.affine:
            assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))


def test_weights_description_names_the_seed():
    assert WsegModel(width=TINY, seed=3).weights_description == "random (seed 3)"
    assert WsegModel(width=TINY, seed=None).weights_description == "uninitialised"
    assert tiny_model().weights_description == "random (seed 0)"


def test_pamr_kernel_buffers_hold_the_reference_shift_kernels(tiny):
    diff, copy, window = tiny._aff.aff_x.kernel, tiny._aff.aff_m.kernel, tiny._aff.aff_std.kernel
    assert diff.shape == copy.shape == (8, 1, 3, 3) and window.shape == (9, 1, 3, 3)
    assert torch.equal(diff[:, 0, 1, 1], torch.ones(8))  # centre minus one neighbour each
    assert torch.equal(diff.sum((1, 2, 3)), torch.zeros(8))
    assert torch.equal(copy.sum((1, 2, 3)), torch.ones(8)) and copy[:, 0, 1, 1].sum() == 0
    assert torch.equal(window.view(9, 9), torch.eye(9))


def test_activations_stay_sane_at_a_moderate_size():
    model = WsegModel(width=1 / 16, seed=0)
    image = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cls, mask = model(image)
    assert torch.isfinite(cls).all() and cls.abs().max() < 100
    top = mask.max(1).values
    assert 0.05 < top.mean() < 0.95  # neither uniform (1/21) nor saturated


@pytest.mark.slow
def test_full_size_model_gives_finite_unsaturated_outputs():
    model = WsegModel(width=1.0, seed=0)
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cls, mask = model(image)
    assert torch.isfinite(cls).all() and torch.isfinite(mask).all()
    torch.testing.assert_close(mask.sum(1), torch.ones(1, 1024, 1024), atol=1e-5, rtol=0)
    top = mask.max(1).values
    assert 0.05 < top.mean() < 0.95
    assert mask.argmax(1).unique().numel() > 1
