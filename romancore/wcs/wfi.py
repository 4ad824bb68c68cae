"""The WCS of one WFI exposure (ALGORITHMS.md §10).

Frames, forward direction::

    detector (pix, 0-based, 4088² science array)
      │  distortion reference model (pixels → arcsec)
    v2v3 (arcsec)
      │  velocity-aberration scaling about (v2_ref, v3_ref)
    v2v3vacorr (arcsec)
      │  3-D rotation zyxyz by (v2_ref, −v3_ref, roll_ref, dec_ref, −ra_ref)
    world (ICRS, deg)

The v2v3 frame layout is the one tweakwcs' ``RomanWCSCorrector`` expects, so the tweakreg
correction inserts its ``v2v3corr`` frame into these WCS objects without help
(:func:`add_v2v3_correction` is a thin wrapper around it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from copy import deepcopy

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import Model
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

from ..errors import ParameterError

log = logging.getLogger(__name__)

#: Shape (ny, nx) of the L2 science array; the L1 array has a 4-pixel reference border.
DETECTOR_SHAPE = (4088, 4088)
#: Width of the reference-pixel border of L1 arrays.
BORDER = 4
#: The "maker" placeholder number used in unfilled Roman metadata.
_PLACEHOLDER = -999999.0

_REQUIRED_WCSINFO = ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref")


def _frames():
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(
        name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    v2v3vacorr = cf.Frame2D(
        name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    return detector, v2v3, v2v3vacorr, world


def _wcsinfo_values(wcsinfo, keys=_REQUIRED_WCSINFO) -> dict:
    """Pull finite floats for ``keys`` out of a wcsinfo mapping, with clear errors."""
    if not isinstance(wcsinfo, Mapping):
        # datamodel meta nodes behave like mappings only sometimes; accept attribute access too
        try:
            wcsinfo = {k: getattr(wcsinfo, k) for k in keys}
        except AttributeError as exc:
            raise ParameterError(
                f"wcsinfo must be a mapping with keys {', '.join(keys)}; got "
                f"{type(wcsinfo).__name__} ({exc})"
            ) from None
    values = {}
    for key in keys:
        if key not in wcsinfo or wcsinfo[key] is None:
            raise ParameterError(f"wcsinfo['{key}'] is missing; it is required to build a WCS")
        try:
            value = float(wcsinfo[key])
        except (TypeError, ValueError):
            raise ParameterError(
                f"wcsinfo['{key}'] = {wcsinfo[key]!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise ParameterError(f"wcsinfo['{key}'] = {value} is not finite")
        if value == _PLACEHOLDER:
            raise ParameterError(
                f"wcsinfo['{key}'] = {value:g} is the unfilled placeholder value; "
                "the exposure has no pointing information"
            )
        values[key] = value
    if "dec_ref" in values and abs(values["dec_ref"]) > 90:
        raise ParameterError(f"wcsinfo['dec_ref'] = {values['dec_ref']} is outside [-90, 90] deg")
    if "vparity" in values and values["vparity"] not in (-1.0, 1.0):
        raise ParameterError(f"wcsinfo['vparity'] = {values['vparity']} must be -1 or +1")
    return values


def v23tosky(v2_ref: float, v3_ref: float, roll_ref: float, ra_ref: float, dec_ref: float) -> Model:
    """The v2/v3 (arcsec) → ICRS (deg) rotation of ALGORITHMS.md §10 step 3.

    ``v2_ref``, ``v3_ref`` in arcsec, the other angles in degrees. The point
    (v2_ref, v3_ref) maps to (ra_ref, dec_ref); ``roll_ref`` is the position angle of the
    V3 axis at that point. RA comes out in [0, 360).
    """
    angles = np.array([v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref])
    to_deg = am.Scale(1 / 3600.0, name="v2_arcsec_to_deg") & am.Scale(
        1 / 3600.0, name="v3_arcsec_to_deg"
    )
    model = (
        to_deg
        | SphericalToCartesian(wrap_lon_at=180, name="v2v3_to_unit_vector")
        | am.RotationSequence3D(angles, axes_order="zyxyz", name="v23_rotation")
        | CartesianToSpherical(wrap_lon_at=360, name="unit_vector_to_radec")
    )
    model.name = "v23tosky"
    return model


def velocity_aberration_model(scale_factor: float | None, v2_ref: float, v3_ref: float) -> Model:
    """``v2' = s·v2 + (1−s)·v2_ref``, ``v3' = s·v3 + (1−s)·v3_ref`` (arcsec); identity for s None/1."""
    if scale_factor is None or scale_factor == 1.0:
        model = am.Identity(2, name="velocity_aberration")
        return model
    s = float(scale_factor)
    model = (am.Scale(s) | am.Shift((1 - s) * v2_ref)) & (am.Scale(s) | am.Shift((1 - s) * v3_ref))
    model.name = "velocity_aberration"
    return model


def _va_scale(velocity_aberration) -> float | None:
    if velocity_aberration is None:
        return None
    if isinstance(velocity_aberration, Mapping):
        value = velocity_aberration.get("scale_factor")
    elif hasattr(velocity_aberration, "scale_factor"):
        value = velocity_aberration.scale_factor
    else:
        value = velocity_aberration
    if value is None:
        return None
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ParameterError(
            f"velocity_aberration scale_factor = {value!r} is not a number"
        ) from None
    if s == _PLACEHOLDER:
        log.warning("velocity_aberration.scale_factor is the placeholder %g: not applied", s)
        return None
    if not math.isfinite(s) or not 0.9 < s < 1.1:
        raise ParameterError(
            f"velocity_aberration scale_factor = {s} must be finite and within (0.9, 1.1) "
            "(a plate-scale change of order 1e-4)"
        )
    return s


def _check_distortion(distortion) -> Model:
    if not isinstance(distortion, Model):
        what = type(distortion).__name__
        hint = ""
        if isinstance(distortion, Mapping):
            hint = (
                " (the DISTORTION reference file holds no usable transform: it is empty or "
                "could not be converted, e.g. because gwcs/asdf-astropy are missing)"
            )
        raise ParameterError(
            f"distortion must be an astropy Model mapping detector pixels to v2/v3 arcsec; "
            f"got {what}{hint}"
        )
    if distortion.n_inputs != 2 or distortion.n_outputs != 2:
        raise ParameterError(
            f"distortion must have 2 inputs and 2 outputs (x, y → v2, v3); it has "
            f"{distortion.n_inputs} inputs and {distortion.n_outputs} outputs"
        )
    return distortion


def _check_shape(shape, name="shape") -> tuple[int, int]:
    try:
        ny, nx = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} = {shape!r} must be a pair of integers (ny, nx)") from None
    if ny <= 0 or nx <= 0:
        raise ParameterError(f"{name} = {shape!r} must be positive")
    return ny, nx


def _bbox_from_model(model, shape):
    try:
        bbox = model.bounding_box
    except NotImplementedError:
        bbox = None
    if bbox is None:
        ny, nx = shape
        return ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    # astropy stores the box in C order (y, x) for 2-input models
    intervals = bbox.bounding_box(order="F")
    return tuple(tuple(float(v) for v in iv) for iv in intervals)


def build_wfi_wcs(
    distortion: Model,
    wcsinfo,
    *,
    velocity_aberration=None,
    shape: tuple[int, int] = DETECTOR_SHAPE,
) -> WCS:
    """Build the gwcs of a WFI exposure: ``detector → v2v3 → v2v3vacorr → world``.

    Parameters
    ----------
    distortion : astropy Model
        The DISTORTION reference transform (``coordinate_distortion_transform``): 0-based
        pixels of the science array → (v2, v3) in arcsec. If it has an inverse it is used
        for ``wcs.invert``; otherwise gwcs falls back to its numerical inverse.
    wcsinfo : mapping
        ``meta.wcsinfo``: ``v2_ref``, ``v3_ref`` (arcsec), ``ra_ref``, ``dec_ref``,
        ``roll_ref`` (deg). Placeholders (-999999) and non-finite values are rejected.
    velocity_aberration : float, mapping with ``scale_factor``, or None
        Velocity-aberration scale factor; None, 1 or the placeholder mean no correction
        (the ``v2v3vacorr`` frame is still present, with an identity transform).
    shape : (ny, nx)
        Science array shape, used for the bounding box ``((−0.5, nx−0.5), (−0.5, ny−0.5))``
        unless the distortion model carries its own bounding box.
    """
    distortion = _check_distortion(distortion)
    info = _wcsinfo_values(wcsinfo)
    ny, nx = _check_shape(shape)
    scale = _va_scale(velocity_aberration)

    detector, v2v3, v2v3vacorr, world = _frames()
    dist = deepcopy(distortion)
    bbox = _bbox_from_model(dist, (ny, nx))
    try:
        del dist.bounding_box  # the box lives on the WCS, not on the first step's model
    except (AttributeError, NotImplementedError):
        pass
    va = velocity_aberration_model(scale, info["v2_ref"], info["v3_ref"])
    sky = v23tosky(info["v2_ref"], info["v3_ref"], info["roll_ref"], info["ra_ref"], info["dec_ref"])
    wcs = WCS([(detector, dist), (v2v3, va), (v2v3vacorr, sky), (world, None)])
    wcs.bounding_box = bbox
    wcs.pixel_shape = (nx, ny)
    return wcs


def _edge_points(bbox, n_per_edge: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel points on the bounding-box outline, counter-clockwise from (xmin, ymin).

    ``n_per_edge`` points per edge (the 4 corners when 1).
    """
    (x0, x1), (y0, y1) = bbox
    t = np.arange(n_per_edge) / n_per_edge
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full_like(t, x1), x1 - (x1 - x0) * t, np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + (y1 - y0) * t, np.full_like(t, y1), y1 - (y1 - y0) * t])
    return xs, ys


