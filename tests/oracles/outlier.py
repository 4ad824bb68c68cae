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
