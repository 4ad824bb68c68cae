"""Up-the-ramp simulation: reads generated one by one and averaged into resultants.

For every read k of the MA table the accumulated charge of a pixel grows by a Poisson
draw with mean ``rate·Δt`` (electrons; reads that belong to no resultant are merged into
the next used read, which is exact because Poisson increments add). Cosmic rays deposit
their charge at a recorded read. The charge is converted to DN with the pixel gain,
limited by the pixel full well, made non-linear with ``s − β·s²`` (the inverse of the
LINEARITY reference), shifted by the pixel pedestal and by the readout drifts, and
averaged over the reads of each resultant. Read noise is added per resultant as a normal
draw with σ/√N: the mean of N independent per-read normal deviates has exactly that
distribution, so this is the per-read noise model at a ninth of the cost.

Work proceeds by blocks of rows, so only one block of one read is ever held; the
statistics therefore satisfy Casertano et al. (2022): Var(R_i) = f·τ_i + σ²/N_i and
Cov(R_i, R_j) = f·t̄_i for i < j (in electrons, without non-linearity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ParameterError
from .instrument import validate_read_pattern

CR_DTYPE = np.dtype([("y", "i4"), ("x", "i4"), ("read", "i4"), ("charge", "f4"), ("hit", "i4")])
"""Cosmic-ray deposits: pixel row/column (full array), first read (1-based) that contains the
charge, charge in electrons, and the id of the hit the deposit belongs to."""

ADC_MAX = 65535


def _as_2d(name, value, shape, dtype=np.float32):
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        return np.broadcast_to(arr, shape)
    if arr.shape != shape:
        raise ParameterError(f"{name} has shape {arr.shape}; it must be a scalar or have shape {shape}")
    return arr


def cosmic_ray_hits(shape, read_pattern, frame_time: float, rng: np.random.Generator, *,
                    rate_per_cm2_s: float = 5.0, pixel_size_um: float = 10.0,
                    border: int = 4, median_charge: float = 1500.0) -> np.ndarray:
    """Draw cosmic-ray deposits for one exposure.

    Hits arrive uniformly in time at ``rate_per_cm2_s`` over the sensitive area (the array
    without its reference border). Each hit deposits a log-normal charge (median
    ``median_charge`` e, σ_ln = 0.9, capped at 2e5 e) in one pixel and 0–12 % of it in each of
    the 4 neighbours. Returns a structured array of dtype :data:`CR_DTYPE`, sorted by read.
    """
    groups = validate_read_pattern(read_pattern)
    nreads = groups[-1][-1]
    ny, nx = shape
    area_cm2 = (ny - 2 * border) * (nx - 2 * border) * (pixel_size_um * 1e-4) ** 2
    nhit = rng.poisson(rate_per_cm2_s * area_cm2 * nreads * frame_time)
    y = rng.integers(border, ny - border, nhit)
    x = rng.integers(border, nx - border, nhit)
    read = rng.integers(1, nreads + 1, nhit)
    charge = np.minimum(median_charge * np.exp(0.9 * rng.standard_normal(nhit)), 2e5)
    frac = rng.uniform(0.0, 0.12, (nhit, 4))
    parts = [(y, x, charge)]
    for k, (dy, dx) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
        parts.append((y + dy, x + dx, charge * frac[:, k]))
    out = np.empty(nhit * 5, dtype=CR_DTYPE)
    for k, (yy, xx, cc) in enumerate(parts):
        sl = slice(k * nhit, (k + 1) * nhit)
        out["y"][sl] = yy
        out["x"][sl] = xx
        out["read"][sl] = read
        out["charge"][sl] = cc
        out["hit"][sl] = np.arange(nhit)
    keep = (out["y"] >= border) & (out["y"] < ny - border) & (out["x"] >= border) & (out["x"] < nx - border)
    out = out[keep]
    return out[np.argsort(out["read"], kind="stable")]


def simulate_resultants(
    rate,
    read_pattern,
    frame_time: float,
    *,
    gain=1.0,
    read_noise=0.0,
    pedestal=0.0,
    nonlinearity=None,
    full_well=None,
    cosmic_rays: np.ndarray | None = None,
    drift: Callable[[int, int, int], np.ndarray] | None = None,
    rng: np.random.Generator | int | None = None,
    out: np.ndarray | Sequence[np.ndarray] | None = None,
    dtype=np.float32,
    rows_per_block: int = 64,
) -> np.ndarray | list[np.ndarray]:
    """Simulate the resultants of one exposure, read by read, block of rows by block of rows.

    Parameters
    ----------
    rate : float array [ny, nx]
        Photo-electron rate of every pixel (e/s), including sky, sources, dark current and
        flat-field response. Must be finite and >= 0.
    read_pattern : list of lists of int
        1-based read numbers averaged into each resultant.
    frame_time : float
        Time between reads (s); read k happens at ``k·frame_time`` after the reset.
    gain : float or float array [ny, nx]
        e/DN (> 0).
    read_noise : float or float array [ny, nx]
        Read noise of one read (DN).
    pedestal : float or float array [ny, nx]
        Bias level added to every read (DN).
    nonlinearity : float array [ny, nx] or None
        β (1/DN): a linear signal s (DN above pedestal) reads as ``s − β·s²``.
    full_well : float array [ny, nx] or None
        Linear signal (DN above pedestal) at which the pixel stops collecting charge.
    cosmic_rays : structured array of :data:`CR_DTYPE` or None
        Deposits (full-array pixel, first read containing the charge, electrons).
    drift : callable ``drift(row_start, row_stop, read) -> float array [rows, nx]`` or None
        Additive readout signal (DN) of one read, e.g. reference-pixel drifts.
    rng : numpy Generator or int seed
    out : array [nres, ny, nx] or a sequence of arrays [nres, ny, nx_k] with Σ nx_k = nx
        Where to write; allocated with ``dtype`` if None. Integer outputs (uint16) are
        rounded and clipped to the A/D range [0, 65535].
    rows_per_block : int
        Rows simulated at once (memory ~ 40 bytes × rows × nx).

    Returns
    -------
    The output array (or the list of output arrays when ``out`` was a sequence).
    """
    groups = validate_read_pattern(read_pattern)
    rate = np.asarray(rate)
    if rate.ndim != 2:
        raise ParameterError(f"rate must be a 2-D array, got shape {rate.shape}")
    if not np.all(np.isfinite(rate)) or np.any(rate < 0):
        raise ParameterError("rate must be finite and >= 0 everywhere")
    if not frame_time > 0:
        raise ParameterError(f"frame_time={frame_time!r} must be > 0")
    shape = rate.shape
    ny, nx = shape
    gain = _as_2d("gain", gain, shape)
    if np.any(~(gain > 0)):
        raise ParameterError("gain must be > 0 everywhere")
    read_noise = _as_2d("read_noise", read_noise, shape)
    pedestal = _as_2d("pedestal", pedestal, shape)
    if nonlinearity is not None:
        nonlinearity = _as_2d("nonlinearity", nonlinearity, shape)
    if full_well is not None:
        full_well = _as_2d("full_well", full_well, shape)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if rows_per_block < 1:
        raise ParameterError(f"rows_per_block={rows_per_block!r} must be >= 1")

    nres = len(groups)
    single = out is None or isinstance(out, np.ndarray)
    outs = [np.empty((nres, ny, nx), dtype=dtype)] if out is None else ([out] if single else list(out))
    widths = [o.shape[2] for o in outs]
    if sum(widths) != nx or any(o.shape[:2] != (nres, ny) for o in outs):
        raise ParameterError(
            f"out shapes {[o.shape for o in outs]} do not tile the ramp shape {(nres, ny, nx)}"
        )
    col_edges = np.concatenate([[0], np.cumsum(widths)])

    if cosmic_rays is None:
        cosmic_rays = np.empty(0, dtype=CR_DTYPE)
    cr_rows = cosmic_rays["y"]

    used_reads = [r for g in groups for r in g]
    last_of = {g[-1]: i for i, g in enumerate(groups)}

    for r0 in range(0, ny, rows_per_block):
        r1 = min(r0 + rows_per_block, ny)
        blk = slice(r0, r1)
        lam_per_s = rate[blk].astype(np.float64)
        g_blk = gain[blk]
        charge = np.zeros((r1 - r0, nx), dtype=np.float64)
        acc = np.zeros((r1 - r0, nx), dtype=np.float64)
        crs = cosmic_rays[(cr_rows >= r0) & (cr_rows < r1)]
        cr_pos = 0
        prev_read = 0
        nin = 0
        for k in used_reads:
            charge += rng.poisson(lam_per_s * ((k - prev_read) * frame_time))
            prev_read = k
            while cr_pos < len(crs) and crs["read"][cr_pos] <= k:
                c = crs[cr_pos]
                charge[c["y"] - r0, c["x"]] += c["charge"]
                cr_pos += 1
            signal = charge / g_blk
            if full_well is not None:
                np.minimum(signal, full_well[blk], out=signal)
            if nonlinearity is not None:
                signal -= nonlinearity[blk] * signal * signal
            acc += signal
            if drift is not None:
                acc += drift(r0, r1, k)
            nin += 1
            if k in last_of:
                i = last_of[k]
                res = acc / nin + pedestal[blk]
                res += read_noise[blk] / np.sqrt(nin) * rng.standard_normal(res.shape)
                for o, c0, c1 in zip(outs, col_edges[:-1], col_edges[1:], strict=True):
                    part = res[:, c0:c1]
                    if np.issubdtype(o.dtype, np.integer):
                        part = np.clip(np.rint(part), 0, ADC_MAX)
                    o[i, blk] = part
                acc[:] = 0.0
                nin = 0
    return outs[0] if single else outs