def _wcs_bbox(wcs: WCS, shape=None):
    if shape is not None:
        ny, nx = _check_shape(shape)
        return ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    if wcs.bounding_box is not None:
        intervals = wcs.bounding_box.bounding_box(order="F")
        return tuple(tuple(float(v) for v in iv) for iv in intervals)
    if wcs.pixel_shape is not None:
        nx, ny = wcs.pixel_shape
        return ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    raise ParameterError("the WCS has no bounding box or pixel_shape: give shape=(ny, nx)")


def footprint(wcs: WCS, shape=None, *, n_per_edge: int = 1) -> np.ndarray:
    """Sky positions (deg) of the outline of the pixel area, shape (4·n_per_edge, 2).

    The outline is the bounding box of ``wcs`` (pixel edges at −0.5 and n−0.5), or the box
    of ``shape`` = (ny, nx) when given. Corners in the order (xmin, ymin), (xmax, ymin),
    (xmax, ymax), (xmin, ymax), with ``n_per_edge − 1`` extra points along each edge.
    RA is in [0, 360).
    """
    bbox = _wcs_bbox(wcs, shape)
    xs, ys = _edge_points(bbox, n_per_edge)
    ra, dec = wcs(xs, ys, with_bounding_box=False)
    ra = np.mod(np.asarray(ra, dtype=float), 360.0)
    return np.column_stack([ra, np.asarray(dec, dtype=float)])


