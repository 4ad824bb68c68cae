"""Sky background measurement and matching across overlapping images.

ALGORITHMS.md §8 and the seed "SkyMatch" pages.  Each image is a :class:`SkyImage`:
its data, a mask of usable pixels, its footprint on the sky as a
:class:`spherical_geometry.polygon.SphericalPolygon`, and a ``world_to_pixel``
callable used to find its pixels inside an overlap polygon.

Sky statistic (the reference's ``ImageStats`` rules, :func:`sky_statistic`):
values in ``[lower, upper]`` are clipped ``nclip`` times at ``mean − lsigma·std``
/ ``mean + usigma·std`` (sample std, N−1); ``mean``, ``median``, and the
histogram-based ``mode`` and ``midpt`` (bin width ``binwidth·std``) are taken
from the last pass.

Methods (:func:`match_sky`):

* ``local``: the statistic of each image;
* ``global``: the smallest local value, given to every image;
* ``match``: for every overlapping pair ``i<j`` with statistics ``s_i``, ``s_j``
  and pixel counts ``n_i``, ``n_j`` in the overlap, the equation
  ``W(δ_i − δ_j) = W(s_i − s_j)`` with ``W = ½(n_i + n_j)``; the system is
  solved with ``pinv(K, rcond=1e-12)`` (minimum norm, so each group of
  mutually overlapping images has zero mean offset), then shifted so the
  lowest (``match_down``) or highest offset is 0;
* ``global+match``: ``match``, then every image gets in addition the smallest
  remaining sky ``local_i − δ_i``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from spherical_geometry.polygon import SphericalPolygon

from romancore import dq as dqflags
from romancore._ext import skystats as _skystats
from romancore.errors import ParameterError

log = logging.getLogger(__name__)

SKYMETHODS = ("local", "global", "match", "global+match")
SKYSTATS = ("mode", "midpt", "mean", "median")
DEFAULT_DQBITS = "~DO_NOT_USE+NON_SCIENCE"

_EPS = 10.0 * float(np.finfo(np.float32).eps)


# --------------------------------------------------------------------------- statistics

@dataclass(frozen=True)
class SkyStatParams:
    """Validated sky-statistic parameters (defaults are the step defaults)."""

    skystat: str = "mode"
    lower: float | None = None
    upper: float | None = None
    nclip: int = 5
    lsigma: float = 4.0
    usigma: float = 4.0
    binwidth: float = 0.1

    def __post_init__(self):
        if self.skystat not in SKYSTATS:
            raise ParameterError(f"skystat={self.skystat!r}: must be one of {', '.join(SKYSTATS)}")
        for name in ("lower", "upper"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not _is_finite_number(v)):
                raise ParameterError(f"{name}={v!r}: must be a finite number or None")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ParameterError(f"lower={self.lower!r} must not exceed upper={self.upper!r}")
        if isinstance(self.nclip, bool) or not isinstance(self.nclip, (int, np.integer)) \
                or self.nclip < 0:
            raise ParameterError(f"nclip={self.nclip!r}: must be an integer >= 0")
        for name in ("lsigma", "usigma", "binwidth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not _is_finite_number(v) or v < 0:
                raise ParameterError(f"{name}={v!r}: must be a finite number >= 0")


def _is_finite_number(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _histogram_value(hist: np.ndarray, vmin: float, h: float, skystat: str) -> float:
    """``mode`` or ``midpt`` of a histogram with bins of width ``h`` starting at ``vmin``."""
    nbins = hist.size
    if skystat == "mode":
        if nbins == 1:
            return vmin + 0.5 * h
        if nbins == 2:
            if hist[0] > hist[1]:
                return vmin + 0.5 * h
            if hist[1] > hist[0]:
                return vmin + 1.5 * h
            return vmin + h
        p = int(np.argmax(hist))
        if p == 0:
            return vmin + 0.5 * h
        if p == nbins - 1:
            return vmin + (nbins - 0.5) * h
        dh1 = float(hist[p] - hist[p - 1])
        dh2 = float(hist[p] - hist[p + 1])
        if dh1 + dh2 == 0:
            return vmin + (p + 0.5) * h
        return vmin + (p + 0.5 + 0.5 * (dh1 - dh2) / (dh1 + dh2)) * h
    # midpt: interpolate the cumulative distribution at one half
    cdf = (np.cumsum(hist) / hist.sum()).astype(np.float32)
    lo = int(np.argmax(cdf >= np.float32(0.5)))
    if lo == 0:
        return vmin + 0.5 / float(cdf[0]) * h
    denom = float(cdf[lo]) - float(cdf[lo - 1])
    if denom == 0:
        return vmin + lo * h
    return vmin + lo * h + (0.5 - float(cdf[lo - 1])) / denom * h


def sky_statistic(values, skystat: str = "mode", *, lower=None, upper=None, nclip: int = 5,
                  lsigma: float = 4.0, usigma: float = 4.0, binwidth: float = 0.1,
                  mask=None) -> tuple[float | None, int]:
    """Clipped sky statistic of a set of pixel values.

    Parameters
    ----------
    values : array
        Pixel values (any shape; non-finite values are ignored; cast to float32).
    skystat : {'mode', 'midpt', 'mean', 'median'}
    lower, upper : float or None
        Only values in ``[lower, upper]`` are used.
    nclip : int
        Clipping iterations (``nclip + 1`` passes; the last gives the result).
    lsigma, usigma : float
        Clip limits in units of the sample standard deviation.
    binwidth : float
        Histogram bin width for ``mode`` and ``midpt``, in units of the std.
    mask : bool array or None
        Same shape as ``values``; only pixels where it is True are used
        (``sky_statistic(data, mask=m)`` equals ``sky_statistic(data[m])``
        without the copy).

    Returns
    -------
    (value, npix)
        The statistic (None when there is no usable value) and the number of
        pixels in the last pass.
    """
    p = SkyStatParams(skystat, lower, upper, nclip, lsigma, usigma, binwidth)
    return _sky_statistic(values, p, mask)


# A one-pass variance from sums shifted by K loses about (mean - K)**2 / var
# digits' worth of relative precision; beyond this ratio the pass is redone
# with K = mean (which makes it the two-pass formula).
_SHIFT_RATIO = 100.0


def _flat_inputs(values, mask) -> tuple[np.ndarray, np.ndarray]:
    """Values as a flat float32 array and the mask as flat uint8 (empty: no mask)."""
    arr = np.asarray(values)
    v = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
    if mask is None:
        return v, np.empty(0, dtype=np.uint8)
    m = np.asarray(mask)
    if m.shape != arr.shape:
        raise ParameterError(f"mask has shape {m.shape}, expected the shape of values "
                             f"{arr.shape}")
    if m.dtype != np.bool_:
        m = m != 0
    return v, np.ascontiguousarray(m).reshape(-1).view(np.uint8)


def _moments(v, m, lo, hi, shift, need_std, need_range):
    """(n, mean, std, vmin, vmax) of the values in [lo, hi]; n == 0 -> None.

    ``std`` is exact only with ``need_std``, ``vmin``/``vmax`` are NaN
    without ``need_range``.
    """
    n, s1, s2, vmin, vmax, shift = _skystats.clip_moments(v, m, lo, hi, shift, need_range)
    if n == 0:
        return None
    d = s1 / n
    ss = s2 - s1 * d
    if need_std and n > 1 and d * d * n > _SHIFT_RATIO * ss:
        n, s1, s2, vmin, vmax, shift = _skystats.clip_moments(v, m, lo, hi, shift + d,
                                                              need_range)
        d = s1 / n
        ss = s2 - s1 * d
    mean = shift + d
    std = math.sqrt(max(ss, 0.0) / (n - 1)) if n > 1 else 0.0
    return n, mean, std, vmin, vmax


def _sky_statistic(values, p: SkyStatParams, mask=None) -> tuple[float | None, int]:
    v, m = _flat_inputs(values, mask)
    big = float(np.finfo(np.float64).max)  # finite bounds also drop ±inf and NaN
    lower = float(p.lower) if p.lower is not None else -big
    upper = float(p.upper) if p.upper is not None else big
    clipmin, clipmax = lower, upper
    hist_stat = p.skystat in ("mode", "midpt")
    shift = math.nan
    for it in range(p.nclip + 1):
        last = it == p.nclip
        got = _moments(v, m, clipmin, clipmax, shift, need_std=hist_stat or not last,
                       need_range=hist_stat and last)
        if got is None:
            return None, 0
        n, mean, std, vmin, vmax = got
        if not last:
            clipmin = max(lower, mean - p.lsigma * std)
            clipmax = min(upper, mean + p.usigma * std)
            shift = mean
    if p.skystat == "mean":
        value = mean
    elif p.skystat == "median":
        sel = _skystats.select(v, m, clipmin, clipmax, n)
        k = (n - 1) // 2
        if n % 2:
            value = float(np.partition(sel, k)[k])
        else:  # one kth (np.partition with two is several times slower)
            part = np.partition(sel, k)
            value = (float(part[k]) + float(part[k + 1:].min())) / 2.0
    else:
        h = float(p.binwidth) * std
        span = vmax - vmin
        if h < _EPS or span < _EPS or h > span:
            hist = np.array([n])
        else:
            nbins = int(span / h) + 1
            dz = span / (nbins - 1)
            hist = _skystats.histogram(v, m, clipmin, clipmax, vmin, dz, nbins)
        value = _histogram_value(hist, vmin, h, p.skystat)
    if not math.isfinite(value):
        return None, n
    return value, n


# --------------------------------------------------------------------------- geometry

def footprint_vertices(shape: tuple[int, int], stepsize: int | None = None):
    """Pixel coordinates (x, y) of the pixel-edge rectangle of an image, closed.

    The rectangle is ``(−0.5, −0.5) … (nx − 0.5, ny − 0.5)``; with ``stepsize``
    the edges get extra vertices at most ``stepsize`` pixels apart.
    """
    ny, nx = shape
    corners = [(-0.5, -0.5), (nx - 0.5, -0.5), (nx - 0.5, ny - 0.5), (-0.5, ny - 0.5)]
    xs, ys = [], []
    for (xa, ya), (xb, yb) in zip(corners, corners[1:] + corners[:1], strict=True):
        length = max(abs(xb - xa), abs(yb - ya))
        nseg = 1 if stepsize is None else max(1, math.ceil(length / stepsize))
        t = np.arange(nseg) / nseg
        xs.append(xa + (xb - xa) * t)
        ys.append(ya + (yb - ya) * t)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return np.append(x, x[0]), np.append(y, y[0])


def footprint_polygon(shape: tuple[int, int], pixel_to_world: Callable,
                      stepsize: int | None = None) -> SphericalPolygon:
    """Sky footprint of an image: its pixel-edge rectangle mapped by ``pixel_to_world``.

    ``pixel_to_world(x, y) -> (ra, dec)`` in degrees, 0-based pixel coordinates
    (e.g. ``lambda x, y: gwcs_obj(x, y, with_bounding_box=False)``).
    """
    if stepsize is not None and (isinstance(stepsize, bool)
                                 or not isinstance(stepsize, (int, np.integer)) or stepsize < 1):
        raise ParameterError(f"stepsize={stepsize!r}: must be None or an integer >= 1")
    x, y = footprint_vertices(shape, stepsize)
    ra, dec = pixel_to_world(x, y)
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ParameterError("pixel_to_world returned non-finite sky coordinates for the "
                             "image corners")
    return SphericalPolygon.from_radec(ra, dec)


def polygon_pixel_mask(shape: tuple[int, int], x, y) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside the polygon (x, y).

    Even-odd rule on horizontal scan lines through the pixel centres; the
    polygon may be open or closed, convex or not.
    """
    ny, nx = shape
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xa, ya = x, y
    xb, yb = np.roll(x, -1), np.roll(y, -1)
    mask = np.zeros(shape, dtype=bool)
    if x.size < 3:
        return mask
    ylo = max(0, int(math.ceil(np.min(y))))
    yhi = min(ny - 1, int(math.floor(np.max(y))))
    if yhi < ylo:
        return mask
    rows = np.arange(ylo, yhi + 1, dtype=float)[:, None]
    # half-open rule: an edge counts on rows y with min(ya, yb) <= y < max(ya, yb)
    crosses = ((ya <= rows) & (rows < yb)) | ((yb <= rows) & (rows < ya))
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = xa + (rows - ya) * (xb - xa) / (yb - ya)
    xc = np.where(crosses, xc, np.nan)
    xc.sort(axis=1)
    ncross = crosses.sum(axis=1)
    diff = np.zeros((rows.shape[0], nx + 1), dtype=np.int32)
    for k in range(0, xc.shape[1] - 1, 2):
        ok = ncross >= k + 2
        if not ok.any():
            break
        r = np.flatnonzero(ok)
        start = np.clip(np.ceil(xc[r, k]), 0, nx).astype(np.int64)
        stop = np.clip(np.floor(xc[r, k + 1]) + 1, 0, nx).astype(np.int64)
        good = stop > start
        np.add.at(diff, (r[good], start[good]), 1)
        np.add.at(diff, (r[good], stop[good]), -1)
    mask[ylo:yhi + 1] = np.cumsum(diff, axis=1)[:, :nx] > 0
    return mask


