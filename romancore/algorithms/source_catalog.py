"""Source detection, segmentation and photometry of WFI images (ALGORITHMS.md §9.1).

The algorithm, in order:

1. Bad pixels are ``~finite(data) | ~finite(err) | err <= 0``, plus ``DO_NOT_USE`` in
   ``dq`` (L2) or ``weight <= 0`` (L3).
2. A 2-D background is measured with ``photutils.background.Background2D`` (box
   ``bkg_boxsize``, 3x3 median filter, 3-sigma clipping with a MAD standard deviation,
   median estimator); if the image is too small or too masked for that, one box covering
   the whole image is used instead.  The background is subtracted.  Its box mesh is
   resized to the image as photutils does (cubic spline, ``grid_mode``, clipped to the
   mesh range), but as two 1-D passes in row blocks (:func:`_mesh_to_image`).
3. The detection image is the background-subtracted image convolved with a normalised
   2-D Gaussian of FWHM ``kernel_fwhm`` pixels and odd size ``ceil(3 fwhm)``,
   normalised over the unmasked pixels (separable: Cython kernel ``masked_conv``).
4. Sources are the 8-connected groups of at least ``npixels`` pixels of the detection
   image above ``snr_threshold`` times the 2-D background RMS, optionally deblended
   (``deblend``, ``deblend_nlevels``, ``deblend_contrast``).
5. Each segment is measured (``photutils.segmentation.SourceCatalog``) and circular
   apertures of 0.1, 0.2, 0.4, 0.8 and 1.6 arcsec radius are placed at the windowed
   centroid, with a local background from a sigma-clipped median in a 2.4-2.8 arcsec
   annulus subtracted (the sums and clipped statistics of photutils' ``ApertureStats``,
   computed without its masked arrays: :func:`_aperture_sums`,
   :func:`_annulus_clipped_stats`).

Units (kept explicit):

* inputs in ``DN/s`` (L2, ``data_unit="DN/s"``) need ``photmjsr``, the conversion in
  MJy/sr per DN/s (``meta.photometry.conversion_megajanskys``);
* inputs in ``MJy/sr`` (L2 after the flux step, L3) need no conversion;
* the flux of one pixel in nJy is ``value[MJy/sr] * pixel_area[sr] * 1e15``;
* every ``*_flux`` / ``*_flux_err`` column is in nJy, ``aper_bkg_flux(_err)`` in
  nJy/arcsec^2, ``kron_abmag`` in AB magnitudes (``31.4 - 2.5 log10(flux/nJy)``), lengths in
  arcsec, areas in arcsec^2, ``cxx/cxy/cyy`` in arcsec^-2, angles in degrees, pixel
  positions 0-based.

This module works on numpy arrays, a pixel->sky callable (a ``gwcs.WCS`` or any function
``(x, y) -> (ra_deg, dec_deg)``) and plain values: no data models and no files.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.stats import SigmaClip, gaussian_fwhm_to_sigma
from astropy.table import Column, Table
from scipy.spatial import cKDTree

from romancore.dq import pixel as pixel_flags
from romancore.errors import ParameterError, RomancoreError

log = logging.getLogger(__name__)

__all__ = [
    "APERTURE_RADII_ARCSEC",
    "ANNULUS_ARCSEC",
    "AB_ZEROPOINT_NJY",
    "SourceCatalogResult",
    "catalog_columns",
    "empty_catalog",
    "make_source_catalog",
    "pixel_area_from_wcs",
    "tweakreg_catalog",
    "update_sky_coordinates",
]

APERTURE_RADII_ARCSEC = (0.1, 0.2, 0.4, 0.8, 1.6)
ANNULUS_ARCSEC = (2.4, 2.8)
AB_ZEROPOINT_NJY = 31.4  # AB magnitude of a 1 nJy source: -2.5 log10(1e-9 / 3631)

_RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0
_NJY_PER_MJY = 1e15
_DNU = int(pixel_flags.DO_NOT_USE)


def _aper_name(radius_arcsec: float) -> str:
    return f"aper{int(round(radius_arcsec * 10)):02d}"


def catalog_columns(aperture_radii=APERTURE_RADII_ARCSEC) -> list[tuple[str, str, str | None]]:
    """Return the catalog columns in order as ``(name, numpy dtype, unit)`` triples."""
    f8, i4, u4 = "float64", "int32", "uint32"
    cols: list[tuple[str, str, str | None]] = [
        ("label", u4, None),
        ("flagged_spatial_id", i4, None),
        ("x_centroid", f8, "pix"),
        ("y_centroid", f8, "pix"),
        ("x_centroid_err", f8, "pix"),
        ("y_centroid_err", f8, "pix"),
        ("x_centroid_win", f8, "pix"),
        ("y_centroid_win", f8, "pix"),
        ("x_centroid_win_err", f8, "pix"),
        ("y_centroid_win_err", f8, "pix"),
        ("ra", f8, "deg"),
        ("dec", f8, "deg"),
        ("ra_centroid", f8, "deg"),
        ("dec_centroid", f8, "deg"),
        ("ra_centroid_err", f8, "arcsec"),
        ("dec_centroid_err", f8, "arcsec"),
        ("ra_centroid_win", f8, "deg"),
        ("dec_centroid_win", f8, "deg"),
        ("ra_centroid_win_err", f8, "arcsec"),
        ("dec_centroid_win_err", f8, "arcsec"),
        ("bbox_xmin", i4, "pix"),
        ("bbox_xmax", i4, "pix"),
        ("bbox_ymin", i4, "pix"),
        ("bbox_ymax", i4, "pix"),
        ("segment_area", f8, "arcsec2"),
        ("semimajor", f8, "arcsec"),
        ("semiminor", f8, "arcsec"),
        ("fwhm", f8, "arcsec"),
        ("ellipticity", f8, None),
        ("orientation_pix", f8, "deg"),
        ("orientation_sky", f8, "deg"),
        ("cxx", f8, "arcsec-2"),
        ("cxy", f8, "arcsec-2"),
        ("cyy", f8, "arcsec-2"),
        ("kron_radius", f8, "arcsec"),
        ("nn_label", i4, None),
        ("nn_distance", f8, "arcsec"),
        ("sharpness", f8, None),
        ("roundness1", f8, None),
        ("is_extended", "bool", None),
        ("fluxfrac_radius_50", f8, "arcsec"),
        ("aper_bkg_flux", f8, "nJy/arcsec2"),
        ("aper_bkg_flux_err", f8, "nJy/arcsec2"),
    ]
    for r in aperture_radii:
        name = _aper_name(r)
        cols += [(f"{name}_flux", f8, "nJy"), (f"{name}_flux_err", f8, "nJy")]
    cols += [
        ("segment_flux", f8, "nJy"),
        ("segment_flux_err", f8, "nJy"),
        ("kron_flux", f8, "nJy"),
        ("kron_flux_err", f8, "nJy"),
        ("kron_abmag", f8, "mag"),
        ("kron_abmag_err", f8, "mag"),
        ("warning_flags", u4, None),
        ("image_flags", u4, None),
        ("dust_ebv", f8, "mag"),
    ]
    return cols


def _build_table(values: dict[str, np.ndarray], aperture_radii) -> Table:
    table = Table()
    for name, dtype, unit in catalog_columns(aperture_radii):
        table[name] = Column(np.asarray(values[name]).astype(dtype, copy=False), unit=unit)
    return table


def empty_catalog(aperture_radii=APERTURE_RADII_ARCSEC) -> Table:
    """Return a zero-row catalog with every column, dtype and unit."""
    return _build_table(
        {name: np.zeros(0, dtype) for name, dtype, _ in catalog_columns(aperture_radii)},
        aperture_radii,
    )


@dataclass
class SourceCatalogResult:
    """What :func:`make_source_catalog` returns.

    Attributes
    ----------
    catalog : astropy.table.Table
        One row per source, columns of :func:`catalog_columns` (units in the column ``unit``).
    segmentation : ndarray of uint32
        Segmentation map: 0 = background, k = pixels of the source with ``label`` k.
    detection_image : ndarray of float32
        The background-subtracted, kernel-convolved image used for detection (input units).
    meta : dict
        Plain values describing the run (see :func:`make_source_catalog`).
    """

    catalog: Table
    segmentation: np.ndarray
    detection_image: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# validation helpers


def _check_image(name: str, arr, shape=None) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ParameterError(f"{name} must have the shape of data {shape}, got {a.shape}")
    if a.size == 0:
        raise ParameterError(f"{name} must not be empty, got shape {a.shape}")
    return a


def _check_positive(name: str, value, *, integer=False, allow_zero=False) -> float:
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(
        value, (int, float, np.integer, np.floating)
    )
    if isinstance(value, bool) or not ok_type or not np.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ParameterError(f"{name} must be {kind}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be {rule}, got {value!r}")
    return value


def _sky(wcs, x, y):
    ra, dec = wcs(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(ra, float), np.asarray(dec, float)


def pixel_area_from_wcs(wcs: Callable, x: float, y: float, *, step: float = 0.5) -> float:
    """Solid angle (sr) of one pixel at ``(x, y)`` from a pixel->sky callable (degrees).

    The local Jacobian is taken with central differences of ``step`` pixels in the
    tangent plane at the point.
    """
    xs = np.array([x - step, x + step, x, x, x])
    ys = np.array([y, y, y - step, y + step, y])
    ra, dec = _sky(wcs, xs, ys)
    if not np.all(np.isfinite(ra) & np.isfinite(dec)):
        raise ParameterError(
            f"wcs gives non-finite sky coordinates near pixel ({x}, {y}); "
            "cannot derive the pixel area: give pixel_area"
        )
    ra0, dec0 = np.deg2rad(ra[4]), np.deg2rad(dec[4])
    r, d = np.deg2rad(ra), np.deg2rad(dec)
    # gnomonic projection about the point
    cosc = np.sin(dec0) * np.sin(d) + np.cos(dec0) * np.cos(d) * np.cos(r - ra0)
    xi = np.cos(d) * np.sin(r - ra0) / cosc
    eta = (np.cos(dec0) * np.sin(d) - np.sin(dec0) * np.cos(d) * np.cos(r - ra0)) / cosc
    dxi_dx, deta_dx = (xi[1] - xi[0]) / (2 * step), (eta[1] - eta[0]) / (2 * step)
    dxi_dy, deta_dy = (xi[3] - xi[2]) / (2 * step), (eta[3] - eta[2]) / (2 * step)
    return float(abs(dxi_dx * deta_dy - dxi_dy * deta_dx))


# --------------------------------------------------------------------------------------
# the pieces of the algorithm


def _num_threads(num_threads) -> int:
    """Threads for the row-block work (None: ``OMP_NUM_THREADS`` if set, else the CPU count)."""
    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        num_threads = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ParameterError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    return int(num_threads)


def _row_blocks(n: int, block: int) -> list[tuple[int, int]]:
    return [(r0, min(r0 + block, n)) for r0 in range(0, n, block)]


def _run_blocks(func, blocks, num_threads: int) -> None:
    """Call ``func(r0, r1)`` for every block; on threads when there are several.

    ``func`` writes its own rows of a preallocated output, so blocks are independent;
    numpy releases the GIL in the large array operations.
    """
    if num_threads <= 1 or len(blocks) <= 1:
        for r0, r1 in blocks:
            func(r0, r1)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(num_threads, len(blocks))) as pool:
        for fut in [pool.submit(func, r0, r1) for r0, r1 in blocks]:
            fut.result()


def _zoom_operator(n_mesh: int, box: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_mesh)`` matrix of photutils' mesh -> image resize along one axis.

    Background2D resizes its mesh with ``scipy.ndimage.zoom`` (cubic spline, ``grid_mode``,
    ``mode='reflect'``) by the integer factor ``box`` and crops to the image.  That map is
    linear and the 2-D spline is a tensor product, so the 1-D operator is the zoom of each
    unit vector, and the image is ``Wy @ mesh @ Wx.T``.
    """
    from scipy.ndimage import zoom

    eye = np.eye(n_mesh)
    cols = [zoom(eye[k], box, order=3, mode="reflect", grid_mode=True)[:n_out] for k in range(n_mesh)]
    return np.ascontiguousarray(np.stack(cols, axis=1))


