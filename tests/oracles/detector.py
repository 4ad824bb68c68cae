"""Slow, literal numpy versions of the detector-level kernels, used as test oracles.

Written straight from ALGORITHMS.md (sections 3 and 5.3) with whole-array numpy
operations and explicit loops, independent of the Cython kernels.
"""

import numpy as np

DNU, SAT, ADF = 1, 2, 64
NO_SAT_CHECK = 1 << 21
NO_LIN_CORR = 1 << 20


def _dilate(mask, n):
    if n <= 0:
        return mask
    ny, nx = mask.shape
    pad = np.zeros((ny + 2 * n, nx + 2 * n), dtype=bool)
    pad[n:n + ny, n:n + nx] = mask
    out = np.zeros_like(mask)
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            out |= pad[n + dy:n + dy + ny, n + dx:n + dx + nx]
    return out


def saturation(data, groupdq, pixeldq, threshold, threshold_dq, read_pattern, n_grow=0, backup=0):
    """Return (groupdq, pixeldq) new arrays flagged as in ALGORITHMS.md section 3."""
    gdq = groupdq.copy()
    pdq = pixeldq.copy()
    n = data.shape[0]
    nosat = ((threshold_dq & NO_SAT_CHECK) != 0) | np.isnan(threshold)
    thr = np.where(nosat, 65536.0, threshold.astype(np.float64))
    ever = np.zeros(data.shape[1:], dtype=bool)
    for g in range(n):
        ever |= (data[g] >= thr) | ((gdq[g] & SAT) != 0)
        gdq[g][_dilate(ever, n_grow)] |= SAT
        gdq[g][data[g] <= 0] |= ADF | DNU
    for g in range(n - 2, -1, -1):
        d = np.mean(read_pattern[g]) / read_pattern[g][-1]
        dpix = np.where(nosat, 1.0, d)
        cond = (
            (dpix != 1.0)
            & (data[g] >= thr * dpix)
            & ((gdq[g] & (SAT | DNU)) == 0)
            & ((gdq[g + 1] & SAT) != 0)
        )
        gdq[g][_dilate(cond, n_grow)] |= DNU
    if n > 2:
        r0, r1 = data[0].astype(np.float64), data[1].astype(np.float64)
        cond = (
            (r0 / np.mean(read_pattern[0]) * read_pattern[2][-1] < thr)
            & (r1 - r0 > (thr - r0) / len(read_pattern[1]))
            & ((gdq[2] & SAT) != 0)
            & ((gdq[1] & SAT) == 0)
        )
        gdq[1][cond] |= DNU
    pdq |= threshold_dq.astype(np.uint32)
    pdq[np.isnan(threshold)] |= NO_SAT_CHECK
    for _ in range(backup):
        for i in range(n - 1):
            if len(read_pattern[i]) > 1:
                gdq[i] |= gdq[i + 1] & SAT
    return gdq, pdq


def _prepare(coeffs, refdq):
    """Benign coefficients and the extra NO_LIN_CORR mask (float64 copy)."""
    c = coeffs.astype(np.float64).copy()
    bad_nan = np.isnan(c).any(axis=0)
    bad_zero = c[1] == 0 if c.shape[0] > 1 else np.ones(c.shape[1:], dtype=bool)
    flagged = (refdq & NO_LIN_CORR) != 0
    benign = bad_nan | bad_zero | flagged
    c[:, benign] = 0.0
    c[1, benign] = 1.0
    return c, bad_nan | bad_zero


def _poly(c, x):
    out = np.zeros_like(x)
    for k in range(c.shape[0] - 1, -1, -1):
        out = out * x + c[k]
    return out