def compute_s_region(wcs: WCS, shape=None) -> str | None:
    """``"POLYGON ICRS ra1 dec1 ra2 dec2 ra3 dec3 ra4 dec4"`` of the pixel-corner footprint.

    Corners as in :func:`footprint`; values in degrees with 9 decimals, RA in [0, 360).
    Returns None if any corner is not finite (the caller then keeps the old value).
    """
    fp = footprint(wcs, shape)
    if not np.all(np.isfinite(fp)):
        log.warning("footprint has non-finite corners: s_region not computed")
        return None
    return "POLYGON ICRS " + " ".join(f"{v:.9f}" for v in fp.ravel())


def l1_wcs_from_l2(wcs: WCS, border: int = BORDER) -> WCS:
    """The WCS of the L1 array (with its ``border``-pixel reference frame) from the L2 WCS.

    L1 pixel (x, y) is L2 pixel (x − border, y − border). The bounding box is the L2 box
    shifted by ``border`` (the science area; reference pixels see no sky).
    """
    if not isinstance(wcs, WCS):
        raise ParameterError(f"wcs must be a gwcs.WCS; got {type(wcs).__name__}")
    pipeline = deepcopy(wcs.pipeline)
    first = pipeline[0]
    shift = am.Shift(-float(border), name="l1_to_l2_x") & am.Shift(-float(border), name="l1_to_l2_y")
    pipeline[0] = (first.frame, shift | first.transform)
    out = WCS(pipeline, name=wcs.name)
    bbox = _wcs_bbox(wcs)
    out.bounding_box = tuple((lo + border, hi + border) for lo, hi in bbox)
    if wcs.pixel_shape is not None:
        nx, ny = wcs.pixel_shape
        out.pixel_shape = (nx + 2 * border, ny + 2 * border)
    return out


def add_v2v3_correction(wcs: WCS, wcsinfo, matrix, shift) -> WCS:
    """Apply a linear v2/v3 tangent-plane correction (as tweakreg fits) and return the new WCS.

    ``matrix`` (2×2) and ``shift`` (2, arcsec) act in the tangent plane about
    (v2_ref, v3_ref, roll_ref) taken from ``wcsinfo``. The work is done by tweakwcs'
    ``RomanWCSCorrector`` exactly as tweakreg does it: the step from ``v2v3vacorr`` gets the
    correction model and a ``v2v3corr`` frame is inserted after it; a second call composes
    the affines. The input WCS is not modified.
    """
    from tweakwcs.correctors import RomanWCSCorrector

    info = _wcsinfo_values(wcsinfo, ("v2_ref", "v3_ref", "roll_ref"))
    matrix = np.asarray(matrix, dtype=float)
    shift = np.asarray(shift, dtype=float)
    if matrix.shape != (2, 2) or not np.all(np.isfinite(matrix)):
        raise ParameterError(f"matrix must be a finite 2x2 array; got {matrix.tolist()}")
    if shift.shape != (2,) or not np.all(np.isfinite(shift)):
        raise ParameterError(f"shift must be 2 finite numbers (arcsec); got {shift.tolist()}")
    corrector = RomanWCSCorrector(deepcopy(wcs), info)
    corrector.set_correction(matrix=matrix, shift=shift)
    out = corrector.wcs
    out.bounding_box = wcs.bounding_box.bounding_box(order="F") if wcs.bounding_box else None
    if wcs.pixel_shape is not None:
        out.pixel_shape = wcs.pixel_shape
    return out