def usable_mask(data, dq=None, dqbits=DEFAULT_DQBITS, mask=None) -> np.ndarray:
    """Pixels usable for sky statistics: finite data, DQ flags all in ``dqbits``, and ``mask``."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ParameterError(f"data must be a 2-D array, got shape {data.shape}")
    usable = np.isfinite(data)
    if dq is not None:
        dq = np.asarray(dq)
        if dq.shape != data.shape:
            raise ParameterError(f"dq has shape {dq.shape}, expected {data.shape}")
        try:
            usable &= dqflags.good_mask(dq, dqbits)
        except ValueError as exc:
            raise ParameterError(f"dqbits={dqbits!r}: {exc}") from None
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ParameterError(f"mask has shape {mask.shape}, expected {data.shape}")
        usable &= mask
    return usable


@dataclass
class SkyImage:
    """One image taking part in sky matching.

    Attributes
    ----------
    data : 2-D array or None
        Surface brightness (any float dtype; statistics are computed in float32).
        None for a deferred image (see :meth:`deferred`), whose pixels are read
        through ``loader`` only while its own statistics are computed.
    footprint : SphericalPolygon
        The image outline on the sky (see :func:`footprint_polygon`).
    world_to_pixel : callable or None
        ``(ra, dec) -> (x, y)`` 0-based pixel coordinates of this image; needed
        by ``match`` and ``global+match`` to find the pixels of an overlap.
    mask : 2-D bool array or None
        True where a pixel may be used (good DQ and finite data).
    id : any
        A label for messages.
    loader : callable or None
        ``() -> (data, mask)`` for a deferred image.
    shape : tuple or None
        ``(ny, nx)`` of a deferred image.
    """

    data: np.ndarray | None
    footprint: SphericalPolygon
    world_to_pixel: Callable | None = None
    mask: np.ndarray | None = None
    id: object = None
    loader: Callable | None = None
    shape: tuple | None = None

    @classmethod
    def from_wcs(cls, data, pixel_to_world: Callable, world_to_pixel: Callable, *, dq=None,
                 dqbits=DEFAULT_DQBITS, mask=None, stepsize: int | None = None,
                 id=None) -> SkyImage:
        """Build from data, optional DQ (``dqbits`` = good bits) and the WCS callables."""
        data = np.asarray(data)
        usable = usable_mask(data, dq, dqbits, mask)
        poly = footprint_polygon(data.shape, pixel_to_world, stepsize)
        return cls(data=data, footprint=poly, world_to_pixel=world_to_pixel, mask=usable, id=id)

    @classmethod
    def deferred(cls, shape, loader: Callable, pixel_to_world: Callable, world_to_pixel: Callable,
                 *, stepsize: int | None = None, id=None) -> SkyImage:
        """An image whose pixels are read only while its statistics are computed.

        ``loader() -> (data, mask)`` returns the 2-D data of ``shape`` and its usable-pixel
        mask (e.g. from :func:`usable_mask`).  :func:`match_sky` calls it once per image and
        drops the arrays before reading the next image, so matching N images holds the
        pixels of one image at a time.
        """
        shape = tuple(int(v) for v in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ParameterError(f"shape={shape!r}: must be two positive integers (ny, nx)")
        if not callable(loader):
            raise ParameterError(f"loader={loader!r}: must be a callable returning (data, mask)")
        poly = footprint_polygon(shape, pixel_to_world, stepsize)
        return cls(data=None, footprint=poly, world_to_pixel=world_to_pixel, id=id,
                   loader=loader, shape=shape)

    @property
    def pixel_shape(self) -> tuple:
        return tuple(self.shape) if self.data is None else tuple(np.shape(self.data))

    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data, usable mask)``, read through the loader for a deferred image."""
        if self.data is not None:
            return self.data, self.usable()
        data, mask = self.loader()
        data = np.asarray(data)
        if data.shape != self.pixel_shape:
            raise ParameterError(f"image {self.id!r}: loader returned data of shape {data.shape}, "
                                 f"expected {self.pixel_shape}")
        mask = np.isfinite(data) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(data))
        if mask.shape != data.shape:
            raise ParameterError(f"image {self.id!r}: loader returned a mask of shape {mask.shape}, "
                                 f"expected {data.shape}")
        return data, mask

    def usable(self) -> np.ndarray:
        m = np.isfinite(self.data)
        return m if self.mask is None else (m & self.mask)

    def inside(self, polygon: SphericalPolygon) -> np.ndarray:
        """Pixels of this image whose centres fall inside ``polygon`` (no usability test)."""
        if self.world_to_pixel is None:
            raise ParameterError(f"image {self.id!r} has no world_to_pixel; matching needs it")
        shape = self.pixel_shape
        inside = np.zeros(shape, dtype=bool)
        for ra, dec in polygon.to_radec():
            x, y = self.world_to_pixel(np.asarray(ra), np.asarray(dec))
            inside |= polygon_pixel_mask(shape, x, y)
        return inside

    def overlap_mask(self, polygon: SphericalPolygon) -> np.ndarray:
        """Usable pixels of this image whose centres fall inside ``polygon``."""
        return self.inside(polygon) & self.usable()


