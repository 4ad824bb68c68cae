"""Drizzle: combine images onto an output grid (Fruchter & Hook 2002), streaming.

An input image is mapped onto the output grid through its *pixel map*
``pixmap[j, i] = (X, Y)``: the output pixel coordinates (0-based, centres at
integers) of the centre of input pixel ``(i, j)`` (see
:mod:`romancore.algorithms.pixmap`).  Each input pixel is shrunk by
``pixfrac`` and its value is dropped on the output pixels it overlaps with a
drop weight ``dow`` set by the kernel (ALGORITHMS.md §6.3):

* ``square``: exact overlap area of the shrunken, mapped quadrilateral with each
  output pixel, divided by the quadrilateral's area (flux conserving);
* ``point``: the whole weight to the output pixel containing the centre;
* ``turbo``: an axis-aligned box of side ``pixfrac / pixel_scale_ratio``
  (flux conserving);
* ``gaussian``, ``lanczos2``, ``lanczos3``: interpolating kernels (not flux
  conserving).

The output is the weighted mean ``I = sum(d dow) / sum(dow)`` with weight
``W = sum(dow)`` (§6.4), so ``sum(I W)`` over the output equals
``sum(d w)`` over the input pixels that land on it.  Input pixels that straddle
an output edge deposit the part that lands on the grid.

:class:`Drizzler` is an accumulator: inputs are added one at a time, so memory
stays O(output + one input).  It optionally keeps context bits, an exposure
time map and resampled variance planes combined as in §6.5.

Each :meth:`Drizzler.add_image` is one pass of the kernel over the input's
geometry: every input pixel's overlaps are computed once and deposit the data,
the weight, the context bit, ``sqrt(V)`` of every variance plane and the
exposure-time coverage together (the coverage needs a second pass only when
``pixfrac != 1``, because the exposure-time map always drizzles with pixfrac 1).
The per-input variance sums are folded into the combined planes band by band
of output rows inside the kernel, so no per-input full-output arrays are made.
Output rows are processed in bands by OpenMP threads; every output pixel gets
its updates in input order, so results are bitwise independent of the number
of threads.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from romancore._ext import dq_ops as _dq_ops
from romancore._ext import drizzle as _kern
from romancore.algorithms.checks import positive_finite
from romancore.dq import interpret_bit_flags
from romancore.errors import OutputTooLargeError, ParameterError

log = logging.getLogger(__name__)

KERNELS = ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3")
FLUX_CONSERVING = ("square", "point", "turbo")
WEIGHT_TYPES = ("ivm", "exptime", "ivm-sky", None)

__all__ = [
    "KERNELS",
    "Drizzler",
    "DrizzleResult",
    "blot",
    "build_driz_weight",
    "build_mask",
    "decode_context",
    "estimate_pixel_scale_ratio",
    "lanczos_lut",
]


# --------------------------------------------------------------------------- helpers
def _num_threads(num_threads):
    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        try:
            num_threads = int(env.split(",")[0]) if env else os.cpu_count() or 1
        except ValueError:
            num_threads = os.cpu_count() or 1
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) \
            or num_threads < 1:
        raise ParameterError(f"num_threads must be a positive integer, got {num_threads!r}")
    return int(num_threads)


# output rows per band: the unit of work of a thread (and of the per-input scratch)
_BAND_ROWS = 64

# below this many pixels a parallel region costs more than it saves
_MIN_PARALLEL_PIXELS = 1 << 16


def _threads_for(npix, num_threads):
    return 1 if npix < _MIN_PARALLEL_PIXELS else num_threads


def _as_image(name, arr, shape=None, dtype=np.float32):
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ParameterError(f"{name} has shape {arr.shape}, expected {tuple(shape)}")
    if arr.dtype.kind not in "fiub":
        raise ParameterError(f"{name} must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _as_pixmap(pixmap, shape=None):
    pixmap = np.asarray(pixmap)
    if pixmap.ndim != 3 or pixmap.shape[2] != 2:
        raise ParameterError(f"pixmap must have shape (ny, nx, 2), got {pixmap.shape}")
    if shape is not None and pixmap.shape[:2] != tuple(shape):
        raise ParameterError(
            f"pixmap covers {pixmap.shape[:2]} input pixels but the data have shape {tuple(shape)}"
        )
    if pixmap.dtype.kind != "f":
        raise ParameterError(f"pixmap must be floating point, got dtype {pixmap.dtype}")
    return np.ascontiguousarray(pixmap, dtype=np.float64)


def _parse_fillval(fillval):
    """float fill value, or None for "leave untouched" (``"INDEF"``)."""
    if fillval is None:
        return None
    if isinstance(fillval, str):
        text = fillval.strip().upper()
        if text == "INDEF":
            return None
        try:
            return float(text)
        except ValueError:
            raise ParameterError(
                f"fillval must be a number, 'NAN' or 'INDEF', got {fillval!r}"
            ) from None
    try:
        return float(fillval)
    except (TypeError, ValueError):
        raise ParameterError(f"fillval must be a number, 'NAN' or 'INDEF', got {fillval!r}") from None


def lanczos_lut(order: int, step: float = _kern.LUT_STEP) -> np.ndarray:
    """Look-up table of the Lanczos kernel ``sinc(x) sinc(x/a)`` at ``x = k*step``.

    ``len = ceil(a/step) + 1``; entries with ``x > a`` are 0.
    """
    n = int(math.ceil(order / step)) + 1
    x = np.arange(n) * step
    lut = np.ones(n)
    px = np.pi * x[1:]
    lut[1:] = np.sin(px) * np.sin(px / order) / (px * px / order)
    lut[x > order] = 0.0
    return lut


def estimate_pixel_scale_ratio(pixmap: np.ndarray) -> float:
    """Output/input pixel-scale ratio implied by a pixel map.

    ``1 / sqrt(|det J|)`` with ``J`` the Jacobian of the map (output pixels per
    input pixel), the median over a sparse sample of finite pixels.
    """
    pm = _as_pixmap(pixmap)
    ny, nx = pm.shape[:2]
    if ny < 2 or nx < 2:
        raise ParameterError(f"pixmap must be at least 2x2 to estimate a scale, got {pm.shape[:2]}")
    sy = max(1, (ny - 1) // 64)
    sx = max(1, (nx - 1) // 64)
    base = pm[0:ny - 1:sy, 0:nx - 1:sx]
    dx = pm[0:ny - 1:sy, 1:nx:sx] - base
    dy = pm[1:ny:sy, 0:nx - 1:sx] - base
    det = np.abs(dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0])
    det = det[np.isfinite(det) & (det > 0)]
    if det.size == 0:
        raise ParameterError("pixmap has no finite, non-degenerate region to estimate the pixel scale ratio")
    return float(1.0 / math.sqrt(np.median(det)))


def _available_memory():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes: int, allowed_memory=None) -> None:
    """Raise :class:`OutputTooLargeError` when ``nbytes`` exceeds the allowed memory.

    ``allowed_memory`` is a fraction of the currently available memory; when
    None, the environment variable ``DMODEL_ALLOWED_MEMORY`` is used, and when
    that is unset too, nothing is checked.
    """
    if allowed_memory is None:
        env = os.environ.get("DMODEL_ALLOWED_MEMORY")
        if not env:
            return
        try:
            allowed_memory = float(env)
        except ValueError:
            raise ParameterError(
                f"DMODEL_ALLOWED_MEMORY must be a number, got {env!r}"
            ) from None
    allowed = positive_finite("allowed_memory", allowed_memory)
    available = _available_memory()
    if available is None:
        log.warning("cannot determine the available memory; allowed_memory not checked")
        return
    if nbytes > allowed * available:
        raise OutputTooLargeError(
            f"the resampled output needs {nbytes / 2**20:.1f} MiB, more than "
            f"allowed_memory={allowed} x {available / 2**20:.1f} MiB available"
        )


# --------------------------------------------------------------------------- result
@dataclass
class DrizzleResult:
    """Arrays of a finished drizzle.

    Attributes
    ----------
    data : float32 [ny, nx]
        Weighted-mean image; ``fillval`` where nothing landed.
    weight : float32 [ny, nx]
        Sum of drop weights.
    context : uint32 [nplanes, ny, nx] or None
        Bit ``k`` of plane ``p`` is set where input ``32 p + k`` added weight.
    variances : dict of str -> float32 [ny, nx]
        Resampled variance planes (§6.5); NaN where no input contributed.
    exptime : float32 [ny, nx] or None
        Sum of the exposure times of the inputs covering each pixel.
    exptime_mean, exptime_max : float
        Mean of ``exptime`` over pixels > 0, and its maximum (NaN without a map
        or without coverage).
    n_inputs : int
        Number of images added.
    pixel_scale_ratio : float or None
        Output/input pixel-scale ratio used (given or estimated).
    """

    data: np.ndarray
    weight: np.ndarray
    context: np.ndarray | None
    variances: dict = field(default_factory=dict)
    exptime: np.ndarray | None = None
    exptime_mean: float = float("nan")
    exptime_max: float = float("nan")
    n_inputs: int = 0
    pixel_scale_ratio: float | None = None


# --------------------------------------------------------------------------- accumulator
class Drizzler:
    """Streaming drizzle accumulator.

    Parameters
    ----------
    out_shape : (ny, nx)
        Output array shape.
    kernel : str
        One of ``KERNELS``.  ``pixfrac <= 0.001`` switches to ``point``.
    pixfrac : float
        Linear size of the drop relative to the input pixel, > 0 (default 1).
        Ignored (with a warning if != 1) by the Lanczos kernels.
    fillval : float, str or None
        Value of output pixels that received no weight, set by :meth:`finalize`
        (``"NAN"`` default; ``None`` or ``"INDEF"`` leaves them untouched).
    want_context : bool
        Keep the uint32 context planes.
    variance_planes : sequence of str
        Names of the variance arrays to resample (e.g.
        ``("var_rnoise", "var_poisson")``); every :meth:`add_image` then needs
        them in ``variances``.
    variance_weight : {"ivm", "exptime", None}
        Per-image output weight Omega_k of the variance combination:
        ``1/V'_rnoise`` (needs ``"var_rnoise"`` in ``variance_planes``), the
        exposure time, or 1.
    exptime_map : bool
        Keep the exposure-time map.
    pixel_scale_ratio : float or None
        Output/input pixel-scale ratio ``s``.  Used by turbo, gaussian and
        Lanczos and by the variance normalisation ``1/s**2``.  None: estimated
        from the first input's pixmap.
    n_inputs : int or None
        Expected number of inputs (pre-allocates context planes).
    out_data, out_weight, out_context : arrays or None
        Caller-provided accumulators (float32, float32, uint32 [nplanes, ny, nx],
        C-contiguous); updated in place.  ``out_weight`` must be 0 where
        ``out_data`` holds nothing yet.
    allowed_memory : float or None
        Fraction of the available memory the output may use (see
        :func:`check_memory`).
    num_threads : int or None
        OpenMP threads (default ``OMP_NUM_THREADS`` or the CPU count).
        Results do not depend on it.
    """

    def __init__(
        self,
        out_shape,
        *,
        kernel: str = "square",
        pixfrac: float = 1.0,
        fillval=np.nan,
        want_context: bool = True,
        variance_planes=(),
        variance_weight: str | None = "ivm",
        exptime_map: bool = False,
        pixel_scale_ratio: float | None = None,
        n_inputs: int | None = None,
        out_data: np.ndarray | None = None,
        out_weight: np.ndarray | None = None,
        out_context: np.ndarray | None = None,
        allowed_memory: float | None = None,
        num_threads: int | None = None,
    ):
        try:
            shape = tuple(int(v) for v in out_shape)
        except (TypeError, ValueError):
            raise ParameterError(f"out_shape must be (ny, nx), got {out_shape!r}") from None
        if len(shape) != 2 or min(shape) < 1:
            raise ParameterError(f"out_shape must be two positive integers, got {out_shape!r}")
        self.out_shape = shape

        if not isinstance(kernel, str) or kernel.lower() not in KERNELS:
            raise ParameterError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        kernel = kernel.lower()
        pixfrac = positive_finite("pixfrac", pixfrac)
        if pixfrac <= 0.001 and kernel != "point":
            log.warning("pixfrac=%g <= 0.001: using the point kernel", pixfrac)
            kernel = "point"
        if kernel.startswith("lanczos") and pixfrac != 1.0:
            log.warning("kernel %s ignores pixfrac=%g", kernel, pixfrac)
        if kernel not in FLUX_CONSERVING:
            log.warning("kernel %s does not conserve flux", kernel)
        self.kernel = kernel
        self.pixfrac = pixfrac
        self.fillval = _parse_fillval(fillval)
        self.num_threads = _num_threads(num_threads)

        if pixel_scale_ratio is not None:
            pixel_scale_ratio = positive_finite("pixel_scale_ratio", pixel_scale_ratio)
        self.pixel_scale_ratio = pixel_scale_ratio

        if isinstance(variance_planes, str):
            variance_planes = (variance_planes,)
        self.variance_planes = tuple(str(v) for v in variance_planes)
        if len(self.variance_planes) > _kern.MAX_VARIANCE_PLANES:
            raise ParameterError(
                f"variance_planes: at most {_kern.MAX_VARIANCE_PLANES} planes, got {len(self.variance_planes)}"
            )
        if len(set(self.variance_planes)) != len(self.variance_planes):
            raise ParameterError(f"variance_planes has duplicates: {self.variance_planes}")
        if variance_weight not in ("ivm", "exptime", None):
            raise ParameterError(
                f"variance_weight must be 'ivm', 'exptime' or None, got {variance_weight!r}"
            )
        if variance_weight == "ivm" and self.variance_planes and "var_rnoise" not in self.variance_planes:
            raise ParameterError(
                "variance_weight='ivm' needs 'var_rnoise' in variance_planes, got "
                f"{self.variance_planes}"
            )
        self.variance_weight = variance_weight
        self.want_context = bool(want_context)
        self.want_exptime = bool(exptime_map)

        if n_inputs is not None and (isinstance(n_inputs, bool) or int(n_inputs) < 1):
            raise ParameterError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        nplanes = max(1, (int(n_inputs) - 1) // 32 + 1) if n_inputs else 1

        npix = shape[0] * shape[1]
        nvar = len(self.variance_planes)
        nbytes = npix * (4 + 4)  # data, weight
        nbytes += npix * 4 * nplanes if self.want_context else 0
        nbytes += npix * 8 * nvar  # variance sums and weights
        nbytes += npix * 4 if self.want_exptime else 0
        if nvar or self.want_exptime:
            nbytes += self.num_threads * (nvar + 2) * _BAND_ROWS * shape[1] * 4  # band scratch
        check_memory(nbytes, allowed_memory)

        self._dummy3 = np.zeros((1, 1, 1), np.float32)
        self._dummy_ctx = np.zeros((1, 1, 1), np.uint32)
        self._dummy2 = np.zeros((1, 1), np.float32)
        self._dummy4 = np.zeros((1, 1, 1, 1), np.float32)
        self.data = self._accumulator("out_data", out_data, shape, np.float32, np.nan)
        self.weight = self._accumulator("out_weight", out_weight, shape, np.float32, 0.0)
        if out_context is not None:
            if not self.want_context:
                raise ParameterError("out_context was given but want_context is False")
            if not (isinstance(out_context, np.ndarray) and out_context.ndim == 3
                    and out_context.shape[1:] == shape and out_context.dtype == np.uint32
                    and out_context.flags.c_contiguous):
                raise ParameterError(
                    f"out_context must be a C-contiguous uint32 array of shape (nplanes, {shape[0]}, "
                    f"{shape[1]})"
                )
            self.context = out_context
            self._context_owned = False
        elif self.want_context:
            self.context = np.zeros((nplanes,) + shape, dtype=np.uint32)
            self._context_owned = True
        else:
            self.context = None
            self._context_owned = False
        self._var_sum_arr = np.zeros((nvar,) + shape, np.float32) if nvar else self._dummy3
        self._var_wht_arr = np.zeros((nvar,) + shape, np.float32) if nvar else self._dummy3
        self._var_sum = {name: self._var_sum_arr[k] for k, name in enumerate(self.variance_planes)}
        self._var_wht = {name: self._var_wht_arr[k] for k, name in enumerate(self.variance_planes)}
        self._scratch = None
        self.exptime = np.zeros(shape, np.float32) if self.want_exptime else None
        self.n_inputs = 0
        self._next_index = 0
        self._lut = (
            lanczos_lut(int(kernel[-1])) if kernel.startswith("lanczos") else np.zeros(1)
        )

    @staticmethod
    def _accumulator(name, arr, shape, dtype, init):
        if arr is None:
            return np.full(shape, init, dtype=dtype)
        if not (isinstance(arr, np.ndarray) and arr.shape == shape and arr.dtype == dtype
                and arr.flags.c_contiguous and arr.flags.writeable):
            raise ParameterError(
                f"{name} must be a writeable C-contiguous {np.dtype(dtype).name} array of shape {shape}"
            )
        return arr

    # ..................................................................... internals
    def _ensure_context_plane(self, plane):
        if self.context.shape[0] > plane:
            return
        if not self._context_owned:
            raise ParameterError(
                f"input index needs context plane {plane} but out_context has "
                f"{self.context.shape[0]} planes"
            )
        grown = np.zeros((plane + 1,) + self.out_shape, dtype=np.uint32)
        grown[: self.context.shape[0]] = self.context
        self.context = grown

    def _scratch_for(self, nthreads, nplanes):
        """Per-thread band scratch (zero between passes), grown on demand and reused."""
        sc = self._scratch
        if sc is None or sc.shape[0] < nthreads or sc.shape[3] < nplanes:
            sc = np.zeros((nthreads, _BAND_ROWS, self.out_shape[1], nplanes), np.float32)
            self._scratch = sc
        return sc

    def _run(self, data, weight, pixmap, *, kernel, pixfrac, pscale, iscale, do_main,
             cover_weight=None, aux_in=None, exptime=0.0, ctx_plane=0, ctx_bit=0):
        """One kernel pass over the geometry of one input.  Returns the hit count.

        ``do_main``: drop ``data`` with ``weight`` (image, weight, context and,
        with ``aux_in``, the variance planes); ``cover_weight``: add
        ``exptime`` to the exposure-time map where those weights land.
        """
        code = _kern.KERNEL_CODES[kernel]
        ny, nx = self.out_shape
        nthreads = _threads_for(data.size, self.num_threads)
        do_cov = cover_weight is not None
        dummy = self._dummy2
        do_aux = do_main and aux_in is not None
        do_ctx = do_main and self.context is not None
        band_h = _BAND_ROWS
        if nthreads == 1 and not (do_aux or do_cov):
            # one thread and no band scratch: a single band covering the whole
            # output visits every input pixel once, so the band-table pass
            # (which maps every drop a first time) is not needed
            band_h = ny
            ilo = np.zeros((data.shape[0], 1), np.int32)
            ihi = np.full((data.shape[0], 1), data.shape[1] - 1, np.int32)
        else:
            ilo, ihi, n_hit = _kern.band_table(
                data, weight if do_main else dummy, cover_weight if do_cov else dummy, pixmap,
                do_main, do_cov, code, pixfrac, pscale, ny, nx, band_h, nthreads,
            )
            if do_main and n_hit == 0:
                return 0
        if do_aux or do_cov:
            scratch = self._scratch_for(nthreads, len(self.variance_planes) + 2)
        else:
            scratch = self._dummy4
        rn_index = self.variance_planes.index("var_rnoise") if "var_rnoise" in self.variance_planes else 0
        n_hit = _kern.drizzle_add(
            data, weight if do_main else dummy, cover_weight if do_cov else dummy, pixmap,
            self.data, self.weight, self.context if do_ctx else self._dummy_ctx,
            aux_in if do_aux else [], self._var_sum_arr, self._var_wht_arr,
            self.exptime if do_cov else dummy, scratch, ilo, ihi, self._lut,
            code, pixfrac, pscale, iscale,
            ctx_plane, ctx_bit, do_main, do_ctx, do_aux, do_cov,
            _kern.OMEGA_CODES[self.variance_weight], rn_index, exptime,
            band_h, nthreads,
        )
        return n_hit

    # ..................................................................... public
    def add_image(
        self,
        data,
        weight_map,
        pixmap,
        *,
        exptime: float = 1.0,
        iscale: float = 1.0,
        variances: dict | None = None,
        input_index: int | None = None,
        exptime_weight=None,
    ) -> int:
        """Drizzle one input image onto the output.

        Parameters
        ----------
        data : 2-D array [ny, nx]
            Input values (e.g. sky-subtracted surface brightness).  Non-finite
            values are skipped like zero-weight pixels.
        weight_map : 2-D array [ny, nx] or None
            Per-pixel weights (e.g. :func:`build_driz_weight`); pixels with
            weight <= 0 or NaN deposit nothing.  None means 1 everywhere.
        pixmap : float array [ny, nx, 2]
            Output (X, Y) of every input pixel centre; NaN = unmapped.
        exptime : float
            Exposure time of this input (exposure-time map, ``exptime``
            variance weighting).
        iscale : float
            Multiplies the data (and the standard deviations, so variances by
            ``iscale**2``).
        variances : dict of str -> 2-D array
            Variance arrays named as in ``variance_planes``.
        input_index : int or None
            0-based index of this input in the context planes; default: the
            running count of indices used so far.
        exptime_weight : 2-D array or None
            Weights defining where this input counts in the exposure-time map
            (drizzled with pixfrac 1); default ``weight_map > 0``.

        Returns
        -------
        int
            Number of input pixels that deposited weight on the output.
        """
        data = _as_image("data", data)
        shape = data.shape
        if weight_map is None:
            weight = np.ones(shape, np.float32)
        else:
            weight = _as_image("weight_map", weight_map, shape)
        pixmap = _as_pixmap(pixmap, shape)
        if self.kernel == "square" and min(shape) < 2:
            raise ParameterError(
                f"the square kernel needs inputs of at least 2x2 pixels, got {shape}"
            )
        iscale = float(iscale)
        if not math.isfinite(iscale):
            raise ParameterError(f"iscale must be finite, got {iscale!r}")
        exptime = float(exptime)
        if self.want_exptime or self.variance_weight == "exptime":
            exptime = positive_finite("exptime", exptime)

        if input_index is None:
            input_index = self._next_index
        if isinstance(input_index, bool) or not isinstance(input_index, (int, np.integer)) \
                or input_index < 0:
            raise ParameterError(f"input_index must be a non-negative integer, got {input_index!r}")
        input_index = int(input_index)
        self._next_index = max(self._next_index, input_index + 1)
        plane, bit = divmod(input_index, 32)
        if self.context is not None:
            self._ensure_context_plane(plane)

        variances = {} if variances is None else dict(variances)
        if set(variances) != set(self.variance_planes):
            raise ParameterError(
                f"variances must hold exactly {list(self.variance_planes)}, got {sorted(variances)}"
            )
        aux_in = [_as_image(name, variances[name], shape) for name in self.variance_planes] or None

        if self.pixel_scale_ratio is None:
            self.pixel_scale_ratio = estimate_pixel_scale_ratio(pixmap)
            log.info("pixel scale ratio estimated from the pixmap: %.6g", self.pixel_scale_ratio)
        pscale = self.pixel_scale_ratio

        # the exposure-time map drizzles with pixfrac 1: same geometry as the data when pixfrac == 1
        cover = None
        if self.want_exptime:
            if exptime_weight is None:
                cover = weight if self.pixfrac == 1.0 else (weight > 0).astype(np.float32)
            else:
                cover = _as_image("exptime_weight", exptime_weight, shape)
        shared = cover is not None and self.pixfrac == 1.0
        n_hit = self._run(
            data, weight, pixmap, kernel=self.kernel, pixfrac=self.pixfrac, pscale=pscale,
            iscale=iscale, do_main=True, aux_in=aux_in, cover_weight=cover if shared else None,
            exptime=exptime, ctx_plane=plane, ctx_bit=np.uint32(1 << bit),
        )
        self.n_inputs += 1
        if n_hit and cover is not None and not shared:
            self._run(data, None, pixmap, kernel=self.kernel, pixfrac=1.0, pscale=pscale,
                      iscale=1.0, do_main=False, cover_weight=cover, exptime=exptime)
        return n_hit

    def finalize(self) -> DrizzleResult:
        """Fill empty pixels and return the output arrays.

        The accumulators stay valid: more images may be added afterwards.
        """
        if self.fillval is not None:
            _kern.fill_empty(self.data, self.weight, np.float32(self.fillval),
                             _threads_for(self.data.size, self.num_threads))
        variances = {}
        psr = self.pixel_scale_ratio if self.pixel_scale_ratio is not None else 1.0
        nthreads = _threads_for(self.data.size, self.num_threads)
        for name in self.variance_planes:
            variances[name] = _kern.finalize_variance(self._var_sum[name], self._var_wht[name],
                                                      float(psr), nthreads)
        emean = emax = float("nan")
        if self.exptime is not None:
            covered = self.exptime[self.exptime > 0]
            if covered.size:
                emean = float(covered.mean(dtype=np.float64))
                emax = float(covered.max())
        return DrizzleResult(
            data=self.data,
            weight=self.weight,
            context=self.context,
            variances=variances,
            exptime=self.exptime,
            exptime_mean=emean,
            exptime_max=emax,
            n_inputs=self.n_inputs,
            pixel_scale_ratio=self.pixel_scale_ratio,
        )


# --------------------------------------------------------------------------- utilities
def build_mask(dq, bitvalue) -> np.ndarray:
    """uint8 mask: 1 where a pixel is good under ``bitvalue`` (good bits), else 0.

    ``bitvalue`` is any bit specification understood by
    :func:`romancore.dq.interpret_bit_flags` (``"~DO_NOT_USE+NON_SCIENCE"``,
    ``"8192,65536"``, an integer, None = every pixel good).
    """
    dq = np.asarray(dq)
    if dq.dtype.kind not in "iu":
        raise ParameterError(f"dq must be an integer array, got dtype {dq.dtype}")
    try:
        good = interpret_bit_flags(bitvalue)
    except ValueError as exc:
        raise ParameterError(f"bad good_bits {bitvalue!r}: {exc}") from None
    if good is None:
        return np.ones(dq.shape, np.uint8)
    bad = np.uint32(~good & 0xFFFFFFFF)
    if dq.ndim == 2 and dq.dtype == np.uint32:
        return _dq_ops.good_pixel_mask(np.ascontiguousarray(dq), bad)
    return ((dq.astype(np.uint64) & np.uint64(bad)) == 0).astype(np.uint8)


def source_free_variance(var, good, block: int = 64) -> np.ndarray:
    """A read-noise variance map without the imprint of the sources (float32).

    The ramp fitter's read-noise variance of a slope depends on the pixel's own signal
    (the optimal weights change with S/N), so ``1/var_rnoise`` weights would favour each
    exposure where its sample of a star is faint and bias co-added fluxes low.  The
    median of ``var`` over ``block``×``block`` boxes of good pixels keeps the detector's
    smooth noise structure (amplifiers, regions) and drops the per-source part; boxes
    without good pixels take the image median.
    """
    var = np.ascontiguousarray(var, dtype=np.float32)
    ny, nx = var.shape
    good = np.ascontiguousarray(good, dtype=bool).view(np.uint8)
    if good.shape != var.shape:
        raise ParameterError(f"good has shape {good.shape}, expected {var.shape}")
    # one pass: per box, gather the good finite positive values and select the median
    med = _kern.tile_medians(var, good, int(block), _threads_for(var.size, _num_threads(None)))
    if not np.isfinite(med).any():
        return np.full((ny, nx), np.nan, dtype=np.float32)
    med[~np.isfinite(med)] = np.nanmedian(med)
    cols = np.repeat(med.astype(np.float32, copy=False), block, axis=1)[:, :nx]
    return np.ascontiguousarray(np.repeat(cols, block, axis=0)[:ny])


def build_driz_weight(
    data,
    dq,
    var_rnoise=None,
    exptime=None,
    *,
    weight_type: str | None = "ivm",
    good_bits="~DO_NOT_USE",
    var_poisson=None,
) -> np.ndarray:
    """float32 drizzle weight map of one image (ALGORITHMS.md §6.2).

    Parameters
    ----------
    data : 2-D array
        Science data (shape reference; used by ``ivm-sky``).
    dq : 2-D integer array
        Pixel DQ flags.
    var_rnoise : 2-D array or None
        Read-noise variance; ``ivm`` without it weights good pixels by 1.
    exptime : float or None
        Exposure (measurement) time, needed by ``exptime``.
    weight_type : {"ivm", "exptime", "ivm-sky", None}
        ``ivm``: ``mask / var_rnoise`` with the source-free variance of
        :func:`source_free_variance`; ``exptime``: ``mask * exptime``;
        ``ivm-sky``: ``mask / var_sky`` with
        ``var_sky = var_rnoise + var_poisson / data * median(good data)``;
        None: the mask.
    good_bits : bit specification
        DQ bits that do not exclude a pixel (default ``"~DO_NOT_USE"``).
    var_poisson : 2-D array or None
        Poisson variance (``ivm-sky`` only).

    Non-finite and negative weights are set to 0.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ParameterError(f"data must be a 2-D array, got shape {data.shape}")
    dq = np.asarray(dq)
    if dq.shape != data.shape:
        raise ParameterError(f"dq has shape {dq.shape}, expected {data.shape}")
    if weight_type is not None and not isinstance(weight_type, str):
        raise ParameterError(f"weight_type must be one of {WEIGHT_TYPES}, got {weight_type!r}")
    wt = weight_type.lower() if isinstance(weight_type, str) else None
    if wt not in WEIGHT_TYPES:
        raise ParameterError(f"weight_type must be one of {WEIGHT_TYPES}, got {weight_type!r}")
    mask = build_mask(dq, good_bits).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        if wt == "ivm":
            if var_rnoise is None:
                w = mask
            else:
                vr = _as_image("var_rnoise", var_rnoise, data.shape)
                w = mask / source_free_variance(vr, mask > 0)
        elif wt == "exptime":
            if exptime is None:
                raise ParameterError("weight_type='exptime' needs exptime")
            w = mask * np.float32(positive_finite("exptime", exptime))
        elif wt == "ivm-sky":
            if var_rnoise is None or var_poisson is None:
                raise ParameterError("weight_type='ivm-sky' needs var_rnoise and var_poisson")
            vr = _as_image("var_rnoise", var_rnoise, data.shape)
            vp = _as_image("var_poisson", var_poisson, data.shape)
            d = data.astype(np.float32)
            good = (mask > 0) & np.isfinite(d)
            med = np.float32(np.median(d[good])) if good.any() else np.float32(np.nan)
            var_sky = np.where(d != 0, vr + vp / d * med, vr)
            w = mask / var_sky
        else:
            w = mask
    w = np.asarray(w, dtype=np.float32)
    w[~(np.isfinite(w) & (w > 0))] = 0.0
    return w


