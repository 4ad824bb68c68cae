"""Slow, obviously-correct numpy versions of the outlier-detection kernels (test oracles)."""

import numpy as np
from scipy import ndimage


def median_oracle(data, weight=None, thresholds=None, nlow=0, nhigh=0):
    """Pixel-by-pixel masked median with nlow/nhigh rejection (python loop)."""
    data = np.asarray(data, dtype=np.float32)
    n, ny, nx = data.shape
    out = np.full((ny, nx), np.nan, dtype=np.float32)
    for y in range(ny):
        for x in range(nx):
            vals = []
            for k in range(n):
                v = data[k, y, x]
                if np.isnan(v):
                    continue
                if weight is not None and not (weight[k, y, x] >= thresholds[k]):
                    continue
                vals.append(v)
            vals = sorted(vals)
            kept = vals[nlow:len(vals) - nhigh]
            if kept:
                out[y, x] = np.median(np.array(kept, dtype=np.float32))
    return out


def derivative_oracle(img):
    """max |img - neighbour| over finite 4-neighbour differences; NaN stays NaN."""
    img = np.asarray(img, dtype=np.float32)
    pad = np.pad(img, 1, constant_values=np.nan)
    diffs = np.stack([
        np.abs(img - pad[1:-1, :-2]),
        np.abs(img - pad[1:-1, 2:]),
        np.abs(img - pad[:-2, 1:-1]),
        np.abs(img - pad[2:, 1:-1]),
    ])
    out = np.where(np.isnan(diffs), -1.0, diffs).max(axis=0)
    out = np.where(out < 0, 0.0, out).astype(np.float32)
    out[np.isnan(img)] = np.nan
    return out


def cr_mask_oracle(sci, err, blot, *, snr, scale, backg=0.0, grow=1):
    """The reference rule with scipy: dilate m1 by a box convolution (mode nearest)."""
    sci = np.asarray(sci, dtype=np.float32)
    blot = np.asarray(blot, dtype=np.float32)
    err_ = np.nan_to_num(np.asarray(err, dtype=np.float32))
    deriv = derivative_oracle(blot)
    delta = np.abs(sci.astype(np.float64) - blot - backg)
    with np.errstate(invalid="ignore"):
        m1 = delta > scale[0] * deriv.astype(np.float64) + snr[0] * err_
        m2 = delta > scale[1] * deriv.astype(np.float64) + snr[1] * err_
    size = 2 * grow + 1
    m1s = ndimage.convolve(m1.astype(np.int32), np.ones((size, size), np.int32),
                           mode="nearest") > 0
    return m1s & m2


def sigma_clipped_mean_oracle(values):
    """astropy's sigma_clip (3σ, 5 iterations, median centre, std) then mean."""
    from astropy.stats import sigma_clip

    clipped = sigma_clip(np.asarray(values, dtype=np.float64), sigma=3, maxiters=5,
                         masked=False)
    return float(np.mean(clipped))


def float32_keys(values):
    """Order-preserving uint32 keys of float32 values (sign-magnitude -> offset binary)."""
    u = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    neg = (u >> 31) == 1
    return np.where(neg, (~u) & 0xFFFFFFFF, u | 0x80000000).astype(np.uint32)


def window_selection_oracle(values, lo, hi, skip_zero):
    """The values a window kernel selects: finite, non-zero if asked, lo <= x <= hi."""
    v = np.asarray(values, dtype=np.float32).ravel()
    d = v.astype(np.float64)
    sel = np.isfinite(d) & (d >= lo) & (d <= hi)
    if skip_zero:
        sel &= d != 0
    return v[sel]


def bilinear_oracle(image, X, Y):
    """Bilinear interpolation at valid positions (0 <= X < nx, 0 <= Y < ny), one at a time.

    On the last column (row) only the other axis is interpolated; zero-weight terms
    are left out (a NaN neighbour does not spoil a position exactly on a pixel).
    """
    img = np.asarray(image, dtype=np.float32)
    gy, gx = img.shape
    out = np.empty(np.shape(X), dtype=np.float32)
    for idx in np.ndindex(out.shape):
        x, y = float(X[idx]), float(Y[idx])
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        x1, y1 = x0 + 1, y0 + 1
        if x1 >= gx:
            x1, fx = x0, 0.0
        if y1 >= gy:
            y1, fy = y0, 0.0
        v = (1 - fx) * (1 - fy) * float(img[y0, x0])
        if fx > 0:
            v += fx * (1 - fy) * float(img[y0, x1])
        if fy > 0:
            v += (1 - fx) * fy * float(img[y1, x0])
            if fx > 0:
                v += fx * fy * float(img[y1, x1])
        out[idx] = v
    return out


def spline_blot_oracle(median, pixmap, blur_variance=0.0, guard=3):
    """The sharpened cubic-spline blot with scipy.ndimage on the whole median.

    Non-finite values -> median of the finite ones; ``m - (v/2)·∇²m`` (5-point
    Laplacian, edges replicated); cubic B-spline (mirror) sampled with
    ``map_coordinates``; bilinear within ``guard`` pixels (Chebyshev, rounded
    position) of a non-finite value and on the last row/column; NaN outside.
    """
    med = np.asarray(median, dtype=np.float32)
    gy, gx = med.shape
    X = np.asarray(pixmap[..., 0], dtype=np.float64)
    Y = np.asarray(pixmap[..., 1], dtype=np.float64)
    bad = ~np.isfinite(med)
    work = med.astype(np.float64)
    if bad.any():
        work[bad] = np.median(work[~bad]) if (~bad).any() else 0.0
    if blur_variance > 0:
        p = np.pad(work, 1, mode="edge")
        lap = p[1:-1, :-2] + p[1:-1, 2:] + p[:-2, 1:-1] + p[2:, 1:-1] - 4.0 * work
        work = work - (0.5 * blur_variance) * lap
    coef = ndimage.spline_filter(work, order=3, mode="mirror")
    near = ndimage.binary_dilation(bad, np.ones((2 * guard + 1,) * 2, bool))
    with np.errstate(invalid="ignore"):
        valid = (X >= 0) & (X < gx) & (Y >= 0) & (Y < gy)
    out = np.full(X.shape, np.nan, np.float32)
    if not valid.any():
        return out
    xv, yv = X[valid], Y[valid]
    spline = ndimage.map_coordinates(coef, [yv, xv], order=3, mode="mirror",
                                     prefilter=False)
    lin = bilinear_oracle(med, xv, yv)
    iy = np.rint(yv).astype(int).clip(0, gy - 1)
    ix = np.rint(xv).astype(int).clip(0, gx - 1)
    use_spline = (xv <= gx - 1) & (yv <= gy - 1) & ~near[iy, ix]
    out[valid] = np.where(use_spline, spline.astype(np.float32), lin)
    return out
