"""Catalog-based WCS alignment of WFI images with tweakwcs (ALGORITHMS.md §9.3).

Each image brings a gwcs with the WFI frames ``detector → v2v3 → v2v3vacorr → world``, its
``meta.wcsinfo`` reference angles (``v2_ref``, ``v3_ref`` in arcsec, ``roll_ref`` in deg)
and a table of source positions ``x, y`` (0-based pixels).

1. **Relative alignment** (only when the images come from more than one exposure group):
   the groups are aligned to each other with ``tweakwcs.align_wcs`` (2-D histogram for the
   initial offset, ``XYXYMatch`` matching, iterative sigma-clipped linear fit of geometry
   ``fitgeometry``).
2. **Absolute alignment**, when a reference catalog (RA, Dec in degrees) is given: all images
   form one group, aligned to the catalog with the ``abs_*`` parameters.

Matching (:class:`TangentPlaneMatch`, one-to-one) and fit tolerances are in arcsec (the
units of the V2V3 tangent plane).  The reference catalog is cut to the images' sky
footprints plus a margin before matching.  A fit is
an affine transform (matrix, shift in arcsec) in the tangent plane about
(``v2_ref``, ``v3_ref``, ``roll_ref``); tweakwcs' Roman corrector writes it into the WCS as a
``v2v3corr`` frame.  No network access: the reference catalog is an astropy Table or a file
the user gives.  Proper motions are not applied (the catalog positions are used as given).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from romancore.dq import pixel as pixel_flags
from romancore.errors import FileFormatError, ParameterError

log = logging.getLogger(__name__)

__all__ = [
    "ABSOLUTE_GROUP_ID",
    "FIT_GEOMETRIES",
    "AlignInput",
    "AlignResult",
    "TangentPlaneMatch",
    "TweakregResult",
    "align_images",
    "footprint_filter",
    "load_reference_catalog",
    "prepare_catalog",
    "read_catalog",
]

FIT_GEOMETRIES = ("shift", "rshift", "rscale", "general")
#: group id given to every image for the absolute alignment (as the reference pipeline)
ABSOLUTE_GROUP_ID = 987654
_FIT_KEYS = (
    "status", "fitgeom", "matrix", "shift", "center", "proper_rot", "proper", "rot", "<rot>",
    "scale", "<scale>", "skew", "rmse", "mae", "nmatches",
)
_DNU = int(pixel_flags.DO_NOT_USE)


@dataclass
class AlignInput:
    """One image to align.

    Attributes
    ----------
    wcs : gwcs.WCS
        WFI gwcs with a ``v2v3`` frame (and optionally ``v2v3vacorr``); not modified.
    catalog : astropy.table.Table
        Source positions; see :func:`prepare_catalog` for the accepted columns.
    wcsinfo : mapping
        ``v2_ref``, ``v3_ref`` (arcsec) and ``roll_ref`` (deg).
    group_id : hashable, optional
        Exposure group: images of one group move together in the relative alignment.
        ``None`` means a group of its own.
    name : str
        Used in log messages and results.
    shape : (ny, nx), optional
        Image shape, to drop sources outside the image when the WCS has no bounding box.
    """

    wcs: Any
    catalog: Table
    wcsinfo: Mapping
    group_id: Hashable | None = None
    name: str = ""
    shape: tuple[int, int] | None = None


@dataclass
class AlignResult:
    """The outcome for one image.

    Attributes
    ----------
    name : str
    wcs : gwcs.WCS
        The corrected WCS (a new object with a ``v2v3corr`` frame) when any fit succeeded,
        else a copy of the input WCS.
    status : str
        ``"SUCCESS"``, ``"REFERENCE"`` (relative reference image, no absolute catalog),
        ``"SKIPPED: <reason>"`` or ``"FAILED: <reason>"``.
    fit_results : dict
        For ``meta.wcs_fit_results``: ``status``, ``fitgeom``, ``matrix`` (2x2), ``shift``
        (arcsec, 2), ``center`` (arcsec), ``proper_rot``, ``proper``, ``rot`` (deg, 2),
        ``<rot>``, ``scale`` (2), ``<scale>``, ``skew`` (deg), ``rmse``, ``mae`` (arcsec),
        ``nmatches``; only ``status`` when no fit was made.  The entries describe the last
        fit applied (absolute if a reference catalog was given).
    relative_fit_results : dict or None
        The same for the relative step, when it ran.
    n_sources : int
        Sources of the catalog used (after filtering).
    """

    name: str
    wcs: Any
    status: str
    fit_results: dict = field(default_factory=dict)
    relative_fit_results: dict | None = None
    n_sources: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"


@dataclass
class TweakregResult:
    """What :func:`align_images` returns: one :class:`AlignResult` per input, in order,
    and the reference catalog used for the absolute step (columns ``RA``, ``DEC``, plus
    those of the input catalog), or None.  Writing that catalog (``save_abs_catalog``) is
    the caller's job."""

    images: list[AlignResult]
    refcat: Table | None


