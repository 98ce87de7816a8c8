"""Dense CRF refinement as the 1-stage-wseg reference calls it (``utils/dcrf.py``).

The merged map (not renormalized) is the "softmax" input: unary = -log(clip(p, 1e-5, 1)),
then a Gaussian kernel (sxy 3, compat 3) and a bilateral kernel (sxy 80, srgb 13, compat 10)
on the original uint8 RGB image, 10 mean-field iterations; the CRF mask is the argmax of Q.
Needs the ``pydensecrf`` module (``pip install graphkit-onnx[crf]`` installs pydensecrf2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphkit.util.errors import ToolNotFoundError

UNARY_CLIP = 1e-5


@dataclass(frozen=True)
class CrfParams:
    """Iterations and kernel parameters (defaults: the reference's)."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0


def require_pydensecrf():
    """The ``pydensecrf.densecrf`` module, or ToolNotFoundError saying how to get it."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise ToolNotFoundError(
            "dense CRF needs the pydensecrf module: pip install 'graphkit-onnx[crf]' (pydensecrf2), or set eval.crf false"
        ) from exc
    return dcrf


def crf_probabilities(image: np.ndarray, probs: np.ndarray, params: CrfParams = CrfParams()) -> np.ndarray:
    """Q [C, H, W] float32 after mean-field inference; ``image`` is [H, W, 3] uint8."""
    dcrf = require_pydensecrf()
    num_labels, h, w = probs.shape
    if image.shape != (h, w, 3) or image.dtype != np.uint8:
        raise ValueError(f"image must be [{h}, {w}, 3] uint8, got {image.shape} {image.dtype}")
    unary = -np.log(np.clip(probs, UNARY_CLIP, 1.0)).reshape(num_labels, -1).astype(np.float32)
    crf = dcrf.DenseCRF2D(w, h, num_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.array(image, dtype=np.uint8, order="C"),  # a writable copy (pydensecrf needs one)
        compat=params.bilateral_compat,
    )
    q = crf.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(num_labels, h, w)


def crf_labels(image: np.ndarray, probs: np.ndarray, params: CrfParams = CrfParams()) -> np.ndarray:
    """The CRF mask: argmax over classes of :func:`crf_probabilities`, [H, W] uint8."""
    return np.argmax(crf_probabilities(image, probs, params), axis=0).astype(np.uint8)
