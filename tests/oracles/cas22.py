"""Slow pure-numpy oracle of the ``ols_cas22`` ramp fit with jump detection.

Written straight from ALGORITHMS.md §1.1-§1.6 (one pixel at a time, vectorised over the
resultants of a segment), to check ``romancore._ext.ramp_fit`` against.  It follows the
same documented deviations as romancore (double precision, unit-sigma combination weights,
NaN resultants excluded).
"""

from __future__ import annotations

import numpy as np

JUMP = 4


def pattern_quantities(read_pattern, frame_time):
    t_bar, tau, n = [], [], []
    for reads in read_pattern:
        r = np.asarray(reads, dtype=float)
        k = np.arange(1, r.size + 1)
        t_bar.append(frame_time * r.mean())
        tau.append(frame_time / r.size**2 * np.sum((2 * r.size - 2 * k + 1) * r))
        n.append(float(r.size))
    return np.array(t_bar), np.array(tau), np.array(n)


def power(snr):
    for limit, p in ((5, 0.0), (10, 0.4), (20, 1.0), (50, 3.0), (100, 6.0)):
        if snr < limit:
            return p
    return 10.0


def segment_weights(R, t_bar, n, sig2):
    """(weights W, slope coefficients K) of a segment of two or more resultants (§1.2)."""
    smax = max(R[-1] - R[0], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = smax / np.sqrt(sig2 + smax)
    p = power(snr)
    half = (t_bar[-1] - t_bar[0]) / 2
    scale = half if half != 0 else 1.0
    mid = (t_bar[-1] + t_bar[0]) / 2
    w = (1 + p) * n / (1 + p * n) * np.abs((t_bar - mid) / scale) ** p
    f0, f1, f2 = w.sum(), (w * t_bar).sum(), (w * t_bar**2).sum()
    d = f2 * f0 - f1**2
    if d == 0:
        return w, np.zeros_like(w)
    return w, (f0 * t_bar - f1) * w / d


def covariance(t_bar, tau, n, sig2, flux):
    """Covariance matrix of the resultants: sigma^2 / N_i + f tau_i on the diagonal and
    f tbar_min(i,j) off it."""
    cov = flux * np.minimum.outer(t_bar, t_bar)
    cov[np.diag_indices_from(cov)] = flux * tau
    return cov + np.diag(sig2 / n)


def refit_stat(R, s, e, t_bar, tau, n, sig2):
    """(relative argmax, max Z) of the stage-2 common-slope refit of segment s..e.

    Candidates i = s..e-1: a step between i and i+1 (after-part starts at i+1) or, for
    i <= e-2, inside resultant i+1 (after-part starts at i+2).  Each side with two or more
    resultants is fitted (§1.2); the common slope is the inverse read-variance weighted mean
    of the side slopes.  The step estimate is the minimum-variance blend of the
    adjacent-resultant difference and the difference of the W-weighted side intercepts,
    with its variance a^T C a from the full covariance matrix.
    """
    best, arg = np.nan, 0
    idx = np.arange(s, e + 1)
    for i in range(s, e):
        for a0 in (i + 1, i + 2):
            if a0 > e:
                continue
            sides = []
            for lo, hi in ((s, i), (a0, e)):
                sl = slice(lo, hi + 1)
                if hi - lo + 1 >= 2:
                    w, k = segment_weights(R[sl], t_bar[sl], n[sl], sig2)
                    rv = np.sum(k**2 / n[sl])
                    wt = 1 / rv if rv > 0 else 0.0
                    mean = np.zeros(e + 1)
                    if w.sum() > 0:
                        mean[sl] = w / w.sum()
                        tw = np.sum(w * t_bar[sl]) / w.sum()
                    else:
                        mean[hi if lo == s else lo] = 1.0
                        tw = t_bar[hi if lo == s else lo]
                    kk = np.zeros(e + 1)
                    kk[sl] = k
                    sides.append((wt, kk, mean, tw))
                else:
                    mean = np.zeros(e + 1)
                    mean[lo] = 1.0
                    sides.append((0.0, np.zeros(e + 1), mean, t_bar[lo]))
            (wb, kb, mb, tb), (wa, ka, ma, ta) = sides
            if wb + wa == 0:
                continue
            slope_coef = (wb * kb + wa * ka) / (wb + wa)
            adjacent = -(t_bar[a0] - t_bar[i]) * slope_coef
            adjacent[a0] += 1.0
            adjacent[i] -= 1.0
            intercept = ma - mb - (ta - tb) * slope_coef
            a, b = adjacent[idx], intercept[idx]
            flux = max(float(slope_coef[idx] @ R[idx]), 0.0)
            cov = covariance(t_bar[idx], tau[idx], n[idx], sig2, flux)
            va, vb, cab = a @ cov @ a, b @ cov @ b, a @ cov @ b
            den = va + vb - 2 * cab
            lam = (vb - cab) / den if den > 1e-12 * (va + vb) else 1.0
            coef = lam * a + (1 - lam) * b
            var = coef @ cov @ coef
            if not var > 0:
                continue
            z = (coef @ R[idx]) / np.sqrt(var)
            if z > best or np.isnan(best):
                best, arg = z, i - s
    return arg, best


def fit_segment(R, t_bar, tau, n, sig2):
    """(slope, read variance per unit sigma^2, Poisson variance per unit flux) of one segment."""
    if R.size <= 1:
        return np.nan, np.nan, np.nan
    smax = max(R[-1] - R[0], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = smax / np.sqrt(sig2 + smax)
    p = power(snr)
    half = (t_bar[-1] - t_bar[0]) / 2
    scale = half if half != 0 else 1.0
    mid = (t_bar[-1] + t_bar[0]) / 2
    w = (1 + p) * n / (1 + p * n) * np.abs((t_bar - mid) / scale) ** p
    f0, f1, f2 = w.sum(), (w * t_bar).sum(), (w * t_bar**2).sum()
    d = f2 * f0 - f1**2
    if d == 0:
        return 0.0, 0.0, 0.0
    k = (f0 * t_bar - f1) * w / d
    earlier = np.concatenate(([0.0], np.cumsum(k * t_bar)[:-1]))
    return (
        float(np.sum(k * R)),
        float(np.sum(k**2 / n)),
        float(np.sum(k**2 * tau + 2 * k * earlier)),
    )


def jump_stat(R, s, e, m, t_bar, tau, n, sig2):
    """(relative argmax, max statistic) of segment s..e with slope m (ALGORITHMS.md §1.4)."""
    c = -m / (t_bar[e] - t_bar[s])

    def z(i, j):
        if j > e:
            return np.nan
        dt = t_bar[j] - t_bar[i]
        delta = (R[j] - R[i]) / dt
        vr = sig2 * (1 / n[j] + 1 / n[i])
        vs = tau[j] + tau[i] - 2 * min(t_bar[i], t_bar[j])
        with np.errstate(invalid="ignore", divide="ignore"):
            return (delta - m) / np.sqrt((vr + m * vs) / dt**2 + c)

    best, arg = z(e - 1, e), e - 1 - s
    for i in range(s, e - 1):
        stat = np.fmax(z(i, i + 1), z(i, i + 2))
        if stat > best:
            best, arg = stat, i - s
    return arg, best


def fit_pixel(R_dn, gdq, read_noise, gain, read_pattern, frame_time,
              use_jump=True, intercept=5.5, constant=1 / 3, refit=False, screen=3.0):
    """Return (slope, var_poisson, var_rnoise, groupdq) of one pixel in DN units.

    ``refit`` adds the stage-2 common-slope refit (``refit_stat``) for segments of three or
    more resultants whose Cas22 maximum lies in (screen, threshold]."""
    t_bar, tau, n = pattern_quantities(read_pattern, frame_time)
    gdq = np.array(gdq, dtype=np.uint8)
    R = np.asarray(R_dn, dtype=float)
    if not (gain > 0 and np.isfinite(gain) and read_noise >= 0 and np.isfinite(read_noise)):
        return np.nan, np.nan, np.nan, gdq
    gdq[~np.isfinite(R)] |= 1
    R = R * gain
    sig2 = (read_noise * gain) ** 2
    good = gdq == 0
    stack = []
    i = 0
    while i < R.size:
        if good[i]:
            j = i
            while j + 1 < R.size and good[j + 1]:
                j += 1
            stack.append((i, j))
            i = j + 1
        else:
            i += 1
    fits = []
    while stack:
        s, e = stack.pop()
        sl = slice(s, e + 1)
        slope, rv, pv = fit_segment(R[sl], t_bar[sl], tau[sl], n[sl], sig2)
        if np.isnan(slope):
            continue
        if use_jump:
            arg, stat = jump_stat(R, s, e, slope, t_bar, tau, n, sig2)
            threshold = intercept - constant * np.log10(np.clip(slope, 1, 1e4))
            if refit and not stat > threshold and stat > screen and e - s + 1 >= 3:
                arg2, stat2 = refit_stat(R, s, e, t_bar, tau, n, sig2)
                if stat2 > threshold:
                    arg, stat = arg2, stat2
            if stat > threshold:
                j0 = s + arg
                gdq[j0] |= JUMP
                gdq[j0 + 1] |= JUMP
                if j0 > s:
                    stack.append((s, j0 - 1))
                if j0 + 1 < e:
                    stack.append((j0 + 2, e))
                continue
        fits.append((slope, rv, pv))
    if fits:
        s, rv, pv = (np.array(v) for v in zip(*fits, strict=True))
        w = np.where(rv == 0, 0.0, 1 / np.where(rv == 0, 1, rv))
    else:
        s = rv = pv = w = np.zeros(0)
    den = w.sum() if w.sum() != 0 else 1.0
    slope = np.sum(w * s) / den
    var_r = sig2 * np.sum(w**2 * rv) / den**2
    var_p = np.sum(w**2 * pv) / den**2 * max(slope, 0.0)
    return slope / gain, var_p / gain**2, var_r / gain**2, gdq


def fit_cube(resultants, groupdq, read_noise, gain, read_pattern, frame_time, **kw):
    """Oracle over a small cube: arrays (ny, nx) of slope, var_poisson, var_rnoise and the
    updated groupdq (nres, ny, nx)."""
    nres, ny, nx = resultants.shape
    gdq_in = np.zeros(resultants.shape, np.uint8) if groupdq is None else groupdq
    rn = np.broadcast_to(read_noise, (ny, nx))
    g = np.broadcast_to(gain, (ny, nx))
    out = np.zeros((3, ny, nx))
    gdq = np.zeros(resultants.shape, np.uint8)
    for y in range(ny):
        for x in range(nx):
            *vals, gdq[:, y, x] = fit_pixel(resultants[:, y, x], gdq_in[:, y, x], rn[y, x],
                                            g[y, x], read_pattern, frame_time, **kw)
            out[:, y, x] = vals
    return out[0], out[1], out[2], gdq
