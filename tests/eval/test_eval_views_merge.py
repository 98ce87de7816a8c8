"""The 8-view preprocessing and its inverse through the merge."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from graphkit.wseg.eval.merge import ViewAccumulator, class_presence, finish_merge, resize_bilinear, sigmoid
from graphkit.wseg.eval.views import MEAN, STD, make_views, normalize, scaled_size, view_plan


def merge_views(
    cls_logits: np.ndarray, masks: np.ndarray, pads: np.ndarray, flips, image_hw, fp_cut_score: float, bg_pow: float
) -> tuple[np.ndarray, np.ndarray]:
    """All views at once, through the accumulator the runner uses one view at a time: ``(merged [C, h, w], present [C-1])``."""
    acc = ViewAccumulator(masks.shape[1], image_hw, len(masks))
    for i in range(len(masks)):
        acc.add(cls_logits[i], masks[i], pads[i], bool(flips[i]))
    present = class_presence(np.stack(acc.cls), fp_cut_score)
    return finish_merge(acc.sum, present, len(masks), bg_pow), present


def test_view_plan_order_and_reference_rounding():
    plan = view_plan([1, 0.5, 1.5, 2.0], flip=True)
    assert [(v.scale, v.flipped) for v in plan] == [
        (1.0, False), (1.0, True), (0.5, False), (0.5, True), (1.5, False), (1.5, True), (2.0, False), (2.0, True)
    ]  # fmt: skip
    assert len(view_plan([1, 0.5], flip=False)) == 2
    # Python's round: ties to even (187.5 -> 188, 166.5 -> 166, 562.5 -> 562)
    assert scaled_size(375, 333, 0.5) == (188, 166)
    assert scaled_size(375, 500, 1.5) == (562, 750)
    assert scaled_size(500, 375, 2.0) == (1000, 750)


def test_views_of_a_voc_sized_image_pad_normalize_and_flip(helpers):
    image = helpers.smooth_image(500, 375)
    plan = view_plan([1, 0.5, 1.5, 2.0], flip=True)
    batch, pads = make_views(image, plan, (1024, 1024))
    assert batch.shape == (8, 3, 1024, 1024) and batch.dtype == np.float32
    np.testing.assert_array_equal(pads[0], [(1024 - 375) // 2, (1024 - 500) // 2, 375, 500])
    np.testing.assert_array_equal(pads[6], [(1024 - 750) // 2, (1024 - 1000) // 2, 750, 1000])
    top, left, h, w = pads[0]
    # scale 1: the normalized image itself, float64 arithmetic stored as float32
    rgb = np.asarray(image)
    expected = ((rgb / 255.0 - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_array_equal(batch[0, :, top : top + h, left : left + w], expected)
    np.testing.assert_array_equal(batch[1, :, top : top + h, left : left + w], expected[:, :, ::-1])
    # the padded area is exactly zero after normalization
    outside = np.ones((1024, 1024), bool)
    outside[top : top + h, left : left + w] = False
    assert np.all(batch[0][:, outside] == 0)
    # scale 0.5 is PIL's bicubic resize
    half = np.asarray(image.resize((250, 188), Image.Resampling.BICUBIC))
    t, left, hh, ww = pads[2]
    np.testing.assert_array_equal(batch[2, :, t : t + hh, left : left + ww], normalize(half))


def test_view_larger_than_pad_is_a_clear_error(helpers):
    with pytest.raises(Exception, match=r"larger than the pad"):
        make_views(helpers.smooth_image(40, 30), view_plan([2.0], False), (64, 64), name="big.jpg")


def test_resize_bilinear_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for in_hw, out_hw in [((13, 17), (40, 29)), ((50, 40), (21, 33)), ((8, 8), (8, 8)), ((375, 500), (188, 250))]:
        x = rng.random((3, *in_hw)).astype(np.float32)
        ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], out_hw, mode="bilinear", align_corners=False)
        np.testing.assert_allclose(resize_bilinear(x, out_hw), ref[0].numpy(), rtol=0, atol=2e-6)


def _run_views(model, batch):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["cls", "mask"], {"image": batch})


def test_merge_inverts_pad_and_flip_exactly_at_scale_one(helpers):
    """At scale 1 the cut + un-flip must give back the per-pixel model output of the image itself."""
    pad = 64
    model, weight, bias, cls_const = helpers.linear_model(pad, present=(1, 3, 7))
    image = helpers.smooth_image(37, 29)  # odd sizes: asymmetric padding
    plan = view_plan([1.0], flip=True)
    batch, pads = make_views(image, plan, (pad, pad))
    cls, masks = _run_views(model, batch)
    merged, present = merge_views(cls, masks, pads, [v.flipped for v in plan], (29, 37), 0.1, 3.0)
    x = normalize(np.asarray(image)).astype(np.float64)
    per_pixel = np.einsum("ck,khw->chw", weight.astype(np.float64), x) + bias[:, None, None]
    expected = per_pixel.copy()
    keep = np.zeros(20)
    keep[[0, 2, 6]] = 1  # classes 1, 3, 7 (channels 1, 3, 7)
    np.testing.assert_array_equal(present, keep)
    expected[1:] *= keep[:, None, None]
    expected[0] = expected[0] ** 3
    np.testing.assert_allclose(merged, expected, rtol=1e-5, atol=1e-4)


def test_merge_recovers_the_map_through_all_eight_views(helpers):
    """Through all 8 views (bicubic resizes in, bilinear out) the merge approximates f(image)."""
    pad = 128
    model, weight, bias, _ = helpers.linear_model(pad, seed=3, present=range(1, 21))
    image = helpers.smooth_image(60, 45)
    plan = view_plan([1, 0.5, 1.5, 2.0], flip=True)
    batch, pads = make_views(image, plan, (pad, pad))
    cls, masks = _run_views(model, batch)
    merged, _ = merge_views(cls, masks, pads, [v.flipped for v in plan], (45, 60), 0.1, 1.0)
    x = normalize(np.asarray(image)).astype(np.float64)
    expected = np.einsum("ck,khw->chw", weight.astype(np.float64), x) + bias[:, None, None]
    inner = (slice(None), slice(3, -3), slice(3, -3))  # resampling differs only at the borders
    np.testing.assert_allclose(merged[inner], expected[inner], rtol=0, atol=0.04)  # measured 0.016; |f| up to 8
    # a wrong un-flip or pad cut is far off: mirror the map and compare
    assert np.abs(merged[inner][:, :, ::-1] - expected[inner]).max() > 0.3 * np.abs(expected).max()


def test_class_presence_is_sigmoid_max_over_views_above_the_cut():
    logits = np.array([[-3.0, 0.0, -2.3], [-2.0, -5.0, -2.1]], np.float32)  # sigmoid(-2.1)=0.109, (-2.3)=0.091
    np.testing.assert_array_equal(class_presence(logits, 0.1), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(class_presence(logits[:1], 0.1), [0.0, 1.0, 0.0])
    assert sigmoid(np.array([-1000.0, 1000.0])).tolist() == [0.0, 1.0]


def test_finish_merge_zeroes_absent_classes_averages_and_powers_background():
    view_sum = np.full((3, 2, 2), 4.0, np.float32)
    merged = finish_merge(view_sum, np.array([1.0, 0.0], np.float32), num_views=8, bg_pow=3.0)
    np.testing.assert_allclose(merged[0], 0.5**3, rtol=0, atol=1e-7)
    np.testing.assert_allclose(merged[1], 0.5, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(merged[2], 0.0)