# --------------------------------------------------------------------------- matching

@dataclass
class SkyMatchResult:
    """Per-image sky levels and what ``meta.background`` needs.

    ``levels[i]`` is the sky of image i (0.0 where it could not be computed);
    ``valid[i]`` tells whether it was computed (the step marks the others
    ``cal_step.skymatch = SKIPPED``).
    """

    levels: np.ndarray
    valid: np.ndarray
    method: str
    subtracted: bool
    pairs: list[tuple[int, int, float, float, int, int]] = field(default_factory=list)

    def background(self, i: int) -> dict:
        """The ``meta.background`` fields of image i: level, method, subtracted."""
        return {"level": float(self.levels[i]), "method": self.method,
                "subtracted": bool(self.subtracted and self.valid[i])}

    def cal_step(self, i: int) -> str:
        return "COMPLETE" if self.valid[i] else "SKIPPED"


def _overlaps(images) -> dict:
    """Sky overlap polygon of every pair ``(i, j)``, i < j, whose footprints overlap."""
    out = {}
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            overlap = images[i].footprint.intersection(images[j].footprint)
            if overlap.area() > 0:
                out[(i, j)] = overlap
    return out


def _statistics(images, p, *, local: bool, overlaps: dict):
    """One pass over the images, each read once: the local statistic of every image (if
    ``local``) and the statistic of image i in each of its pair overlaps.

    Returns ``(local_values, pair_stats)`` with ``pair_stats[(i, j)][k] = (value, n)`` for
    image ``(i, j)[k]``.
    """
    n = len(images)
    local_values = np.full(n, np.nan)
    pair_stats: dict = {key: [None, None] for key in overlaps}
    for i, im in enumerate(images):
        mine = [key for key in overlaps if i in key]
        if not local and not mine:
            continue
        data, usable = im.pixels()
        if local:
            value, _ = _sky_statistic(data, p, usable)
            if value is not None:
                local_values[i] = value
        for key in mine:
            pair_stats[key][key.index(i)] = _sky_statistic(data, p, im.inside(overlaps[key]) & usable)
        del data, usable
    return local_values, pair_stats