def decode_context(context, x, y) -> list:
    """0-based indices of the inputs that contributed to output pixels (x, y).

    Parameters
    ----------
    context : integer array [nplanes, ny, nx]
    x, y : int or sequences of int
        Column and row of the pixels to decode.

    Returns
    -------
    list of int64 arrays, one per (x, y) pair.
    """
    context = np.asarray(context)
    if context.ndim != 3 or context.dtype.kind not in "iu":
        raise ParameterError(
            f"context must be a 3-D integer array, got shape {context.shape} dtype {context.dtype}"
        )
    xs = np.atleast_1d(np.asarray(x))
    ys = np.atleast_1d(np.asarray(y))
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise ParameterError("x and y must be integers or 1-D sequences of the same length")
    if xs.dtype.kind not in "iu" or ys.dtype.kind not in "iu":
        raise ParameterError("x and y must be integers")
    nplanes, ny, nx = context.shape
    if np.any((xs < 0) | (xs >= nx) | (ys < 0) | (ys >= ny)):
        raise ParameterError(f"x, y must lie inside the context image of shape ({ny}, {nx})")
    bits = np.arange(32, dtype=np.uint64)
    out = []
    for xi, yi in zip(xs, ys, strict=True):
        words = context[:, yi, xi].astype(np.uint64) & np.uint64(0xFFFFFFFF)
        set_bits = (words[:, None] >> bits[None, :]) & np.uint64(1)
        out.append(np.flatnonzero(set_bits.ravel()))
    return out