def _mesh_to_image(mesh, box_size, shape, coverage_mask, fill_value, out, num_threads=1, block=512):
    """Full-size image (float32, into ``out``) of a Background2D mesh.

    Same as photutils' ``Background2D.background``/``background_rms`` (zoom, crop, clip to
    the mesh range, coverage mask set to ``fill_value``) to float32 rounding, computed as
    two 1-D spline passes in row blocks instead of one 2-D zoom of the padded grid.
    """
    mesh = np.asarray(mesh, dtype=np.float64)
    ny, nx = shape
    lo, hi = float(np.min(mesh)), float(np.max(mesh))
    if hi - lo == 0:
        out[...] = np.float32(lo)
    else:
        wy = _zoom_operator(mesh.shape[0], int(box_size[0]), ny)
        wx = _zoom_operator(mesh.shape[1], int(box_size[1]), nx)
        tmp = mesh @ wx.T  # (n_mesh_y, nx)

        def rows(r0, r1):
            blk = wy[r0:r1] @ tmp
            np.clip(blk, lo, hi, out=blk)
            out[r0:r1] = blk

        _run_blocks(rows, _row_blocks(ny, block), num_threads)
    if coverage_mask is not None:
        out[coverage_mask] = fill_value
    return out


def _background(data, mask, boxsize, num_threads=1):
    """2-D background and background RMS (float32 images) of ``data`` (step 2)."""
    from photutils.background import Background2D, MedianBackground

    clip = SigmaClip(sigma=3.0, stdfunc="mad_std")
    ny, nx = data.shape
    box = (min(boxsize, ny), min(boxsize, nx))
    try:
        bkg = Background2D(
            data, box, coverage_mask=mask, filter_size=(3, 3), sigma_clip=clip,
            bkg_estimator=MedianBackground(),
        )
    except ValueError as exc:
        log.info("Background2D with box %s failed (%s); using one box of the full image", box, exc)
        bkg = Background2D(
            data, (ny, nx), coverage_mask=mask, filter_size=(1, 1), sigma_clip=clip,
            bkg_estimator=MedianBackground(), exclude_percentile=100.0,
        )
    images = []
    for mesh in (bkg.background_mesh, bkg.background_rms_mesh):
        out = np.empty((ny, nx), np.float32)
        images.append(_mesh_to_image(mesh, bkg.box_size, (ny, nx), mask, bkg.fill_value, out, num_threads))
    return images[0], images[1]


