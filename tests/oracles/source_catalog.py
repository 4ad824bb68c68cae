"""Slow, obviously-correct versions of the source-catalog image operations (test oracles)."""

import numpy as np
from scipy import ndimage


def masked_convolve_oracle(data, kernel, mask):
    """``conv(data·w) / conv(w)`` (w = 1 on good pixels, 0 outside the image), float64.

    Direct sum over the kernel offsets on a zero-padded copy; 0 at masked pixels and
    where no good pixel is under the kernel.
    """
    k = np.asarray(kernel, float) / np.sum(kernel)
    ky, kx = k.shape[0] // 2, k.shape[1] // 2
    ny, nx = data.shape
    good = (~mask).astype(float)
    d = np.pad(np.where(mask, 0.0, data).astype(float), ((ky, ky), (kx, kx)))
    g = np.pad(good, ((ky, ky), (kx, kx)))
    num = np.zeros((ny, nx))
    den = np.zeros((ny, nx))
    for p in range(k.shape[0]):
        for q in range(k.shape[1]):
            # convolution: out[y, x] += k[p, q] * in[y - (p - ky), x - (q - kx)]
            ys, xs = 2 * ky - p, 2 * kx - q
            num += k[p, q] * d[ys : ys + ny, xs : xs + nx]
            den += k[p, q] * g[ys : ys + ny, xs : xs + nx]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[mask | ~np.isfinite(out)] = 0.0
    return out


def daofind_shape_oracle(data, mask, x, y, kern, footprint, half):
    """DAOFIND sharpness / roundness1 from the fully convolved image, one source at a time."""
    clean = np.where(mask | ~np.isfinite(data), 0, data).astype(data.dtype)
    conv = ndimage.convolve(clean, kern, mode="constant", cval=0.0)
    ny, nx = data.shape
    sharp = np.full(len(x), np.nan)
    round1 = np.full(len(x), np.nan)
    for k in range(len(x)):
        if not (np.isfinite(x[k]) and np.isfinite(y[k])):
            continue
        xi, yi = int(np.rint(x[k])), int(np.rint(y[k]))
        ds = np.full((2 * half + 1, 2 * half + 1), np.nan)
        cs = np.full((2 * half + 1, 2 * half + 1), np.nan)
        for a in range(2 * half + 1):
            for b in range(2 * half + 1):
                yy, xx = yi - half + a, xi - half + b
                if 0 <= yy < ny and 0 <= xx < nx:
                    ds[a, b] = clean[yy, xx]
                    cs[a, b] = conv[yy, xx]
        ring = footprint.copy()
        ring[half, half] = False
        with np.errstate(invalid="ignore", divide="ignore"):
            sharp[k] = (ds[half, half] - np.nanmean(ds[ring])) / cs[half, half]
            c = np.where(footprint, cs, 0.0)
            q1 = np.nansum(c[: half + 1, half + 1 :])
            q2 = np.nansum(c[:half, : half + 1])
            q3 = np.nansum(c[half:, :half])
            q4 = np.nansum(c[half + 1 :, half:])
            round1[k] = 2.0 * (-q1 + q2 - q3 + q4) / np.nansum(np.abs(c))
    return sharp, round1
