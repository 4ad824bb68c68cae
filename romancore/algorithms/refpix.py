"""Reference-pixel correction of Roman WFI ramps (ALGORITHMS.md section 4, seed 002 "Reference Pixel Correction").

The detector is read by 32 amplifiers ("channels") of 128 columns each; amp33
adds 128 columns of reference pixels read in step with them. A sub-array of
``nx`` columns is read by ``nx // 128`` channels (a 128-column array is one
channel). Per resultant
("frame"), in read-out order (odd channels are read right to left) and with
12 idle clocks ("pads") appended to every row:

1. *offset*: the mean over resultants of every pixel is removed (and added
   back at the end);
2. *trends*: per channel and frame a straight line in read-out time, fitted
   to the non-zero pixels of the 4 top and 4 bottom reference rows, is removed
   from the non-zero pixels;
3. *cosine interpolation*: zeros of amp33 (pads, bad pixels) are filled by a
   normalised convolution with ``sin(j pi / 32)``, j = 1..32;
4. *FFT interpolation*: the amp33 pads are refined three times by an
   apodised Fourier low-pass;
5. *correction*: each channel c gets subtracted
   ``irfft((L_hat gamma_c + R_hat zeta_c + A_hat alpha_c) * 2 nfreq)``, built
   from the left / right reference columns and amp33 with the REFPIX
   reference coefficients (complex, [nchannels, nfreq]). The left columns are
   the first 4 detector columns, the right ones the last 4, each placed at its
   own read-out time (for 32 channels both at read-out columns 0..3, since the
   last channel is read right to left; for one channel the right columns are
   read last in each row).

Every stage has its own switch. Pixels flagged BAD_REF_PIXEL are set to 0
first (zeros count as missing data throughout).

The frame geometry is general: ``nx = nchannels * w`` detector columns with
``w = amp33.shape[2]`` (128 for the WFI; nchannels = 32 for a full detector),
rows of ``w + 12`` clocks.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import scipy.fft

from .._ext import refpix as _kernel
from ..dq import pixel
from ..errors import ParameterError
from .dq_init import check_array, check_ramp

log = logging.getLogger(__name__)

N_CHANNELS = 32
"""Science read-out channels of a full WFI detector (amp33 is the 33rd)."""
PAD = 12
"""Idle clocks appended to every channel row (read-out timing)."""
N_REF = 4
"""Reference rows at top and bottom, reference columns at left and right."""
N_FFT_ITERATIONS = 3
_CHUNK = 8  # channels per batched inverse FFT (bounds the float64 scratch)


def cosine_kernel() -> np.ndarray:
    """The interpolation kernel ``sin(j pi / 32)``, j = 1..32."""
    return np.sin(np.arange(1, 33) * np.pi / 32)


def _channel_view(frame: np.ndarray, c: int, w: int) -> np.ndarray:
    """Channel c of a frame in read-out order (a view; odd channels reversed)."""
    view = frame[:, c * w:(c + 1) * w]
    return view[:, ::-1] if c % 2 else view


def _trend(values: np.ndarray, t: np.ndarray):
    """Least-squares line (m, b) of ``values`` against time ``t`` over the non-zero
    values (the reference rows of one channel), or None if there are none."""
    y = values.astype(np.float64).ravel()
    x = t.ravel()
    keep = y != 0
    if not keep.any():
        return None
    x, y = x[keep], y[keep]
    if x.size == 1:
        return 0.0, float(y[0])
    xm, ym = x.mean(), y.mean()
    sxx = np.sum((x - xm) ** 2)
    m = float(np.sum((x - xm) * (y - ym)) / sxx) if sxx > 0 else 0.0
    return m, float(ym - m * xm)


def _cosine_fill(x: np.ndarray) -> np.ndarray:
    """Fill zeros of a flat series by normalised convolution (float64 out)."""
    k = cosine_kernel()
    present = (x != 0).astype(np.float64)
    num = np.convolve(x, k, mode="same")
    den = np.convolve(present, k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = num / den * (1.0 - present)
    out = x + fill
    out[~np.isfinite(out)] = 0.0
    return out


def _fft_fill_pads(x: np.ndarray, pad_mask: np.ndarray, iterations: int) -> np.ndarray:
    length = x.size
    k = np.arange(length // 2 + 1)
    apod = (1.0 + np.cos(2.0 * np.pi * k / length)) / 2.0
    x = x.copy()
    for _ in range(iterations):
        smooth = scipy.fft.irfft(apod * scipy.fft.rfft(x), n=length)
        x[pad_mask] = smooth[pad_mask].astype(np.float32)
    return x


def correct_refpix(
    data: np.ndarray,
    amp33: np.ndarray,
    pixeldq: np.ndarray,
    alpha: np.ndarray,
    gamma: np.ndarray,
    zeta: np.ndarray,
    *,
    remove_offset: bool = True,
    remove_trends: bool = True,
    cosine_interpolate: bool = True,
    fft_interpolate: bool = True,
    zero_bad_ref_pix: bool = True,
    workers: int | None = None,
) -> np.ndarray:
    """Apply the reference-pixel correction to a ramp in place.

    Parameters
    ----------
    data : float32 [nres, ny, nx]
        Ramp in DN including the reference border (nx = nchannels * w, nchannels >= 1),
        corrected in place.
    amp33 : uint16 (or float) [nres, ny, w]
        amp33 reference columns (w = 128 for the WFI). Not modified.
    pixeldq : uint32 [ny, nx]
        Pixels with BAD_REF_PIXEL are zeroed in ``data`` first (if ``zero_bad_ref_pix``).
    alpha, gamma, zeta : complex [nchannels, nfreq]
        REFPIX coefficients for amp33, left and right reference columns;
        ``nfreq = ny * (w + 12) // 2 + 1`` (286721 for the WFI).
    remove_offset, remove_trends, cosine_interpolate, fft_interpolate : bool
        Switch the stages described in the module docstring.
    zero_bad_ref_pix : bool
        Zero BAD_REF_PIXEL pixels before anything else.
    workers : int or None
        Threads for the FFTs (``scipy.fft`` ``workers``); None = all CPUs this
        process may use. (The Cython pass uses the OpenMP thread count.)

    Returns
    -------
    ndarray uint16 [nres, ny, w]
        The processed amp33 (``|value|`` truncated to uint16 and clipped at 65535).
    """
    check_ramp(data, None, pixeldq)
    nres, ny, nx = data.shape
    check_array("amp33", amp33, ndim=3)
    if amp33.shape[:2] != (nres, ny):
        raise ParameterError(f"amp33 must have shape ({nres}, {ny}, w), got {amp33.shape}")
    w = amp33.shape[2]
    if w < 1 or nx % w != 0:
        raise ParameterError(
            f"data has {nx} columns, which is not a whole number of channels of the amp33 width {w}"
        )
    nchan = nx // w
    if ny < 2 * N_REF or w < N_REF:
        raise ParameterError(f"frames of shape {(ny, nx)} are too small for {N_REF} reference rows/columns")
    check_array("pixeldq", pixeldq, ndim=2, dtype=np.uint32, shape=(ny, nx))
    row_len = w + PAD
    length = ny * row_len
    nfreq = length // 2 + 1
    coefs = {}
    for name, arr in (("alpha", alpha), ("gamma", gamma), ("zeta", zeta)):
        check_array(name, arr, ndim=2, shape=(nchan, nfreq))
        if not np.all(np.isfinite(arr)):
            raise ParameterError(f"{name} must be finite")
        coefs[name] = np.asarray(arr, dtype=np.complex128)
    if workers is None:
        fft_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    else:
        fft_workers = int(workers)
        if fft_workers < 1:
            raise ParameterError(f"workers must be >= 1 or None, got {workers!r}")

    if zero_bad_ref_pix:
        bad = (pixeldq & np.uint32(pixel.BAD_REF_PIXEL)) != 0
        if bad.any():
            for f in range(nres):
                data[f][bad] = 0.0

    a33 = np.asarray(amp33, dtype=np.float32).copy()
    if remove_offset:
        off_data = np.mean(data, axis=0, dtype=np.float64).astype(np.float32)
        off_amp = np.mean(a33, axis=0, dtype=np.float64).astype(np.float32)
        a33 -= off_amp
    else:
        off_data = np.zeros((1, 1), dtype=np.float32)  # not read by the kernel

    t_center = (length - 1) / 2.0
    t = (np.arange(ny)[:, None] * row_len + np.arange(w)[None, :]) - t_center
    refrows = np.r_[0:N_REF, ny - N_REF:ny]
    t_ref = t[refrows]
    pad_mask = np.zeros((ny, row_len), dtype=bool)
    pad_mask[:, w:] = True
    pad_mask = pad_mask.ravel()
    norm = row_len / N_REF
    coefs32 = {k: v.astype(np.complex64) for k, v in coefs.items()}
    corr = np.empty((nchan, length), dtype=np.float32)
    # read-out columns of the left (first 4 detector columns, channel 0, read left to right)
    # and right (last 4 detector columns, last channel) reference columns
    last = nchan - 1
    edge_k = (np.arange(N_REF), np.arange(N_REF) if last % 2 else np.arange(w - N_REF, w))

    for f in range(nres):
        frame = data[f]
        # amp33 channel: trends, interpolation of pads / missing pixels
        amp = np.zeros((ny, row_len), dtype=np.float32)
        amp[:, :w] = a33[f]
        if remove_trends:
            fit = _trend(amp[refrows, :w], t_ref)
            if fit is not None:
                sub = amp[:, :w]
                nz = sub != 0
                sub[nz] -= (fit[0] * t[nz] + fit[1]).astype(np.float32)
        flat = amp.ravel()
        if cosine_interpolate:
            flat = _cosine_fill(flat.astype(np.float64)).astype(np.float32)
        if fft_interpolate:
            flat = _fft_fill_pads(flat, pad_mask, N_FFT_ITERATIONS)
        a33[f] = flat.reshape(ny, row_len)[:, :w]

        # science channels: trend lines from the offset-free reference rows
        ref = frame[refrows]
        if remove_offset:
            ref = ref - off_data[refrows]
        slope = np.zeros(nchan)
        intercept = np.zeros(nchan)
        if remove_trends:
            for c in range(nchan):
                fit = _trend(_channel_view(ref, c, w), t_ref)
                if fit is not None:
                    slope[c], intercept[c] = fit
        # left / right reference columns after offset and trend removal
        edges = []
        for c, ks in zip((0, last), edge_k, strict=True):
            cols = _channel_view(frame, c, w)[:, ks].astype(np.float32)
            if remove_offset:
                cols = (cols - _channel_view(off_data, c, w)[:, ks]).astype(np.float32)
            if remove_trends:
                nz = cols != 0
                cols[nz] = (cols - (slope[c] * t[:, ks] + intercept[c]))[nz].astype(np.float32)
            padded = np.zeros((ny, row_len), dtype=np.float64)
            padded[:, ks] = cols
            edges.append(padded.ravel())
        lhat = (scipy.fft.rfft(edges[0] / length, workers=fft_workers) * norm).astype(np.complex64)
        rhat = (scipy.fft.rfft(edges[1] / length, workers=fft_workers) * norm).astype(np.complex64)
        ahat = scipy.fft.rfft(flat.astype(np.float64) / length, workers=fft_workers).astype(np.complex64)
        scale = np.float32(2 * nfreq)
        for c0 in range(0, nchan, _CHUNK):
            sl = slice(c0, min(c0 + _CHUNK, nchan))
            spec = lhat * coefs32["gamma"][sl]
            spec += rhat * coefs32["zeta"][sl]
            spec += ahat * coefs32["alpha"][sl]
            spec *= scale
            corr[sl] = scipy.fft.irfft(spec, n=length, axis=-1, workers=fft_workers)
            del spec
        _kernel.correct_frame(
            frame, off_data, slope, intercept, corr, w, row_len, t_center,
            bool(remove_offset), bool(remove_trends), True,
        )

    if remove_offset:
        a33 += off_amp
    np.abs(a33, out=a33)
    np.minimum(a33, 65535.0, out=a33)
    return a33.astype(np.uint16)


__all__ = ["N_CHANNELS", "N_FFT_ITERATIONS", "N_REF", "PAD", "correct_refpix", "cosine_kernel"]