def _match(n, overlaps, pair_stats, match_down: bool):
    rows, rhs, pairs = [], [], []
    for (i, j) in overlaps:
        (si, ni), (sj, nj) = pair_stats[(i, j)]
        if si is None or sj is None or ni == 0 or nj == 0:
            continue
        w = 0.5 * (ni + nj)
        row = np.zeros(n)
        row[i], row[j] = w, -w
        rows.append(row)
        rhs.append(w * (si - sj))
        pairs.append((i, j, si, sj, ni, nj))
    delta = np.full(n, np.nan)
    if not rows:
        log.warning("sky matching: no pair of images overlaps with usable pixels")
        return delta, pairs
    k = np.array(rows)
    f = np.array(rhs)
    solution = np.linalg.pinv(k, rcond=1e-12) @ f
    in_pair = np.zeros(n, dtype=bool)
    for i, j, *_ in pairs:
        in_pair[i] = in_pair[j] = True
    rank = np.linalg.matrix_rank(k)
    if rank < in_pair.sum() - 1:
        log.warning("sky matching: the overlaps split the images into disconnected groups "
                    "(rank %d for %d images); levels are matched only within each group",
                    rank, int(in_pair.sum()))
    delta[in_pair] = solution[in_pair]
    ref = np.min(delta[in_pair]) if match_down else np.max(delta[in_pair])
    delta[in_pair] -= ref
    return delta, pairs


