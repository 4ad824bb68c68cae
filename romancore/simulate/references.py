"""The simulated detector (its true per-pixel properties) and the reference arrays that
describe it exactly.

:func:`make_detector_truth` draws, from a seed and a detector name, every property the
ramp simulation uses: gain, read noise, pedestal, dark current (with hot pixels), flat
response (with dead pixels), non-linearity β, full well and the readout drifts. The
reference arrays (MASK, SATURATION, LINEARITY, INVERSELINEARITY, DARK, GAIN, READNOISE,
FLAT, REFPIX) are computed from the same truth, so calibrating with them undoes the
simulation.

Non-linearity model: a linear signal s (DN above the pixel pedestal p) reads as
``s − β s²``. With the pedestal in the raw value x, the INVERSELINEARITY polynomial is
``IL(y) = p + (y − p) − β (y − p)²`` (3 coefficients) and the LINEARITY polynomial is the
inverse ``L(x) = p + g(x − p)`` with ``g(u) = Σ_{n=1..5} C_{n−1} β^{n−1} u^n`` (the
Catalan series of (1 − √(1 − 4βu))/(2β), truncated after u⁵), expanded in powers of x
(6 coefficients, ``coeffs[k]`` multiplies x^k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..dq import pixel as PIXEL
from .instrument import BORDER, CHANNEL_WIDTH, DETECTORS, NOMINAL_GAIN, check_detector

REFPIX_PAD = 12
"""Pad columns per row of a channel in the reference-pixel FFT layout (ALGORITHMS.md §4)."""

LINEARITY_DEGREE = 5


@dataclass
class DetectorTruth:
    """True per-pixel properties of one simulated detector (full frame incl. border).

    Arrays are float32 [ny, nx] unless noted. Units: gain e/DN, read_noise DN per read,
    pedestal DN, dark_rate e/s, flat (response, dimensionless), beta 1/DN, full_well DN of
    linear signal above the pedestal; ``dead``/``hot`` boolean masks.
    """

    detector: str
    seed: int
    gain: np.ndarray
    read_noise: np.ndarray
    pedestal: np.ndarray
    dark_rate: np.ndarray
    flat: np.ndarray
    beta: np.ndarray
    full_well: np.ndarray
    dead: np.ndarray
    hot: np.ndarray
    amp33_pedestal: np.ndarray
    amp33_read_noise: np.ndarray
    drift: ReadoutDrift

    @property
    def shape(self):
        return self.gain.shape

    @property
    def science(self):
        return (slice(BORDER, -BORDER), slice(BORDER, -BORDER))


def _rng(seed: int, detector: str, purpose: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), DETECTORS.index(detector), purpose])


def _smooth_field(rng, ny, nx, amplitude):
    """A smooth low-order 2-D field with zero mean and the given rms-ish amplitude."""
    y = np.linspace(-1, 1, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, :]
    c = rng.normal(0, amplitude, 6).astype(np.float32)
    return c[0] * x + c[1] * y + c[2] * x * y + c[3] * (x * x - 1 / 3) + c[4] * (y * y - 1 / 3) + c[5] * x * y * y


class ReadoutDrift:
    """Additive readout signal of the 33 channels (32 science + amp33), read by read.

    In the time order of the readout (each channel's rows read left to right for even
    channels and right to left for odd ones, with :data:`REFPIX_PAD` idle pixel times per
    row), every read gets
    * per channel: an offset and a linear trend over the frame (~ a few DN), and
    * common to all channels: a slow sinusoid of a few cycles per frame (~ 3 DN) with a
      phase that changes from read to read.
    The per-channel part is what the reference rows (top/bottom border) measure; the common
    part is what the left/right reference columns measure (a low-pass REFPIX γ = ζ = ½).
    """

    def __init__(self, ny: int, nx: int, nreads_max: int, rng: np.random.Generator):
        self.ny, self.nx = ny, nx
        self.nchan = -(-nx // CHANNEL_WIDTH)
        self.row_len = CHANNEL_WIDTH + REFPIX_PAD
        self.frame_len = ny * self.row_len
        n = nreads_max + 1
        self.offset = rng.normal(0.0, 2.0, (n, self.nchan + 1)).astype(np.float32)
        self.offset += np.cumsum(rng.normal(0.0, 1.0, (n, 1)), axis=0).astype(np.float32)
        self.trend = rng.normal(0.0, 2.0, (n, self.nchan + 1)).astype(np.float32)
        self.cycles = float(rng.uniform(1.5, 4.5))
        self.amplitude = float(rng.uniform(2.0, 4.0))
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self._cache = None

    def readout_time(self, r0: int, r1: int, amp33: bool = False):
        """Pixel time index in the channel readout order and the channel of each column."""
        ncol = CHANNEL_WIDTH if amp33 else self.nx
        col = np.arange(ncol)
        chan = np.full(ncol, self.nchan) if amp33 else col // CHANNEL_WIDTH
        within = col % CHANNEL_WIDTH
        within = np.where(chan % 2 == 1, CHANNEL_WIDTH - 1 - within, within)
        t = np.arange(r0, r1)[:, None] * self.row_len + within[None, :]
        return t.astype(np.float64), chan

    def _basis(self, r0, r1):
        key = (r0, r1)
        if self._cache is None or self._cache[0] != key:
            t1, c1 = self.readout_time(r0, r1)
            t2, c2 = self.readout_time(r0, r1, amp33=True)
            t = np.hstack([t1, t2])
            chan = np.concatenate([c1, c2])
            w = 2 * np.pi * self.cycles * t / self.frame_len
            self._cache = (key, (t / self.frame_len - 0.5).astype(np.float32), chan,
                           np.sin(w).astype(np.float32), np.cos(w).astype(np.float32))
        return self._cache[1:]

    def __call__(self, r0: int, r1: int, read: int) -> np.ndarray:
        """Drift (DN) of rows r0:r1 of read ``read`` for the detector columns followed by
        the 128 amp33 columns: shape [r1 − r0, nx + 128]."""
        tt, chan, s, c = self._basis(r0, r1)
        a = self.amplitude
        out = self.offset[read][chan] + self.trend[read][chan] * tt
        out += (a * math.cos(self.phase[read])) * s
        out += (a * math.sin(self.phase[read])) * c
        return out


def make_detector_truth(detector: str, shape=(4096, 4096), seed: int = 0, *,
                        nreads_max: int = 64, dead_fraction: float = 2e-4,
                        hot_fraction: float = 2e-4) -> DetectorTruth:
    """Draw the true properties of a detector (deterministic in ``seed`` and ``detector``)."""
    detector = check_detector(detector)
    ny, nx = (int(s) for s in shape)
    rng = _rng(seed, detector, 1)
    f32 = np.float32
    nchan = -(-nx // CHANNEL_WIDTH)
    chan = np.arange(nx) // CHANNEL_WIDTH

    amp_gain = rng.normal(NOMINAL_GAIN, 0.04, nchan).astype(f32)
    gain = amp_gain[chan][None, :] * (1 + rng.normal(0, 0.01, (ny, nx))).astype(f32)
    read_noise = (6.0 * np.exp(rng.normal(0, 0.08, (ny, nx)))).astype(f32)
    amp_offset = rng.uniform(4000.0, 6000.0, nchan).astype(f32)
    pedestal = amp_offset[chan][None, :] + rng.normal(0, 40.0, (ny, nx)).astype(f32)

    dark = (0.005 * np.exp(rng.normal(0, 0.3, (ny, nx)))).astype(f32)
    hot = rng.random((ny, nx)) < hot_fraction
    dark[hot] = np.exp(rng.uniform(np.log(0.5), np.log(30.0), int(hot.sum())))
    flat = (1.0 + _smooth_field(rng, ny, nx, 0.02) + rng.normal(0, 0.01, (ny, nx))).astype(f32)
    dead = rng.random((ny, nx)) < dead_fraction
    flat[dead] = 0.02
    beta = (3.0e-7 * (1 + rng.normal(0, 0.05, (ny, nx)))).astype(f32)
    full_well = (50000.0 * (1 + rng.normal(0, 0.02, (ny, nx)))).astype(f32)

    # Reference pixels collect no light and no dark current.
    ref = np.ones((ny, nx), bool)
    ref[BORDER:-BORDER, BORDER:-BORDER] = False
    dark[ref] = 0.0
    hot &= ~ref
    dead &= ~ref

    amp33_pedestal = (rng.uniform(4000.0, 6000.0) + rng.normal(0, 40.0, (ny, CHANNEL_WIDTH))).astype(f32)
    amp33_read_noise = (6.0 * np.exp(rng.normal(0, 0.08, (ny, CHANNEL_WIDTH)))).astype(f32)
    drift = ReadoutDrift(ny, nx, nreads_max, _rng(seed, detector, 2))
    return DetectorTruth(detector, int(seed), gain, read_noise, pedestal, dark, flat, beta,
                         full_well, dead, hot, amp33_pedestal, amp33_read_noise, drift)


# ---------------------------------------------------------------------------------------------
# Reference arrays


def _poly_shift(coeffs_u, p):
    """Coefficients in x of Σ_k a_k (x − p)^k, for per-pixel a_k (list) and p (arrays)."""
    deg = len(coeffs_u) - 1
    out = [np.zeros_like(p) for _ in range(deg + 1)]
    for k, a in enumerate(coeffs_u):
        for j in range(k + 1):
            out[j] = out[j] + a * math.comb(k, j) * (-p) ** (k - j)
    return out


def linearity_coeffs(truth: DetectorTruth, rows_per_block: int = 256) -> np.ndarray:
    """LINEARITY coefficients float32 [6, ny, nx]: raw DN → linear DN (pedestal kept)."""
    ny, nx = truth.shape
    catalan = [math.comb(2 * n, n) // (n + 1) for n in range(LINEARITY_DEGREE)]
    out = np.empty((LINEARITY_DEGREE + 1, ny, nx), np.float32)
    for r0 in range(0, ny, rows_per_block):
        sl = slice(r0, min(ny, r0 + rows_per_block))
        p = truth.pedestal[sl].astype(np.float64)
        b = truth.beta[sl].astype(np.float64)
        a = [np.zeros_like(p)] + [catalan[n - 1] * b ** (n - 1) for n in range(1, LINEARITY_DEGREE + 1)]
        c = _poly_shift(a, p)
        c[0] = c[0] + p
        for k in range(LINEARITY_DEGREE + 1):
            out[k, sl] = c[k]
    return out


def inverselinearity_coeffs(truth: DetectorTruth) -> np.ndarray:
    """INVERSELINEARITY coefficients float32 [3, ny, nx]: linear DN → raw DN."""
    p = truth.pedestal.astype(np.float64)
    b = truth.beta.astype(np.float64)
    return np.stack([-b * p * p, 1 + 2 * b * p, -b]).astype(np.float32)


def saturation_threshold(truth: DetectorTruth, fraction: float = 0.97) -> np.ndarray:
    """SATURATION data (raw DN): the reading of a linear signal at ``fraction`` of full well."""
    s = fraction * truth.full_well.astype(np.float64)
    return (truth.pedestal + s - truth.beta * s * s).astype(np.float32)


def mask_dq(truth: DetectorTruth) -> np.ndarray:
    """MASK dq uint32: DEAD|DO_NOT_USE for dead pixels, HOT for hot ones, REFERENCE_PIXEL on the border."""
    ny, nx = truth.shape
    dq = np.zeros((ny, nx), np.uint32)
    dq[truth.dead] |= np.uint32(PIXEL.DEAD | PIXEL.DO_NOT_USE)
    dq[truth.hot] |= np.uint32(PIXEL.HOT)
    ref = np.ones((ny, nx), bool)
    ref[BORDER:-BORDER, BORDER:-BORDER] = False
    dq[ref] |= np.uint32(PIXEL.REFERENCE_PIXEL)
    return dq


def refpix_coeffs(truth: DetectorTruth, cutoff_cycles: int = 64):
    """REFPIX (gamma, zeta, alpha) complex128 [nchan, nfreq]: γ = ζ = ½ below ``cutoff_cycles``
    cycles per frame (left and right reference columns averaged, low-passed), α = 0."""
    ny, nx = truth.shape
    nchan = -(-nx // CHANNEL_WIDTH)
    nfreq = ny * (CHANNEL_WIDTH + REFPIX_PAD) // 2 + 1
    gamma = np.zeros((nchan, nfreq), np.complex128)
    gamma[:, :cutoff_cycles] = 0.5
    return gamma, gamma.copy(), np.zeros_like(gamma)


def reference_arrays(truth: DetectorTruth) -> dict[str, dict[str, np.ndarray]]:
    """Arrays of every array-valued reference type, keyed by CRDS reftype.

    Shapes: full frame [ny, nx] for mask/saturation/dark/gain/readnoise, [ncoef, ny, nx] for
    (inverse)linearity, science area [ny−8, nx−8] for flat.
    """
    sci = truth.science
    ny, nx = truth.shape
    dark_dn = (truth.dark_rate / truth.gain).astype(np.float32)
    gamma, zeta, alpha = refpix_coeffs(truth)
    zeros = np.zeros((ny, nx), np.uint32)
    return {
        "mask": {"dq": mask_dq(truth)},
        "saturation": {"data": saturation_threshold(truth), "dq": zeros.copy()},
        "linearity": {"coeffs": linearity_coeffs(truth), "dq": zeros.copy()},
        "inverselinearity": {"coeffs": inverselinearity_coeffs(truth), "dq": zeros.copy()},
        "dark": {"dark_slope": dark_dn,
                 "dark_slope_error": (0.05 * dark_dn + 1e-4).astype(np.float32),
                 "dq": np.where(truth.hot, np.uint32(PIXEL.HOT), np.uint32(0)).astype(np.uint32)},
        "gain": {"data": truth.gain.copy()},
        "readnoise": {"data": truth.read_noise.copy()},
        # the flat is the response in DN: quantum efficiency times the amplifier gain relative
        # to the nominal gain the photometric calibration assumes (so amplifiers match)
        "flat": {"data": (truth.flat[sci] * (NOMINAL_GAIN / truth.gain[sci])).astype(np.float32),
                 "dq": np.where(truth.dead[sci], np.uint32(PIXEL.DEAD), np.uint32(0)).astype(np.uint32),
                 "err": np.full(truth.flat[sci].shape, 0.005, np.float32)},
        "refpix": {"gamma": gamma, "zeta": zeta, "alpha": alpha},
    }


def evaluate_poly(coeffs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σ_k coeffs[k]·x^k by Horner (coeffs [ncoef, ...] broadcast against x), in float64."""
    x = np.asarray(x, np.float64)
    out = np.zeros(np.broadcast_shapes(coeffs.shape[1:], x.shape))
    for c in coeffs[::-1]:
        out = out * x + c
    return out