def blot(median, pixmap, out_shape=None, *, fillval=np.nan, iscale: float = 1.0,
         num_threads: int | None = None) -> np.ndarray:
    """Sample an output-frame image back onto an input frame (bilinear).

    ``result[j, i] = iscale * median(X, Y)`` with ``(X, Y) = pixmap[j, i]`` the
    position of input pixel (i, j) in the median's frame.  Positions outside
    ``0 <= X < nx``, ``0 <= Y < ny`` or NaN get ``fillval``; on the last
    column/row only the other axis is interpolated.

    Returns float32 [ny_in, nx_in] with ``(ny_in, nx_in) = pixmap.shape[:2]``
    (``out_shape``, when given, must equal it).
    """
    median = _as_image("median", median)
    pixmap = _as_pixmap(pixmap)
    if out_shape is not None and tuple(int(v) for v in out_shape) != pixmap.shape[:2]:
        raise ParameterError(
            f"out_shape {tuple(out_shape)} disagrees with the pixmap's input shape {pixmap.shape[:2]}"
        )
    fill = _parse_fillval(fillval)
    if fill is None:
        raise ParameterError("blot needs a numeric fillval")
    nthreads = _threads_for(pixmap.shape[0] * pixmap.shape[1], _num_threads(num_threads))
    return _kern.blot(median, pixmap, float(iscale), np.float32(fill), nthreads)