# --------------------------------------------------------------------------------------
# catalogs


def read_catalog(path: str | os.PathLike, *, format: str | None = "ascii.ecsv") -> Table:  # noqa: A002
    """Read a source or reference catalog file with astropy (``format`` as astropy names it;
    None lets astropy guess from the extension)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileFormatError(f"catalog file {path!r} does not exist")
    try:
        return Table.read(path, format=format) if format else Table.read(path)
    except Exception as exc:  # astropy raises many types for unreadable files
        raise FileFormatError(f"cannot read catalog {path!r} (format {format!r}): {exc}") from exc


def _find_column(table: Table, names: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n in table.colnames:
            return n
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def load_reference_catalog(refcat: Table | str | os.PathLike, *, format: str | None = None) -> Table:
    """Return the absolute reference catalog as a Table with float ``RA`` and ``DEC`` (deg).

    ``refcat`` is a Table or a file path (ECSV, parquet, FITS, ... read by astropy; the
    format is guessed from the extension unless given).  The RA/Dec columns may be named
    ``ra``/``dec``, ``RA``/``DEC`` or ``ra_deg``/``dec_deg``.  Rows with non-finite
    positions are dropped.
    """
    if isinstance(refcat, Table):
        table = refcat.copy()
    elif isinstance(refcat, (str, os.PathLike)):
        if isinstance(refcat, str) and not os.path.splitext(refcat)[1] and not os.path.exists(refcat):
            raise ParameterError(
                f"abs_refcat {refcat!r} is neither a catalog file nor a Table: romancore does "
                "not query online catalogs; give the path of an ECSV/parquet file with ra, dec"
            )
        path = os.fspath(refcat)
        fmt = format
        if fmt is None and path.lower().endswith(".ecsv"):
            fmt = "ascii.ecsv"
        table = read_catalog(path, format=fmt)
    else:
        raise ParameterError(f"refcat must be an astropy Table or a file path, got {type(refcat).__name__}")
    ra_col = _find_column(table, ("RA", "ra", "ra_deg"))
    dec_col = _find_column(table, ("DEC", "dec", "dec_deg"))
    if ra_col is None or dec_col is None:
        raise ParameterError(f"reference catalog needs ra and dec columns, has {table.colnames}")
    ra = np.asarray(table[ra_col], float)
    dec = np.asarray(table[dec_col], float)
    if ra_col != "RA" and "RA" in table.colnames:
        table.remove_column("RA")
    if dec_col != "DEC" and "DEC" in table.colnames:
        table.remove_column("DEC")
    table["RA"] = ra
    table["DEC"] = dec
    keep = np.isfinite(ra) & np.isfinite(dec)
    table = table[keep]
    if len(table) == 0:
        raise ParameterError("reference catalog has no rows with finite ra, dec")
    return table


def _bbox(wcs, shape):
    bb = getattr(wcs, "bounding_box", None)
    if bb is not None:
        try:
            (x0, x1), (y0, y1) = (tuple(map(float, iv)) for iv in bb)
            return x0, x1, y0, y1
        except (TypeError, ValueError):
            pass
    if shape is not None:
        ny, nx = shape
        return -0.5, nx - 0.5, -0.5, ny - 0.5
    return None


def prepare_catalog(table: Table, *, wcs=None, shape=None) -> Table:
    """Return a Table with float ``x``, ``y`` (0-based pixels) for tweakwcs.

    Positions come from the first pair found of ``x, y``; ``x_psf, y_psf``;
    ``x_centroid_win, y_centroid_win``; ``x_centroid, y_centroid``;
    ``xcentroid, ycentroid``.  Rows with non-finite positions, with ``DO_NOT_USE`` in
    ``warning_flags``, or outside the WCS bounding box (else outside ``shape``) are dropped.
    Other columns are kept.
    """
    if not isinstance(table, Table):
        raise ParameterError(f"catalog must be an astropy Table, got {type(table).__name__}")
    for xn, yn in (("x", "y"), ("x_psf", "y_psf"), ("x_centroid_win", "y_centroid_win"),
                   ("x_centroid", "y_centroid"), ("xcentroid", "ycentroid")):
        if xn in table.colnames and yn in table.colnames:
            break
    else:
        raise ParameterError(
            "catalog needs pixel positions in columns x, y (or x_psf/y_psf, "
            f"x_centroid_win/y_centroid_win, x_centroid/y_centroid, xcentroid/ycentroid); has {table.colnames}"
        )
    x = np.asarray(table[xn], float)
    y = np.asarray(table[yn], float)
    keep = np.isfinite(x) & np.isfinite(y)
    if "warning_flags" in table.colnames:
        keep &= (np.asarray(table["warning_flags"]).astype(np.int64) & _DNU) == 0
    box = _bbox(wcs, shape)
    if box is not None:
        x0, x1, y0, y1 = box
        keep &= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    out = table[keep]
    out = out.copy(copy_data=True)
    for name in ("x", "y"):
        if name in out.colnames:
            out.remove_column(name)
    out["x"] = x[keep]
    out["y"] = y[keep]
    return out


def _sky_footprint(wcs, shape):
    """(ra, dec) of the centre and the corners of an image (degrees), or None."""
    box = _bbox(wcs, shape)
    if box is None:
        return None
    x0, x1, y0, y1 = box
    x = np.array([0.5 * (x0 + x1), x0, x1, x1, x0, 0.5 * (x0 + x1), x0, x1, 0.5 * (x0 + x1)])
    y = np.array([0.5 * (y0 + y1), y0, y0, y1, y1, y0, 0.5 * (y0 + y1), 0.5 * (y0 + y1), y1])
    try:
        ra, dec = wcs(x, y)
    except Exception:  # a WCS that cannot be evaluated: no footprint (no cut)
        return None
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        return None
    return ra, dec


def _unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def footprint_filter(ra, dec, footprints, margin_arcsec: float) -> np.ndarray:
    """Boolean mask of the positions (deg) within ``margin_arcsec`` of a footprint.

    Each footprint is ``(ra, dec)`` arrays (deg) whose first point is the centre and the
    others lie on the edge; a position is kept when its angular distance to a centre is at
    most that footprint's largest centre-to-edge distance plus the margin (a circle around
    the image: generous on the corners, never too tight)."""
    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    if not np.isfinite(margin_arcsec) or margin_arcsec < 0:
        raise ParameterError(f"margin_arcsec must be a finite number >= 0, got {margin_arcsec!r}")
    keep = np.zeros(ra.shape, bool)
    pts = _unit(ra, dec)
    for fra, fdec in footprints:
        u = _unit(np.asarray(fra, float), np.asarray(fdec, float))
        radius = np.max(np.arccos(np.clip(u[1:] @ u[0], -1.0, 1.0)))
        radius += np.radians(margin_arcsec / 3600.0)
        keep |= pts @ u[0] >= np.cos(min(radius, np.pi))
    return keep


# --------------------------------------------------------------------------------------
# matching


def _thin(xy: np.ndarray, separation: float) -> np.ndarray:
    """Indices of the points kept when every point closer than ``separation`` to an earlier
    kept point is dropped (close pairs and duplicates keep their first member)."""
    n = len(xy)
    if separation <= 0 or n < 2:
        return np.arange(n)
    from scipy.spatial import cKDTree

    pairs = cKDTree(xy).query_pairs(separation, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(n)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    dropped = np.zeros(n, bool)
    for i, j in pairs:  # i < j, in order of i: i is final when its pairs are visited
        if not dropped[i]:
            dropped[j] = True
    return np.flatnonzero(~dropped)


def _histogram_offset(imxy, refxy, searchrad: float, binsize: float):
    """Offset (dx, dy) to add to image positions to land on the reference ones: the peak of
    the 2-D histogram of all reference − image differences within ``searchrad`` (bins of
    ``binsize``), refined as the median difference of the pairs in the 3 × 3 bins around it.
    Returns (offset, number of pairs in the peak); (0, 0), 0 if there are no pairs."""
    from scipy.spatial import cKDTree

    lists = cKDTree(refxy).query_ball_point(imxy, searchrad * math.sqrt(2.0))
    counts = np.fromiter((len(v) for v in lists), int, len(lists))
    if counts.sum() == 0:
        return np.zeros(2), 0
    im_i = np.repeat(np.arange(len(imxy)), counts)
    ref_i = np.concatenate([np.asarray(v, int) for v in lists if v])
    d = refxy[ref_i] - imxy[im_i]
    d = d[np.all(np.abs(d) <= searchrad, axis=1)]
    if len(d) == 0:
        return np.zeros(2), 0
    nbin = max(1, int(math.ceil(2 * searchrad / binsize)))
    edges = np.linspace(-searchrad, searchrad, nbin + 1)
    hist, _, _ = np.histogram2d(d[:, 0], d[:, 1], bins=(edges, edges))
    # sum over 2 x 2 neighbouring bins so that a peak split by a bin edge is still found
    padded = np.pad(hist, 1)
    smooth = padded[1:, 1:] + padded[:-1, 1:] + padded[1:, :-1] + padded[:-1, :-1]
    ix, iy = np.unravel_index(np.argmax(smooth), smooth.shape)
    ext = np.r_[edges[0] - binsize, edges, edges[-1] + binsize]
    center = np.array([ext[ix + 1], ext[iy + 1]])  # the corner shared by the 2 x 2 bins
    near = np.all(np.abs(d - center) <= 1.5 * binsize, axis=1)
    if not near.any():
        return np.zeros(2), 0
    offset = np.median(d[near], axis=0)
    near = np.all(np.abs(d - offset) <= binsize, axis=1)
    if near.any():
        offset = np.median(d[near], axis=0)
    return offset, int(near.sum())


def _mutual_nearest(imxy, refxy, tolerance: float):
    """(image index, reference index) pairs that are each other's nearest neighbour within
    ``tolerance``."""
    from scipy.spatial import cKDTree

    if len(imxy) == 0 or len(refxy) == 0:
        return np.array([], int), np.array([], int)
    d_im, near_ref = cKDTree(refxy).query(imxy, distance_upper_bound=tolerance)
    d_ref, near_im = cKDTree(imxy).query(refxy, distance_upper_bound=tolerance)
    im_idx = np.flatnonzero(np.isfinite(d_im))
    ref_idx = near_ref[im_idx]
    mutual = np.isfinite(d_ref[ref_idx]) & (near_im[ref_idx] == im_idx)
    return im_idx[mutual], ref_idx[mutual]


class TangentPlaneMatch:
    """One-to-one catalog matching in the tangent plane, a drop-in for tweakwcs' matcher.

    tweakwcs calls ``match(refcat, imcat, tp_pscale=..., tp_units=...)`` with ``TPx``,
    ``TPy`` columns in both tables and expects ``(reference indices, image indices)``.

    1. both lists are thinned: a source closer than ``separation`` to an earlier one of the
       same list is dropped (duplicates, e.g. one star seen by two exposures of a group);
    2. with ``use2dhist`` the offset between the lists is the peak of the 2-D histogram of
       reference − image differences within ``searchrad`` (one-pixel bins, ``tp_pscale``),
       refined by the median of the differences in the peak; else ``(xoffset, yoffset)``;
    3. an image source and a reference source match when, after the offset, each is the
       other's nearest neighbour and they are at most ``tolerance`` apart.

    A reference catalog much denser than the image catalog (faint stars, crowded fields)
    therefore cannot over-fill the match list (stsci.stimage's xyxymatch, which tweakwcs
    uses, fails there with "Number of output coordinates exceeded allocation"), and no
    source is matched twice.
    """

    def __init__(self, searchrad: float = 3.0, separation: float = 0.5, use2dhist: bool = True,
                 tolerance: float = 1.0, xoffset: float = 0.0, yoffset: float = 0.0):
        for name, val in (("searchrad", searchrad), ("tolerance", tolerance)):
            if not np.isfinite(val) or val <= 0:
                raise ParameterError(f"{name} must be a finite number > 0, got {val!r}")
        if not np.isfinite(separation) or separation < 0:
            raise ParameterError(f"separation must be a finite number >= 0, got {separation!r}")
        self.searchrad = float(searchrad)
        self.separation = float(separation)
        self.use2dhist = bool(use2dhist)
        self.tolerance = float(tolerance)
        self.offset = np.array([xoffset, yoffset], float)

    def __call__(self, refcat, imcat, tp_pscale=1.0, tp_units=None, **kwargs):
        refxy = np.column_stack([np.asarray(refcat["TPx"], float), np.asarray(refcat["TPy"], float)])
        imxy = np.column_stack([np.asarray(imcat["TPx"], float), np.asarray(imcat["TPy"], float)])
        units = tp_units or "tangent-plane units"
        ref_keep = _thin(refxy, self.separation)
        im_keep = _thin(imxy, self.separation)
        offset = self.offset
        if self.use2dhist:
            pscale = float(tp_pscale) if tp_pscale and np.isfinite(tp_pscale) and tp_pscale > 0 else 1.0
            offset, npeak = _histogram_offset(imxy[im_keep], refxy[ref_keep], self.searchrad,
                                              min(pscale, self.searchrad))
            if npeak == 0:
                log.warning("no catalog pairs within searchrad=%g %s; initial offset (0, 0)",
                            self.searchrad, units)
            else:
                log.info("initial offset %.4g, %.4g %s from %d pairs", offset[0], offset[1],
                         units, npeak)
        i_im, i_ref = _mutual_nearest(imxy[im_keep] + offset, refxy[ref_keep], self.tolerance)
        log.info("%d one-to-one matches within tolerance=%g %s (%d image, %d reference sources)",
                 len(i_im), self.tolerance, units, len(im_keep), len(ref_keep))
        return ref_keep[i_ref], im_keep[i_im]


# --------------------------------------------------------------------------------------
# alignment


def _corrector_class():
    from tweakwcs import correctors

    # The Roman corrector is the JWST one under another name (both V2V3 tangent plane).
    return getattr(correctors, "RomanWCSCorrector", correctors.JWSTWCSCorrector)


def _clean_fit(info: Mapping | None) -> dict:
    if not info:
        return {"status": "FAILED: no fit"}
    out = {}
    for key in _FIT_KEYS:
        if key not in info:
            continue
        v = info[key]
        if isinstance(v, np.ndarray):
            v = np.array(v, dtype=float)
        elif isinstance(v, tuple):
            v = tuple(float(t) for t in v)
        elif isinstance(v, (np.bool_, bool)):
            v = bool(v)
        elif isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating,)):
            v = float(v)
        out[key] = v
    return out


def _check_params(prefix: str, minobj, searchrad, separation, tolerance, fitgeometry, nclip, sigma):
    if isinstance(minobj, bool) or not isinstance(minobj, (int, np.integer)) or minobj < 1:
        raise ParameterError(f"{prefix}minobj must be an integer >= 1, got {minobj!r}")
    for name, val in (("searchrad", searchrad), ("tolerance", tolerance)):
        if not np.isfinite(val) or val <= 0:
            raise ParameterError(f"{prefix}{name} must be a finite number > 0 (arcsec), got {val!r}")
    if not np.isfinite(separation) or separation < 0:
        raise ParameterError(f"{prefix}separation must be a finite number >= 0 (arcsec), got {separation!r}")
    if fitgeometry not in FIT_GEOMETRIES:
        raise ParameterError(f"{prefix}fitgeometry must be one of {FIT_GEOMETRIES}, got {fitgeometry!r}")
    if isinstance(nclip, bool) or not isinstance(nclip, (int, np.integer)) or nclip < 0:
        raise ParameterError(f"{prefix}nclip must be an integer >= 0, got {nclip!r}")
    if not np.isfinite(sigma) or sigma <= 0:
        raise ParameterError(f"{prefix}sigma must be a finite number > 0, got {sigma!r}")


def _run_align(correctors, refcat, *, minobj, searchrad, use2dhist, separation, tolerance,
               fitgeometry, nclip, sigma, enforce_user_order, expand_refcat):
    from tweakwcs import align_wcs

    match = TangentPlaneMatch(searchrad=searchrad, separation=separation, use2dhist=use2dhist,
                              tolerance=tolerance)
    try:
        align_wcs(
            correctors, refcat=refcat, enforce_user_order=enforce_user_order,
            expand_refcat=expand_refcat, minobj=minobj, match=match, fitgeom=fitgeometry,
            nclip=nclip, sigma=(sigma, "rmse"), clip_accum=True,
        )
    except Exception as exc:  # tweakwcs signals 'cannot align' with several exception types
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("alignment failed: %s", reason)
        for c in correctors:
            info = c.meta.get("fit_info") or {}
            if not str(info.get("status", "")).startswith(("SUCCESS", "REFERENCE")):
                c.meta["fit_info"] = {"status": f"FAILED: {reason}"}


def align_images(
    images: Sequence[AlignInput],
    refcat: Table | str | os.PathLike | None = None,
    *,
    minobj: int = 15,
    searchrad: float = 2.0,
    use2dhist: bool = True,
    separation: float = 1.0,
    tolerance: float = 0.7,
    fitgeometry: str = "rshift",
    nclip: int = 3,
    sigma: float = 3.0,
    enforce_user_order: bool = False,
    expand_refcat: bool = False,
    abs_minobj: int = 15,
    abs_searchrad: float = 6.0,
    abs_use2dhist: bool = True,
    abs_separation: float = 0.1,
    abs_tolerance: float = 0.7,
    abs_fitgeometry: str = "rshift",
    abs_nclip: int = 3,
    abs_sigma: float = 3.0,
    refcat_format: str | None = None,
) -> TweakregResult:
    """Align the WCS of several images to each other and to a reference catalog.

    Parameters
    ----------
    images : sequence of AlignInput
    refcat : Table, path or None
        Absolute reference catalog (see :func:`load_reference_catalog`); None skips the
        absolute step (then a single group cannot be aligned and is SKIPPED).
    minobj, searchrad, use2dhist, separation, tolerance, fitgeometry, nclip, sigma
        Relative alignment: minimum number of matches, search radius (arcsec), 2-D
        histogram initial offset, minimum source separation (arcsec), matching tolerance
        (arcsec), fit geometry (``shift``, ``rshift``, ``rscale``, ``general``), clipping
        iterations and clipping limit (in units of the fit RMSE).  Seed defaults.
    enforce_user_order, expand_refcat
        Relative step: align in the given order / add aligned sources to the reference.
    abs_minobj, ..., abs_sigma
        The same for the absolute step (seed defaults).
    refcat_format : str, optional
        astropy format of the ``refcat`` file if not guessed from its extension.

    Returns
    -------
    TweakregResult
        Per image (input order): the corrected WCS and ``meta.wcs_fit_results``.  An image
        whose WCS has no ``v2v3`` frame, whose catalog is empty, or (with a reference
        catalog) has fewer than ``abs_minobj`` sources, is SKIPPED with the reason; the
        others are still aligned.
    """
    images = list(images)
    if not images:
        raise ParameterError("images must contain at least one AlignInput, got none")
    _check_params("", minobj, searchrad, separation, tolerance, fitgeometry, nclip, sigma)
    _check_params("abs_", abs_minobj, abs_searchrad, abs_separation, abs_tolerance,
                  abs_fitgeometry, abs_nclip, abs_sigma)
    ref_table = None if refcat is None else load_reference_catalog(refcat, format=refcat_format)

    corrector_cls = _corrector_class()
    results: list[AlignResult] = []
    correctors: list[Any] = []
    index_of: list[int] = []
    min_needed = abs_minobj if ref_table is not None else minobj
    for k, im in enumerate(images):
        if not isinstance(im, AlignInput):
            raise ParameterError(f"images[{k}] must be an AlignInput, got {type(im).__name__}")
        name = im.name or f"image{k}"
        frames = list(getattr(im.wcs, "available_frames", []) or [])
        if "v2v3" not in frames:
            results.append(AlignResult(name, deepcopy(im.wcs),
                                       f"SKIPPED: WCS has no v2v3 frame (frames {frames})",
                                       {"status": "SKIPPED: WCS has no v2v3 frame"}))
            continue
        for key in ("v2_ref", "v3_ref", "roll_ref"):
            val = im.wcsinfo.get(key) if isinstance(im.wcsinfo, Mapping) else None
            if val is None or not np.isfinite(val) or val == -999999:
                raise ParameterError(f"images[{k}] ({name}): wcsinfo[{key!r}] must be a finite value, got {val!r}")
        cat = prepare_catalog(im.catalog, wcs=im.wcs, shape=im.shape)
        if len(cat) < min_needed:
            reason = f"catalog has {len(cat)} usable sources, fewer than {'abs_' if ref_table is not None else ''}minobj={min_needed}"
            log.warning("%s: %s", name, reason)
            results.append(AlignResult(name, deepcopy(im.wcs), f"SKIPPED: {reason}",
                                       {"status": f"SKIPPED: {reason}"}, n_sources=len(cat)))
            continue
        wcsinfo = {key: float(im.wcsinfo[key]) for key in ("v2_ref", "v3_ref", "roll_ref")}
        gid = im.group_id if im.group_id is not None else f"__image_{k}"
        corr = corrector_cls(deepcopy(im.wcs), wcsinfo,
                             meta={"catalog": cat, "name": name, "group_id": gid, "image_index": k})
        correctors.append(corr)
        index_of.append(k)
        results.append(AlignResult(name, None, "PENDING", n_sources=len(cat)))

    relative_info: dict[int, dict] = {}
    groups = {c.meta["group_id"] for c in correctors}
    if len(groups) > 1:
        _run_align(correctors, None, minobj=minobj, searchrad=searchrad, use2dhist=use2dhist,
                   separation=separation, tolerance=tolerance, fitgeometry=fitgeometry,
                   nclip=nclip, sigma=sigma, enforce_user_order=enforce_user_order,
                   expand_refcat=expand_refcat)
        for c in correctors:
            relative_info[id(c)] = _clean_fit(c.meta.get("fit_info"))
    elif ref_table is None and correctors:
        for c in correctors:
            c.meta["fit_info"] = {"status": "SKIPPED: a single exposure group and no reference catalog"}

    if ref_table is not None and correctors:
        for c in correctors:
            c.meta["group_id"] = ABSOLUTE_GROUP_ID
            c.meta.pop("fit_info", None)
        footprints = [_sky_footprint(images[k].wcs, images[k].shape) for k in index_of]
        local = ref_table
        if all(fp is not None for fp in footprints):
            margin = abs_searchrad + abs_tolerance
            keep = footprint_filter(ref_table["RA"], ref_table["DEC"], footprints, margin)
            local = ref_table[keep]
            log.info("reference catalog: %d of %d sources within %.3g arcsec of the image footprints",
                     len(local), len(ref_table), margin)
        if len(local) == 0:
            reason = "FAILED: no reference catalog source on or near the images"
            log.warning("%s", reason)
            for c in correctors:
                c.meta["fit_info"] = {"status": reason}
        else:
            _run_align(correctors, local, minobj=abs_minobj, searchrad=abs_searchrad,
                       use2dhist=abs_use2dhist, separation=abs_separation, tolerance=abs_tolerance,
                       fitgeometry=abs_fitgeometry, nclip=abs_nclip, sigma=abs_sigma,
                       enforce_user_order=False, expand_refcat=False)

    by_index = dict(zip(index_of, correctors, strict=True))
    for k, res in enumerate(results):
        c = by_index.get(k)
        if c is None:
            continue
        fit = _clean_fit(c.meta.get("fit_info"))
        res.fit_results = fit
        res.status = str(fit.get("status", "FAILED: no fit"))
        res.relative_fit_results = relative_info.get(id(c))
        res.wcs = c.wcs
        log.info("%s: %s (rmse %s arcsec, %s matches)", res.name, res.status,
                 fit.get("rmse"), fit.get("nmatches"))
    return TweakregResult(results, ref_table)