def match_sky(
    images: Sequence[SkyImage],
    *,
    skymethod: str = "match",
    match_down: bool = True,
    subtract: bool = False,
    skystat: str = "mode",
    lower: float | None = None,
    upper: float | None = None,
    nclip: int = 5,
    lsigma: float = 4.0,
    usigma: float = 4.0,
    binwidth: float = 0.1,
) -> SkyMatchResult:
    """Compute (and optionally subtract) the sky of each image.

    Parameters are those of the skymatch step (see the module docstring).
    With ``subtract=True`` each valid level is subtracted **in place** from
    ``images[i].data`` (which must then be a writable float array).

    Returns
    -------
    SkyMatchResult
    """
    if skymethod not in SKYMETHODS:
        raise ParameterError(f"skymethod={skymethod!r}: must be one of {', '.join(SKYMETHODS)}")
    for name, flag in (("match_down", match_down), ("subtract", subtract)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ParameterError(f"{name}={flag!r}: must be True or False")
    p = SkyStatParams(skystat, lower, upper, nclip, lsigma, usigma, binwidth)
    images = list(images)
    if not images:
        raise ParameterError("images is empty: sky matching needs at least one image")
    for i, im in enumerate(images):
        if not isinstance(im, SkyImage):
            raise ParameterError(f"images[{i}] is a {type(im).__name__}, expected a SkyImage")
        if im.data is None:
            if im.loader is None:
                raise ParameterError(f"images[{i}] has neither data nor a loader")
            if subtract:
                raise ParameterError(f"images[{i}] is deferred (its pixels are read on demand): "
                                     "subtract=True needs in-memory data")
            continue
        if np.ndim(im.data) != 2:
            raise ParameterError(f"images[{i}].data must be 2-D, got shape {np.shape(im.data)}")
        if im.mask is not None and np.shape(im.mask) != np.shape(im.data):
            raise ParameterError(f"images[{i}].mask has shape {np.shape(im.mask)}, "
                                 f"expected {np.shape(im.data)}")

    pairs: list = []
    n = len(images)
    overlaps = _overlaps(images) if skymethod in ("match", "global+match") else {}
    local, pair_stats = _statistics(images, p, local=skymethod != "match", overlaps=overlaps)
    if skymethod == "local":
        sky = local
    elif skymethod == "global":
        ok = np.isfinite(local)
        sky = np.full(n, np.min(local[ok]) if ok.any() else np.nan)
    elif skymethod == "match":
        sky, pairs = _match(n, overlaps, pair_stats, bool(match_down))
    else:  # global+match
        delta, pairs = _match(n, overlaps, pair_stats, bool(match_down))
        matched = np.isfinite(delta)
        delta = np.where(matched, delta, 0.0)
        ok = np.isfinite(local)
        if ok.any():
            sky = delta + np.min(local[ok] - delta[ok])
            sky[~ok & ~matched] = np.nan
        else:
            sky = np.full(n, np.nan)

    valid = np.isfinite(sky)
    for i in np.flatnonzero(~valid):
        log.warning("sky of image %r could not be computed; its level is set to 0",
                    images[i].id if images[i].id is not None else i)
    levels = np.where(valid, sky, 0.0)
    if subtract:
        for i in np.flatnonzero(valid):
            images[i].data -= levels[i]
    return SkyMatchResult(levels=levels, valid=valid, method=skymethod,
                          subtracted=bool(subtract), pairs=pairs)
