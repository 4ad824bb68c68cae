"""Pixel maps: where each input pixel centre lands on an output grid.

``pixmap[j, i] = (X, Y)`` is the output pixel position (0-based, centres at
integers) of input pixel ``(i, j)``: ``out_inverse(*in_forward(i, j))``
(ALGORITHMS.md §6.1).  Evaluating a distorted WCS on every one of 16.7
million detector pixels is slow, so the two transforms are evaluated on a
sparse grid every ``stepsize`` pixels inside the input bounding box and
interpolated to every pixel with an interpolating bicubic (``order=3``) or
bilinear (``order=1``) spline.  Pixels outside the bounding box are NaN.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.interpolate import BSpline, RectBivariateSpline

from romancore.errors import ParameterError

log = logging.getLogger(__name__)

__all__ = ["calc_pixmap"]

#: rows of the output filled per block by the separable spline evaluation
_BLOCK_ROWS = 256


def _inverse_callable(out_inverse):
    """world -> output pixel.  A gwcs-like WCS object gives its inverse, bounding box off."""
    if hasattr(out_inverse, "invert") and hasattr(out_inverse, "forward_transform"):
        wcs = out_inverse

        def inverse(a, b):
            return wcs.invert(a, b, with_bounding_box=False)

        return inverse
    if not callable(out_inverse):
        raise ParameterError(f"out_inverse must be callable, got {type(out_inverse).__name__}")
    return out_inverse


def _bbox_limits(bounding_box, in_forward, in_shape):
    """Integer pixel limits (xmin, xmax, ymin, ymax) of the input bounding box."""
    ny, nx = in_shape
    if bounding_box is None:
        bbox = getattr(in_forward, "bounding_box", None)
        if bbox is not None and not isinstance(bbox, (tuple, list)):
            try:  # astropy ModelBoundingBox
                bbox = bbox.bounding_box(order="F")
            except (AttributeError, TypeError):
                bbox = None
        bounding_box = bbox
    if bounding_box is None:
        return 0, nx - 1, 0, ny - 1
    try:
        (x0, x1), (y0, y1) = bounding_box
        x0, x1, y0, y1 = (float(v) for v in (x0, x1, y0, y1))
    except (TypeError, ValueError):
        raise ParameterError(
            f"bounding_box must be ((xmin, xmax), (ymin, ymax)), got {bounding_box!r}"
        ) from None
    xmin, xmax, ymin, ymax = (int(v + 0.5) for v in (x0, x1, y0, y1))
    if xmax < 0 or ymax < 0 or xmin > nx - 1 or ymin > ny - 1 or xmin > xmax or ymin > ymax:
        raise ParameterError(f"bounding_box {bounding_box!r} does not overlap the input of shape {in_shape}")
    return max(xmin, 0), min(xmax, nx - 1), max(ymin, 0), min(ymax, ny - 1)


def _evaluate(in_forward, inverse, x, y):
    world = in_forward(x, y)
    if not isinstance(world, (tuple, list)) or len(world) < 2:
        raise ParameterError("in_forward must return a pair of world-coordinate arrays")
    out = inverse(world[0], world[1])
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise ParameterError("out_inverse must return a pair of pixel-coordinate arrays")
    return (np.asarray(out[0], dtype=np.float64), np.asarray(out[1], dtype=np.float64))


def _fill_separable(spline, order: int, ys, xs, out) -> None:
    """Evaluate a tensor-product spline on the grid ``ys × xs`` into ``out`` [len(ys), len(xs)].

    ``S(y, x) = Σ_ij c_ij B_i(y) B_j(x)``: with the sparse B-spline design matrices
    ``By`` (``order + 1`` non-zeros per row) the grid values are ``By @ (C @ Bxᵀ)``.
    ``C @ Bxᵀ`` is small (coefficient rows × nx); the sparse product then costs
    ``order + 1`` multiply-adds per pixel, done in blocks of rows to bound temporaries.
    """
    ty, tx = spline.get_knots()
    ncy, ncx = len(ty) - order - 1, len(tx) - order - 1
    coeffs = np.asarray(spline.get_coeffs(), dtype=np.float64).reshape(ncy, ncx)
    bx = BSpline.design_matrix(xs, tx, order)
    partial = np.ascontiguousarray((bx @ coeffs.T).T)  # [ncy, nx]: C @ Bxᵀ
    by = BSpline.design_matrix(ys, ty, order).tocsr()
    for r0 in range(0, len(ys), _BLOCK_ROWS):
        r1 = min(len(ys), r0 + _BLOCK_ROWS)
        out[r0:r1] = by[r0:r1] @ partial


def calc_pixmap(
    in_forward,
    out_inverse,
    in_shape,
    *,
    stepsize: int = 10,
    order: int = 3,
    bounding_box=None,
) -> np.ndarray:
    """Map every input pixel centre to output pixel coordinates.

    Parameters
    ----------
    in_forward : callable ``(x, y) -> (lon, lat)``
        Input pixel -> world (e.g. a ``gwcs.WCS``, whose call evaluates the
        forward transform).
    out_inverse : callable ``(lon, lat) -> (X, Y)`` or a gwcs-like WCS
        World -> output pixel.  An object with ``invert`` and
        ``forward_transform`` (a ``gwcs.WCS``) is used through
        ``invert(..., with_bounding_box=False)``.
    in_shape : (ny, nx)
        Input array shape.
    stepsize : int
        Spacing (input pixels) of the sparse evaluation grid; 1 evaluates
        every pixel.  Along each axis of the bounding box (width W pixels) the
        grid has ``max(ceil(W/stepsize), min(10, W))`` points, ends included.
    order : {1, 3}
        Degree of the interpolating spline (bilinear or bicubic).
    bounding_box : ((xmin, xmax), (ymin, ymax)) or None
        Valid input region; default ``in_forward.bounding_box`` if present,
        else the whole array.  Limits are rounded with ``int(v + 0.5)``.

    Returns
    -------
    float64 array [ny, nx, 2]
        ``[..., 0] = X``, ``[..., 1] = Y``; NaN outside the bounding box (and
        where the transforms give NaN).  When a sparse-grid value is not
        finite, every pixel is evaluated instead.
    """
    try:
        ny, nx = (int(v) for v in in_shape)
    except (TypeError, ValueError):
        raise ParameterError(f"in_shape must be (ny, nx), got {in_shape!r}") from None
    if ny < 1 or nx < 1:
        raise ParameterError(f"in_shape must be positive, got {in_shape!r}")
    if isinstance(stepsize, bool) or not isinstance(stepsize, (int, np.integer)) or stepsize < 1:
        raise ParameterError(f"stepsize must be an integer >= 1, got {stepsize!r}")
    if order not in (1, 3):
        raise ParameterError(f"order must be 1 (bilinear) or 3 (bicubic), got {order!r}")
    if not callable(in_forward):
        raise ParameterError(f"in_forward must be callable, got {type(in_forward).__name__}")
    inverse = _inverse_callable(out_inverse)
    xmin, xmax, ymin, ymax = _bbox_limits(bounding_box, in_forward, (ny, nx))
    width, height = xmax - xmin + 1, ymax - ymin + 1

    # every pixel of the bounding box is written below: only the margins need the NaN fill
    pixmap = np.empty((ny, nx, 2))
    pixmap[:ymin] = np.nan
    pixmap[ymax + 1:] = np.nan
    pixmap[ymin:ymax + 1, :xmin] = np.nan
    pixmap[ymin:ymax + 1, xmax + 1:] = np.nan
    xs_all = np.arange(xmin, xmax + 1, dtype=np.float64)
    ys_all = np.arange(ymin, ymax + 1, dtype=np.float64)

    ngx = max(math.ceil(width / stepsize), min(10, width))
    ngy = max(math.ceil(height / stepsize), min(10, height))
    sparse = stepsize > 1 and ngx > order and ngy > order and (ngx < width or ngy < height)
    if sparse:
        gx = np.linspace(xmin, xmax, ngx)
        gy = np.linspace(ymin, ymax, ngy)
        xx, yy = np.meshgrid(gx, gy)
        X, Y = _evaluate(in_forward, inverse, xx, yy)
        if np.all(np.isfinite(X)) and np.all(np.isfinite(Y)):
            for comp, values in enumerate((X, Y)):
                spline = RectBivariateSpline(gy, gx, values, kx=order, ky=order, s=0)
                _fill_separable(spline, order, ys_all, xs_all,
                                pixmap[ymin:ymax + 1, xmin:xmax + 1, comp])
            return pixmap
        log.info("non-finite WCS values on the sparse grid: evaluating every pixel")

    # dense evaluation, a block of rows at a time to bound the temporaries
    block = max(1, 2_000_000 // width)
    for r0 in range(ymin, ymax + 1, block):
        r1 = min(ymax + 1, r0 + block)
        xx, yy = np.meshgrid(xs_all, np.arange(r0, r1, dtype=np.float64))
        X, Y = _evaluate(in_forward, inverse, xx, yy)
        pixmap[r0:r1, xmin:xmax + 1, 0] = X
        pixmap[r0:r1, xmin:xmax + 1, 1] = Y
    return pixmap