def _detection_kernel(fwhm: float):
    from photutils.segmentation import make_2dgaussian_kernel

    size = int(math.ceil(3.0 * fwhm))
    if size % 2 == 0:
        size += 1
    kernel = make_2dgaussian_kernel(fwhm, size=size)
    kernel.normalize()
    return kernel


def _daofind_kernel(fwhm: float):
    """Zero-sum DAOFIND kernel (Stetson 1987) inside a circular footprint."""
    sigma = fwhm * gaussian_fwhm_to_sigma
    half = int(max(2.0, 1.5 * sigma))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    footprint = (xx**2 + yy**2) <= half**2 + 0.5
    g = np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2))
    npix = footprint.sum()
    gsum, g2sum = g[footprint].sum(), (g[footprint] ** 2).sum()
    kern = np.where(footprint, (g - gsum / npix) / (g2sum - gsum**2 / npix), 0.0)
    return kern, footprint, half


def _gather(image, yi, xi, half, fill=np.nan, dtype=None):
    """Cut ``(2 half + 1)^2`` stamps centred on integer pixels; outside = ``fill``."""
    ny, nx = image.shape
    off = np.arange(-half, half + 1)
    shape = (len(yi), len(off), len(off))
    yy = np.broadcast_to(yi[:, None, None] + off[None, :, None], shape)
    xx = np.broadcast_to(xi[:, None, None] + off[None, None, :], shape)
    inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    out = np.full(yy.shape, fill, dtype=dtype)
    out[inside] = image[yy[inside], xx[inside]]
    return out


def _local_convolve(big, kern):
    """Stamps ``(2 half + 1)^2`` of ``convolve(image, kern)`` from cut-outs ``big``.

    ``big`` holds ``(2 (half + k) + 1)^2`` cut-outs of the image (k = kernel half size),
    zero where the image is undefined or outside: the same values as
    ``scipy.ndimage.convolve(image, kern, mode='constant', cval=0)`` at the stamp pixels,
    computed in float64 and rounded to the dtype of ``big`` as scipy.ndimage does.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    k = np.asarray(kern, np.float64)
    win = sliding_window_view(big, k.shape, axis=(1, 2))
    # a convolution pairs window offset p with kernel index (size - 1 - p)
    conv = np.einsum("kabpq,pq->kab", win, k[::-1, ::-1])
    return conv.astype(big.dtype)


def _daofind_shape(data, x, y, fwhm, mask=None):
    """DAOFIND sharpness and roundness1 at integer pixel positions nearest (x, y).

    Pixels of ``mask`` and non-finite pixels count as 0.  Only stamps around the
    positions are read: the DAOFIND-convolved image is not made in full.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    kern, footprint, half = _daofind_kernel(fwhm)
    kh = kern.shape[0] // 2
    ok = np.isfinite(x) & np.isfinite(y)
    xi = np.where(ok, np.rint(np.where(ok, x, 0)), 0).astype(np.intp)
    yi = np.where(ok, np.rint(np.where(ok, y, 0)), 0).astype(np.intp)
    big = _gather(data, yi, xi, half + kh, fill=0, dtype=data.dtype)
    bad = ~np.isfinite(big)
    if mask is not None:
        bad |= _gather(mask, yi, xi, half + kh, fill=False, dtype=bool)
    big[bad] = 0
    inner = (slice(None), slice(kh, kh + 2 * half + 1), slice(kh, kh + 2 * half + 1))
    ny, nx = data.shape
    off = np.arange(-half, half + 1)
    inside = (((yi[:, None] + off) >= 0) & ((yi[:, None] + off) < ny))[:, :, None] & (
        ((xi[:, None] + off) >= 0) & ((xi[:, None] + off) < nx))[:, None, :]
    dstamp = np.where(inside, big[inner], np.nan).astype(np.float64)
    cstamp = np.where(inside, _local_convolve(big, kern), np.nan).astype(np.float64)
    ring = footprint.copy()
    ring[half, half] = False
    with np.errstate(invalid="ignore", divide="ignore"):
        # sharpness: (central pixel - mean of its footprint neighbours) / convolved peak
        peak = dstamp[:, half, half]
        neigh = np.nanmean(np.where(ring, dstamp, np.nan), axis=(1, 2))
        sharp = (peak - neigh) / cstamp[:, half, half]
        # roundness1: 4-fold symmetry of the convolved stamp (quadrants, axes split)
        c = np.where(footprint, cstamp, 0.0)
        q1 = np.nansum(c[:, : half + 1, half + 1 :], axis=(1, 2))
        q2 = np.nansum(c[:, :half, : half + 1], axis=(1, 2))
        q3 = np.nansum(c[:, half:, :half], axis=(1, 2))
        q4 = np.nansum(c[:, half + 1 :, half:], axis=(1, 2))
        s4 = np.nansum(np.abs(c), axis=(1, 2))
        round1 = 2.0 * (-q1 + q2 - q3 + q4) / s4
    sharp[~ok] = np.nan
    round1[~ok] = np.nan
    return sharp, round1