def linearity(data, groupdq, pixeldq, coeffs, lin_dq, read_pattern=None,
              icoeffs=None, ilin_dq=None, inl_value=None, inl_correction=None):
    """Return (data, groupdq, pixeldq) corrected as in ALGORITHMS.md section 5.3 (pixel loops)."""
    out = data.astype(np.float64).copy()
    gdq = groupdq.copy()
    pdq = pixeldq.copy() | lin_dq.astype(np.uint32)
    c, extra = _prepare(coeffs, lin_dq)
    pdq[extra] |= NO_LIN_CORR
    n, ny, nx = data.shape
    sat = (groupdq & SAT) != 0
    if icoeffs is None or n < 2:
        for g in range(n):
            corr = _poly(c, out[g])
            out[g] = np.where(sat[g], out[g], corr)
    else:
        pdq |= ilin_dq.astype(np.uint32)
        ic, iextra = _prepare(icoeffs, ilin_dq)
        pdq[iextra] |= NO_LIN_CORR
        means = [float(np.mean(r)) for r in read_pattern]
        for y in range(ny):
            for x in range(nx):
                cc, icc = c[:, y, x], ic[:, y, x]
                nun = max(int((~sat[:, y, x]).sum()) - 1, 2)
                last = nun - 1
                r = data[:, y, x].astype(np.float64)
                f = r[0] if sat[0, y, x] else _poly(cc, r[0])
                z = r[last] if sat[last, y, x] else _poly(cc, r[last])
                slope = (z - f) / (means[last] - means[0])
                for i, reads in enumerate(read_pattern):
                    if sat[i, y, x]:
                        continue
                    lin = f + slope * (np.asarray(reads, dtype=np.float64) - means[0])
                    raw = _poly(icc, lin)
                    raw = raw + (r[i] - raw.mean())
                    if inl_value is not None:
                        raw = raw + np.interp(raw, inl_value, inl_correction[x // 128])
                    out[i, y, x] = _poly(cc, raw).mean()
    big = np.abs(out) > 1e6
    gdq[big] |= DNU
    out = np.clip(out, -1e6, 1e6)
    return out.astype(np.float32), gdq, pdq


def refpix(data, amp33, pixeldq, alpha, gamma, zeta, remove_offset=True, remove_trends=True,
           cosine_interpolate=True, fft_interpolate=True):
    """Literal ALGORITHMS.md section 4 on full stacked arrays; returns (data, amp33) new arrays."""
    data = data.copy()
    nres, ny, nx = data.shape
    w = amp33.shape[2]
    data[:, (pixeldq & (1 << 17)) != 0] = 0
    std = np.concatenate([data, amp33.astype(np.float32)], axis=2)  # [frames, rows, 33*w]
    if remove_offset:
        offset = std.astype(np.float64).mean(axis=0)
        std = (std - offset).astype(np.float32)
    ch = std.reshape(nres, ny, 33, w).transpose(2, 0, 1, 3).copy()  # [33, frames, rows, w]
    ch[1:32:2] = ch[1:32:2, :, :, ::-1]
    row_len = w + 12
    padded = np.zeros((33, nres, ny, row_len), dtype=np.float32)
    padded[..., :w] = ch
    length = ny * row_len
    flat = padded.reshape(33, nres, length)
    t = (np.arange(length, dtype=np.float64) - (length - 1) / 2.0)
    refmask = np.zeros((ny, row_len), dtype=bool)
    refmask[:4] = True
    refmask[-4:] = True
    refmask = refmask.ravel()
    if remove_trends:
        for c in range(33):
            for f in range(nres):
                y = flat[c, f]
                sel = refmask & (y != 0)
                if sel.sum() == 0:
                    continue
                if sel.sum() == 1:
                    m, b = 0.0, float(y[sel][0])
                else:
                    m, b = np.polyfit(t[sel], y[sel].astype(np.float64), 1)
                nz = y != 0
                y[nz] = (y[nz] - (m * t[nz] + b)).astype(np.float32)
    kern = np.sin(np.arange(1, 33) * np.pi / 32)
    padmask = np.zeros((ny, row_len), dtype=bool)
    padmask[:, w:] = True
    padmask = padmask.ravel()
    nfreq = length // 2 + 1
    apod = (1 + np.cos(2 * np.pi * np.arange(nfreq) / length)) / 2
    for f in range(nres):
        x = flat[32, f].astype(np.float64)
        if cosine_interpolate:
            mm = (x != 0).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                x = x + np.convolve(x, kern, mode="same") / np.convolve(mm, kern, mode="same") * (1 - mm)
            x[np.isnan(x)] = 0
            x = x.astype(np.float32)
        if fft_interpolate:
            x = x.astype(np.float32)
            for _ in range(3):
                x[padmask] = np.fft.irfft(apod * np.fft.rfft(x), n=length)[padmask].astype(np.float32)
        flat[32, f] = x
        left = np.zeros((ny, row_len))
        left[:, :4] = padded[0, f, :, :4]
        right = np.zeros((ny, row_len))
        right[:, :4] = padded[31, f, :, :4]
        lh = np.fft.rfft(left.ravel() / length) * (row_len / 4)
        rh = np.fft.rfft(right.ravel() / length) * (row_len / 4)
        ah = np.fft.rfft(flat[32, f].astype(np.float64) / length)
        for c in range(32):
            corr = np.fft.irfft((lh * gamma[c] + rh * zeta[c] + ah * alpha[c]) * 2 * nfreq, n=length)
            flat[c, f] = (flat[c, f] - corr).astype(np.float32)
    ch = padded[..., :w].copy()
    ch[1:32:2] = ch[1:32:2, :, :, ::-1]
    std = ch.transpose(1, 2, 0, 3).reshape(nres, ny, 33 * w)
    if remove_offset:
        std = (std + offset).astype(np.float32)
    out = std[:, :, :nx].astype(np.float32)
    a33 = np.minimum(np.abs(std[:, :, nx:]), 65535).astype(np.uint16)
    return out, a33