def _aperture_stamp(am, data, mask):
    """``(slices, weights, float64 data, bad, keep)`` of an aperture mask on the image, or
    None when it lies off the image; ``bad`` = non-finite or masked, ``keep`` = weighted
    and not bad."""
    big, small = am.get_overlap_slices(data.shape)
    if big is None:
        return None
    w = am.data[small]
    d = data[big].astype(np.float64)
    bad = ~np.isfinite(d) | mask[big]
    return big, w, d, bad, (w != 0) & ~bad


def _aperture_sums(data, err, mask, aperture):
    """Exact-overlap aperture ``sum``, ``sum_err`` and unmasked area for each position.

    The values of photutils' ``ApertureStats(data, aperture, error=err, mask=mask,
    sum_method="exact")`` (``sum``, ``sum_err``, ``sum_aper_area``), summed in the same
    order, without its masked-array machinery.  Non-finite ``data`` counts as masked;
    apertures off the image give NaN, and the area is NaN when no pixel centre inside
    the aperture is unmasked.
    """
    masks = aperture.to_mask(method="exact")
    n = len(masks)
    total, total_err, area = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for k, am in enumerate(masks):
        stamp = _aperture_stamp(am, data, mask)
        if stamp is None:
            continue
        big, w, d, bad, keep = stamp
        if keep.any():
            total[k] = np.sum((d * w)[keep])
            total_err[k] = np.sqrt(np.sum((err[big] ** 2 * w)[keep]))
        area[k] = np.sum(np.where(keep, w, 0.0))
        # photutils sets the area to NaN when every pixel *centre* in the aperture is
        # masked; an exact weight > 1/2 implies the centre is inside the (convex) aperture
        if not (keep & (w > 0.5)).any():
            cm = aperture[k].to_mask(method="center")
            cbig, csmall = cm.get_overlap_slices(data.shape)
            if cbig is None or not ((cm.data[csmall] != 0) & ~bad).any():
                area[k] = np.nan
    return total, total_err, area


def _annulus_clipped_stats(data, mask, aperture, sigma_clip):
    """Sigma-clipped median, standard deviation and pixel count in each aperture.

    The values of photutils' ``ApertureStats(data, aperture, mask=mask,
    sigma_clip=sigma_clip, sum_method="center")`` (``median``, ``std``,
    ``sum_aper_area``): the unmasked pixels whose centres are inside, clipped by
    ``sigma_clip`` (astropy ``SigmaClip``), in the same order.  NaN when nothing is left.
    """
    masks = aperture.to_mask(method="center")
    n = len(masks)
    med, std, area = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for k, am in enumerate(masks):
        stamp = _aperture_stamp(am, data, mask)
        if stamp is None:
            continue
        big, w, d, bad, keep = stamp
        if not keep.any():
            continue
        _, lo, hi = sigma_clip(d[keep], masked=False, return_bounds=True)
        with np.errstate(invalid="ignore"):
            keep &= (d >= lo) & (d <= hi)
        if not keep.any():
            continue
        vals = (d * w)[keep]
        med[k] = np.median(vals)
        std[k] = np.std(vals)
        area[k] = np.sum(np.where(keep, w, 0.0))
    return med, std, area


def _moment_centroid_errors(segm, data, err, mask, labels):
    """Errors of first-moment centroids from the per-pixel errors of each segment."""
    flat = segm.ravel()
    idx = np.flatnonzero(flat)  # segment pixels only: a small part of a large image
    idx = idx[~mask.ravel()[idx]]
    lab = flat[idx]
    d = data.ravel()[idx]
    e2 = err.ravel()[idx] ** 2
    ny, nx = segm.shape
    yy, xx = np.divmod(idx, nx)
    nmax = int(segm.max()) + 1
    f = np.bincount(lab, d, nmax)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.bincount(lab, d * xx, nmax) / f
        yc = np.bincount(lab, d * yy, nmax) / f
        vx = np.bincount(lab, e2 * (xx - xc[lab]) ** 2, nmax) / f**2
        vy = np.bincount(lab, e2 * (yy - yc[lab]) ** 2, nmax) / f**2
    sx, sy = np.sqrt(vx[labels]), np.sqrt(vy[labels])
    sx[~np.isfinite(sx)] = np.nan
    sy[~np.isfinite(sy)] = np.nan
    return sx, sy


def _sky_errors(wcs, x, y, sx, sy):
    """Propagate pixel centroid errors to RA (times cos dec) and Dec errors in arcsec."""
    h = 0.5
    ra, dec = _sky(wcs, x, y)
    rx1, dx1 = _sky(wcs, x + h, y)
    rx0, dx0 = _sky(wcs, x - h, y)
    ry1, dy1 = _sky(wcs, x, y + h)
    ry0, dy0 = _sky(wcs, x, y - h)
    cosd = np.cos(np.deg2rad(dec))

    def _dra(a, b):
        return ((a - b + 180.0) % 360.0 - 180.0) * cosd * 3600.0 / (2 * h)

    dra_dx, dra_dy = _dra(rx1, rx0), _dra(ry1, ry0)
    ddec_dx, ddec_dy = (dx1 - dx0) * 3600.0 / (2 * h), (dy1 - dy0) * 3600.0 / (2 * h)
    ra_err = np.sqrt((dra_dx * sx) ** 2 + (dra_dy * sy) ** 2)
    dec_err = np.sqrt((ddec_dx * sx) ** 2 + (ddec_dy * sy) ** 2)
    return ra_err, dec_err


def _position_angle(ra0, dec0, ra1, dec1):
    """Position angle (deg, east of north) of point 1 seen from point 0."""
    r0, d0, r1, d1 = map(np.deg2rad, (ra0, dec0, ra1, dec1))
    dra = r1 - r0
    pa = np.arctan2(np.sin(dra), np.cos(d0) * np.tan(d1) - np.sin(d0) * np.cos(dra))
    return np.rad2deg(pa)


def _orientation_sky(wcs, x, y, orientation_pix_deg):
    """Major-axis position angle on the sky, degrees east of north in [0, 180)."""
    th = np.deg2rad(orientation_pix_deg)
    ra0, dec0 = _sky(wcs, x, y)
    ra1, dec1 = _sky(wcs, x + 0.5 * np.cos(th), y + 0.5 * np.sin(th))
    return np.mod(_position_angle(ra0, dec0, ra1, dec1), 180.0)


def _pixel_values(arr, x, y, fill):
    ny, nx = arr.shape
    ok = np.isfinite(x) & np.isfinite(y)
    xi = np.rint(np.where(ok, x, -1)).astype(np.intp)
    yi = np.rint(np.where(ok, y, -1)).astype(np.intp)
    ok &= (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
    out = np.full(len(x), fill, dtype=np.result_type(arr.dtype, np.asarray(fill).dtype))
    out[ok] = arr[yi[ok], xi[ok]]
    return out, ok


def _abmag(flux_njy, flux_err_njy):
    with np.errstate(invalid="ignore", divide="ignore"):
        good = flux_njy > 0
        mag = np.where(good, AB_ZEROPOINT_NJY - 2.5 * np.log10(np.where(good, flux_njy, 1.0)), np.nan)
        mag_err = np.where(
            good, 2.5 * np.log10(1.0 + flux_err_njy / np.where(good, flux_njy, 1.0)), np.nan
        )
    return mag, mag_err


def _separable_factors(kernel: np.ndarray):
    """``(ky, kx)`` with ``outer(ky, kx) == kernel`` (to 1e-12 of its peak), else None."""
    k = np.asarray(kernel, dtype=np.float64)
    total = k.sum()
    if k.ndim != 2 or total == 0:
        return None
    ky, kx = k.sum(axis=1) / total, k.sum(axis=0)
    if np.abs(np.outer(ky, kx) - k).max() > 1e-12 * np.abs(k).max():
        return None
    return ky, kx


def _masked_convolve(data: np.ndarray, kernel: np.ndarray, mask: np.ndarray, num_threads: int = 1,
                     block: int = 64) -> np.ndarray:
    """Convolution normalised over unmasked pixels (0 at masked pixels), in float32.

    ``conv(data·w) / conv(w)`` with w = 1 on good pixels and zero outside the image: the
    same result as astropy's ``convolve(..., mask=mask, normalize_kernel=True,
    boundary='fill', fill_value=0)`` for a normalised kernel, at a fraction of its memory
    and time.  A separable kernel (the Gaussian) goes to the Cython kernel
    ``masked_conv.masked_separable_correlate`` (two 1-D passes in float64 on blocks of
    ``block`` rows, on ``num_threads`` threads); other kernels to two 2-D scipy passes.
    """
    factors = _separable_factors(kernel)
    if factors is not None:
        from romancore._ext.masked_conv import masked_separable_correlate

        # convolution = correlation with the reversed 1-D factors
        ky = np.ascontiguousarray(factors[0][::-1], dtype=np.float64)
        kx = np.ascontiguousarray(factors[1][::-1], dtype=np.float64)
        return masked_separable_correlate(
            np.ascontiguousarray(data, dtype=np.float32), np.ascontiguousarray(mask, dtype=bool).view(np.uint8),
            ky, kx, block=block, num_threads=num_threads,
        )
    from scipy.ndimage import correlate

    kern = (kernel / kernel.sum())[::-1, ::-1]
    good = (~mask).astype(np.float32)
    out = correlate(np.where(mask, 0.0, data).astype(np.float32), kern, mode="constant", cval=0.0)
    den = correlate(good, kern, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(out, den, out=out)
    out[mask | ~np.isfinite(out)] = 0.0
    return out


# --------------------------------------------------------------------------------------
# public API


def make_source_catalog(
    data,
    err,
    *,
    dq=None,
    weight=None,
    wcs: Callable | None = None,
    data_unit: str = "DN/s",
    photmjsr: float | None = None,
    pixel_area: float | None = None,
    bkg_boxsize: int = 1000,
    kernel_fwhm: float = 2.0,
    snr_threshold: float = 3.0,
    npixels: int = 25,
    deblend: bool = False,
    deblend_nlevels: int = 32,
    deblend_contrast: float = 1e-4,
    psf_fwhm: float | None = None,
    extended_factor: float = 1.5,
    aperture_radii_arcsec=APERTURE_RADII_ARCSEC,
    annulus_arcsec=ANNULUS_ARCSEC,
    num_threads: int | None = None,
) -> SourceCatalogResult:
    """Detect, segment and measure the sources of one image.

    Parameters
    ----------
    data, err : 2-D float arrays
        Image and its 1-sigma error, in ``data_unit``.
    dq : 2-D uint32 array, optional
        Pixel DQ (L2); pixels with ``DO_NOT_USE`` are masked.  Its value at each centroid
        is reported in ``image_flags``.
    weight : 2-D float array, optional
        Weight map (L3); pixels with weight <= 0 are masked and flagged.
    wcs : callable ``(x, y) -> (ra_deg, dec_deg)``, e.g. a ``gwcs.WCS``, optional
        Pixel (0-based) to ICRS degrees.  Without it the sky columns are NaN, and
        ``pixel_area`` must be given.
    data_unit : {"DN/s", "MJy/sr"}
        Unit of ``data`` and ``err``.
    photmjsr : float
        MJy/sr per DN/s; required (and only used) when ``data_unit == "DN/s"``.
    pixel_area : float, optional
        Pixel solid angle in sr.  If None or <= 0 it is derived from ``wcs`` at the image
        centre.
    bkg_boxsize : int
        Background box size in pixels (default 1000).
    kernel_fwhm : float
        FWHM in pixels of the Gaussian detection kernel (default 2.0); also the DAOFIND
        kernel for ``sharpness``/``roundness1``.
    snr_threshold : float
        Detection threshold in units of the background RMS (default 3.0).
    npixels : int
        Minimum number of connected pixels of a source (default 25).
    deblend : bool
        Deblend overlapping sources (default False); ``deblend_nlevels`` (default 32) and
        ``deblend_contrast`` (default 1e-4) control it.
    psf_fwhm : float, optional
        PSF FWHM in pixels for ``is_extended``.  Shapes are measured on the detection
        image, where a point source has FWHM ``hypot(psf_fwhm, kernel_fwhm)``; by default
        that point-source FWHM is the median second-moment FWHM of the sources with
        segment S/N > 20 (at least 5 of them), else ``sqrt(2) kernel_fwhm``.
    extended_factor : float
        ``is_extended`` is ``fwhm > extended_factor * point-source FWHM`` (default 1.5).
    aperture_radii_arcsec, annulus_arcsec
        Aperture radii and local-background annulus (inner, outer) in arcsec.
    num_threads : int, optional
        Threads sharing the full-image background interpolation and detection
        convolution (row blocks; the results do not depend on it).  Default
        ``OMP_NUM_THREADS`` if set, else the CPU count.

    Returns
    -------
    SourceCatalogResult
        ``catalog`` (astropy Table; zero rows but all columns when nothing is found),
        ``segmentation`` (uint32), ``detection_image`` (float32) and ``meta`` with keys
        ``n_sources``, ``pixel_area`` (sr), ``pixel_scale`` (arcsec), ``to_njy`` (nJy per
        pixel per input data unit), ``background_median`` and ``background_rms_median``
        (input units), ``data_unit``, ``kernel_fwhm``, ``snr_threshold``, ``npixels``,
        ``deblend``, ``psf_fwhm`` (pixels, given or estimated).

    Notes
    -----
    ``aperNN_flux`` (NN = radius in 0.1 arcsec) is the aperture sum at the windowed
    centroid (falling back to the isophotal centroid) minus the local background times
    the aperture area; no aperture correction is applied.  ``kron_flux`` uses photutils'
    Kron aperture (2.5 Kron radii, minimum 1.4).  ``ra``/``dec`` are the sky position of
    the windowed centroid (isophotal centroid if that is undefined).  ``warning_flags``
    has ``DO_NOT_USE`` when the rounded centroid pixel is outside the image, masked, or
    flagged ``DO_NOT_USE`` / zero weight.  ``flagged_spatial_id`` is 0 and ``dust_ebv``
    NaN (no spatial-flag or dust maps are used).
    """
    from photutils.aperture import CircularAnnulus, CircularAperture
    from photutils.segmentation import SourceCatalog, SourceFinder

    data = _check_image("data", data)
    err = _check_image("err", err, data.shape)
    if dq is not None:
        dq = _check_image("dq", dq, data.shape)
        if not np.issubdtype(dq.dtype, np.integer):
            raise ParameterError(f"dq must be an integer array, got dtype {dq.dtype}")
    if weight is not None:
        weight = _check_image("weight", weight, data.shape)
    if data_unit not in ("DN/s", "MJy/sr"):
        raise ParameterError(f"data_unit must be 'DN/s' or 'MJy/sr', got {data_unit!r}")
    if data_unit == "DN/s":
        if photmjsr is None:
            raise ParameterError("photmjsr (MJy/sr per DN/s) is required when data_unit is 'DN/s'")
        _check_positive("photmjsr", photmjsr)
    bkg_boxsize = int(_check_positive("bkg_boxsize", bkg_boxsize, integer=True))
    _check_positive("kernel_fwhm", kernel_fwhm)
    _check_positive("snr_threshold", snr_threshold)
    npixels = int(_check_positive("npixels", npixels, integer=True))
    deblend_nlevels = int(_check_positive("deblend_nlevels", deblend_nlevels, integer=True))
    _check_positive("deblend_contrast", deblend_contrast, allow_zero=True)
    if deblend_contrast > 1:
        raise ParameterError(f"deblend_contrast must be in [0, 1], got {deblend_contrast!r}")
    if psf_fwhm is not None:
        _check_positive("psf_fwhm", psf_fwhm)
    _check_positive("extended_factor", extended_factor)
    radii = tuple(float(_check_positive("aperture radius", r)) for r in aperture_radii_arcsec)
    if len({_aper_name(r) for r in radii}) != len(radii):
        raise ParameterError(f"aperture_radii_arcsec must be distinct at 0.1 arcsec, got {radii}")
    ann_in, ann_out = (float(v) for v in annulus_arcsec)
    if not 0 < ann_in < ann_out:
        raise ParameterError(f"annulus_arcsec must be (inner, outer) with 0 < inner < outer, got {annulus_arcsec}")

    nthreads = _num_threads(num_threads)

    ny, nx = data.shape
    if pixel_area is None or not np.isfinite(pixel_area) or pixel_area <= 0:
        if wcs is None:
            raise ParameterError("pixel_area (sr) must be > 0 when no wcs is given")
        pixel_area = pixel_area_from_wcs(wcs, (nx - 1) / 2.0, (ny - 1) / 2.0)
    pixel_area = float(pixel_area)
    scale = math.sqrt(pixel_area) * _RAD_TO_ARCSEC  # arcsec / pixel
    to_njy = pixel_area * _NJY_PER_MJY * (photmjsr if data_unit == "DN/s" else 1.0)

    # float32 working copies: a full detector is 16.7 Mpix, so every float64 plane costs 134 MB
    data = np.array(data, dtype=np.float32)
    err = np.array(err, dtype=np.float32)
    mask = ~np.isfinite(data) | ~np.isfinite(err) | (err <= 0)
    if dq is not None:
        mask |= (dq & _DNU) != 0
    if weight is not None:
        mask |= ~(np.asarray(weight) > 0)
    if mask.all():
        raise RomancoreError("every pixel of the image is masked; no source catalog can be made")
    data[mask] = 0.0
    err[mask] = 0.0

    background, background_rms = _background(data, mask, bkg_boxsize, nthreads)
    data -= background
    data[mask] = 0.0

    kernel = _detection_kernel(kernel_fwhm)
    detection = _masked_convolve(data, np.asarray(kernel.array, dtype=np.float64), mask, nthreads)
    threshold = snr_threshold * background_rms
    good = ~mask

    if deblend:
        try:
            import skimage.segmentation  # noqa: F401  (photutils deblending needs it)
        except ImportError as exc:
            raise ParameterError(
                "deblend=True needs the scikit-image package, which is not installed"
            ) from exc
    finder = SourceFinder(
        npixels, deblend=deblend, n_levels=deblend_nlevels, contrast=deblend_contrast,
        progress_bar=False,
    )
    segm = finder(detection, threshold, mask=mask) if np.any(detection > threshold) else None

    meta = {
        "data_unit": data_unit,
        "pixel_area": pixel_area,
        "pixel_scale": scale,
        "to_njy": to_njy,
        "background_median": float(np.median(background[good], overwrite_input=True)),
        "background_rms_median": float(np.median(background_rms[good], overwrite_input=True)),
        "kernel_fwhm": float(kernel_fwhm),
        "snr_threshold": float(snr_threshold),
        "npixels": npixels,
        "deblend": bool(deblend),
        "psf_fwhm": None if psf_fwhm is None else float(psf_fwhm),
    }
    if segm is None or segm.n_labels == 0:
        meta["n_sources"] = 0
        log.info("no sources found")
        return SourceCatalogResult(
            empty_catalog(radii), np.zeros(data.shape, np.uint32), detection.astype(np.float32), meta
        )

    segmap = np.asarray(segm.data, dtype=np.uint32)
    cat = SourceCatalog(
        data, segm, convolved_data=detection, error=err, mask=mask,
        aperture_mask_method="mask", progress_bar=False,
    )
    labels = np.asarray(cat.labels)
    n = len(labels)
    v: dict[str, np.ndarray] = {}
    v["label"] = labels
    v["flagged_spatial_id"] = np.zeros(n, np.int32)
    xc, yc = np.asarray(cat.x_centroid, float), np.asarray(cat.y_centroid, float)
    xw, yw = np.asarray(cat.x_centroid_win, float), np.asarray(cat.y_centroid_win, float)
    bad_win = ~(np.isfinite(xw) & np.isfinite(yw))
    xw[bad_win], yw[bad_win] = xc[bad_win], yc[bad_win]
    sx, sy = _moment_centroid_errors(segmap, data, err, mask, labels)
    v["x_centroid"], v["y_centroid"] = xc, yc
    v["x_centroid_err"], v["y_centroid_err"] = sx, sy
    v["x_centroid_win"], v["y_centroid_win"] = xw, yw
    v["x_centroid_win_err"], v["y_centroid_win_err"] = sx.copy(), sy.copy()

    bbox = cat.bbox
    v["bbox_xmin"] = np.array([b.ixmin for b in bbox])
    v["bbox_xmax"] = np.array([b.ixmax - 1 for b in bbox])
    v["bbox_ymin"] = np.array([b.iymin for b in bbox])
    v["bbox_ymax"] = np.array([b.iymax - 1 for b in bbox])

    def _q(x, unit=None):
        x = x.to_value(unit) if (unit is not None and hasattr(x, "to_value")) else getattr(x, "value", x)
        return np.asarray(x, float)

    v["segment_area"] = _q(cat.area, u.pix**2) * scale**2
    v["semimajor"] = _q(cat.semimajor_axis, u.pix) * scale
    v["semiminor"] = _q(cat.semiminor_axis, u.pix) * scale
    fwhm_pix = _q(cat.fwhm, u.pix)
    v["fwhm"] = fwhm_pix * scale
    v["ellipticity"] = _q(cat.ellipticity)
    v["orientation_pix"] = _q(cat.orientation, u.deg)
    v["cxx"] = _q(cat.ellipse_cxx, u.pix**-2) / scale**2
    v["cxy"] = _q(cat.ellipse_cxy, u.pix**-2) / scale**2
    v["cyy"] = _q(cat.ellipse_cyy, u.pix**-2) / scale**2
    v["kron_radius"] = _q(cat.kron_radius, u.pix) * scale
    v["fluxfrac_radius_50"] = _q(cat.flux_radius(0.5), u.pix) * scale

    if n > 1:
        tree = cKDTree(np.column_stack([xc, yc]))
        dist, idx = tree.query(np.column_stack([xc, yc]), k=2)
        v["nn_label"] = labels[idx[:, 1]].astype(np.int32)
        v["nn_distance"] = dist[:, 1] * scale
    else:
        v["nn_label"] = np.full(n, -1, np.int32)
        v["nn_distance"] = np.full(n, np.nan)

    v["sharpness"], v["roundness1"] = _daofind_shape(data, xw, yw, kernel_fwhm, mask)

    # local background (per pixel, input units) in the annulus
    pos = np.column_stack([xw, yw])
    annulus = CircularAnnulus(pos, ann_in / scale, ann_out / scale)
    bkg_pix, bkg_std, bkg_n = _annulus_clipped_stats(data, mask, annulus, SigmaClip(sigma=3.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        bkg_pix_err = np.sqrt(np.pi / (2.0 * bkg_n)) * bkg_std
    bkg_pix = np.where(np.isfinite(bkg_pix), bkg_pix, 0.0)
    v["aper_bkg_flux"] = bkg_pix * to_njy / scale**2
    v["aper_bkg_flux_err"] = bkg_pix_err * to_njy / scale**2

    for r in radii:
        aper_sum, aper_sum_err, area = _aperture_sums(data, err, mask, CircularAperture(pos, r / scale))
        flux = aper_sum - bkg_pix * area
        name = _aper_name(r)
        v[f"{name}_flux"] = flux * to_njy
        v[f"{name}_flux_err"] = aper_sum_err * to_njy

    v["segment_flux"] = _q(cat.segment_flux) * to_njy
    v["segment_flux_err"] = _q(cat.segment_flux_err) * to_njy
    v["kron_flux"] = _q(cat.kron_flux) * to_njy
    v["kron_flux_err"] = _q(cat.kron_flux_err) * to_njy
    v["kron_abmag"], v["kron_abmag_err"] = _abmag(v["kron_flux"], v["kron_flux_err"])

    # is_extended: second-moment FWHM against the PSF FWHM
    # (shapes are measured on the detection image, so a point source there has the
    # FWHM of the PSF convolved with the detection kernel)
    if psf_fwhm is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = v["segment_flux"] / v["segment_flux_err"]
        pts = fwhm_pix[(snr > 20) & np.isfinite(fwhm_pix)]
        point_fwhm = float(np.median(pts)) if len(pts) >= 5 else math.sqrt(2.0) * kernel_fwhm
        meta["psf_fwhm"] = math.sqrt(max(point_fwhm**2 - kernel_fwhm**2, 0.0))
    else:
        point_fwhm = math.hypot(psf_fwhm, kernel_fwhm)
    v["is_extended"] = fwhm_pix > extended_factor * point_fwhm

    # flags at the rounded centroid pixel
    cdq, inside = (
        _pixel_values(dq.astype(np.uint32), xc, yc, 0) if dq is not None
        else (np.zeros(n, np.uint32), _pixel_values(mask, xc, yc, True)[1])
    )
    cmask, _ = _pixel_values(mask, xc, yc, True)
    warn = np.where(~inside | cmask | ((cdq & _DNU) != 0), _DNU, 0).astype(np.uint32)
    v["warning_flags"] = warn
    v["image_flags"] = cdq.astype(np.uint32)
    v["dust_ebv"] = np.full(n, np.nan)

    for key in ("ra", "dec", "ra_centroid", "dec_centroid", "ra_centroid_win", "dec_centroid_win",
                "ra_centroid_err", "dec_centroid_err", "ra_centroid_win_err", "dec_centroid_win_err",
                "orientation_sky"):
        v[key] = np.full(n, np.nan)
    table = _build_table(v, radii)
    if wcs is not None:
        update_sky_coordinates(table, wcs)

    meta["n_sources"] = n
    log.info("%d sources found", n)
    return SourceCatalogResult(table, segmap, detection.astype(np.float32), meta)


def update_sky_coordinates(table: Table, wcs: Callable) -> Table:
    """Recompute the sky columns of a catalog from its pixel columns with ``wcs``.

    Updates, in place, ``ra_centroid``/``dec_centroid``, ``ra_centroid_win``/
    ``dec_centroid_win``, ``ra``/``dec`` (windowed centroid), their ``*_err`` (arcsec,
    from the pixel errors through the local Jacobian; the RA error is along the great
    circle) and ``orientation_sky``, for whichever of these columns are present.
    Returns the table.  Used after tweakreg has corrected the WCS.
    """
    if not callable(wcs):
        raise ParameterError(f"wcs must be callable (x, y) -> (ra, dec), got {type(wcs).__name__}")
    if len(table) == 0:
        return table
    for suffix in ("", "_win"):
        xk, yk = f"x_centroid{suffix}", f"y_centroid{suffix}"
        if xk not in table.colnames or yk not in table.colnames:
            continue
        x = np.asarray(table[xk], float)
        y = np.asarray(table[yk], float)
        ra, dec = _sky(wcs, x, y)
        table[f"ra_centroid{suffix}"] = ra
        table[f"dec_centroid{suffix}"] = dec
        if f"x_centroid{suffix}_err" in table.colnames and f"ra_centroid{suffix}_err" in table.colnames:
            ra_e, dec_e = _sky_errors(
                wcs, x, y, np.asarray(table[f"x_centroid{suffix}_err"], float),
                np.asarray(table[f"y_centroid{suffix}_err"], float),
            )
            table[f"ra_centroid{suffix}_err"] = ra_e
            table[f"dec_centroid{suffix}_err"] = dec_e
        if suffix == "_win" and "ra" in table.colnames:
            table["ra"] = ra
            table["dec"] = dec
    if "orientation_sky" in table.colnames and "orientation_pix" in table.colnames:
        xs = "x_centroid" if "x_centroid" in table.colnames else None
        if xs:
            table["orientation_sky"] = _orientation_sky(
                wcs, np.asarray(table["x_centroid"], float), np.asarray(table["y_centroid"], float),
                np.asarray(table["orientation_pix"], float),
            )
    return table


def tweakreg_catalog(table: Table) -> Table:
    """Return the ``x, y`` (0-based pixels) table tweakreg uses, from a source catalog.

    ``x, y`` are the windowed centroids; rows with ``DO_NOT_USE`` in ``warning_flags`` or
    non-finite positions are dropped.  ``label`` and ``kron_flux`` are kept when present.
    """
    if "x_centroid_win" in table.colnames:
        x, y = table["x_centroid_win"], table["y_centroid_win"]
    elif "x_centroid" in table.colnames:
        x, y = table["x_centroid"], table["y_centroid"]
    else:
        raise ParameterError("catalog has neither x_centroid_win/y_centroid_win nor x_centroid/y_centroid")
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if "warning_flags" in table.colnames:
        keep &= (np.asarray(table["warning_flags"]).astype(np.int64) & _DNU) == 0
    out = Table()
    if "label" in table.colnames:
        out["label"] = np.asarray(table["label"])[keep]
    out["x"] = x[keep]
    out["y"] = y[keep]
    if "kron_flux" in table.colnames:
        out["flux"] = np.asarray(table["kron_flux"], float)[keep]
    return out
