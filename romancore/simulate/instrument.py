"""Facts about the simulated Wide Field Instrument: detectors, filters, MA tables, geometry.

Everything here is a plain value or a numpy computation; nothing opens a file.

Geometry follows the Roman convention used by the pipeline (ALGORITHMS.md §10):
science pixels (0-based, 4088×4088) → V2/V3 (arcsec) through a smooth cubic
polynomial (the DISTORTION reference), then V2/V3 → sky with the rotation
``Rz(−ra_ref)·Ry(dec_ref)·Rx(roll_ref)·Ry(−v3_ref)·Rz(v2_ref)``.
The detector layout and the distortion coefficients are *plausible* values
invented for simulation (6 columns × 3 rows of detectors, ~0.11″/pixel), not the
flight SIAF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

BORDER = 4
"""Width of the reference-pixel border (pixels) on each side of the detector."""

PLATE_SCALE = 0.11
"""Nominal detector plate scale (arcsec/pixel)."""

CHANNEL_WIDTH = 128
"""Columns per readout channel (amplifier)."""

DETECTORS = tuple(f"WFI{n:02d}" for n in range(1, 19))

# Filter name → (pivot wavelength µm, zero point: AB mag of a 1 e/s source).
FILTERS = {
    "F062": (0.620, 26.56),
    "F087": (0.869, 26.30),
    "F106": (1.060, 26.44),
    "F129": (1.293, 26.40),
    "F146": (1.464, 27.58),
    "F158": (1.577, 26.39),
    "F184": (1.842, 25.95),
    "F213": (2.125, 25.60),
}

NOMINAL_GAIN = 2.0
"""Mean detector gain (e/DN); per-pixel gains scatter around it."""

AB_ZEROPOINT_NJY = 31.4
"""AB magnitude of 1 nJy."""


@dataclass(frozen=True)
class MATable:
    """A multi-accumulation table: which reads are averaged into each resultant."""

    name: str
    number: int
    frame_time: float
    read_pattern: tuple[tuple[int, ...], ...]

    @property
    def nresultants(self) -> int:
        return len(self.read_pattern)

    @property
    def nreads(self) -> int:
        return self.read_pattern[-1][-1]

    @property
    def exposure_time(self) -> float:
        """Time of the last read (s) counted from the reset."""
        return self.frame_time * self.nreads

    @property
    def effective_exposure_time(self) -> float:
        """Time between the first and the last read (s)."""
        return self.frame_time * (self.read_pattern[-1][-1] - self.read_pattern[0][0])

    def as_list(self) -> list[list[int]]:
        return [list(r) for r in self.read_pattern]


def _pattern(groups) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(g) for g in groups)


MA_TABLES = {
    "C2A_IMG_HLWAS": MATable(
        "C2A_IMG_HLWAS", 1, 3.16247,
        _pattern([[1], [2], [3, 4], range(5, 10), range(10, 18), range(18, 26),
                  range(26, 34), range(34, 44), [44]]),
    ),
    "SIM_SHORT_6": MATable(
        "SIM_SHORT_6", 2, 3.16247,
        _pattern([[1], [2], [3, 4], [5, 6, 7], [8, 9, 10, 11], [12]]),
    ),
}
DEFAULT_MA_TABLE = "C2A_IMG_HLWAS"


def validate_read_pattern(read_pattern) -> tuple[tuple[int, ...], ...]:
    """Check a read pattern (list of lists of 1-based, strictly increasing read numbers)."""
    try:
        groups = [tuple(int(r) for r in g) for g in read_pattern]
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"read_pattern={read_pattern!r} must be a list of lists of integers"
        ) from exc
    if not groups or any(len(g) == 0 for g in groups):
        raise ParameterError(f"read_pattern={read_pattern!r} must hold at least one non-empty resultant")
    flat = [r for g in groups for r in g]
    if flat[0] < 1 or any(b <= a for a, b in zip(flat, flat[1:], strict=False)):
        raise ParameterError(
            f"read_pattern={read_pattern!r}: read numbers must be >= 1 and strictly increasing"
        )
    return tuple(groups)


def resultant_times(read_pattern, frame_time: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (N_i, tbar_i, tau_i) of a read pattern (Casertano et al. 2022).

    ``tbar_i`` is the mean read time of resultant i and ``tau_i`` its variance-weighted
    time, so that for a rate f, Var_Poisson(R_i) = f·tau_i and Cov(R_i, R_j) = f·tbar_i (i<j).
    """
    groups = validate_read_pattern(read_pattern)
    n = np.array([len(g) for g in groups], dtype=float)
    tbar = np.array([frame_time * np.mean(g) for g in groups])
    tau = np.empty(len(groups))
    for i, g in enumerate(groups):
        k = np.arange(1, len(g) + 1)
        tau[i] = frame_time / len(g) ** 2 * np.sum((2 * len(g) - 2 * k + 1) * np.asarray(g, float))
    return n, tbar, tau


def check_detector(detector: str) -> str:
    name = str(detector).upper()
    if name not in DETECTORS:
        raise ParameterError(f"detector={detector!r} is not one of WFI01..WFI18")
    return name


def check_filter(optical_element: str) -> str:
    name = str(optical_element).upper()
    if name not in FILTERS:
        raise ParameterError(f"optical_element={optical_element!r} is not one of {sorted(FILTERS)}")
    return name


def psf_fwhm_pixels(optical_element: str) -> float:
    """Gaussian PSF FWHM (pixels): diffraction core 1.22λ/D (D = 2.4 m) added in quadrature
    to one pixel of charge diffusion/jitter, clipped to [1.2, 2.0] pixels."""
    lam_um = FILTERS[check_filter(optical_element)][0]
    core = 1.22 * lam_um * 1e-6 / 2.4 * 206264.806 / PLATE_SCALE
    return float(np.clip(math.hypot(core, 1.0), 1.2, 2.0))


def pixel_area_sr(scale_arcsec: float = PLATE_SCALE) -> float:
    return (scale_arcsec * math.pi / 648000.0) ** 2


def photmjsr(optical_element: str, gain: float = NOMINAL_GAIN) -> float:
    """Conversion (MJy/sr)/(DN/s) for a filter: 1 DN/s = gain e/s, ZP = AB mag of 1 e/s."""
    zp = FILTERS[check_filter(optical_element)][1]
    njy_per_dn_s = gain * 10 ** ((AB_ZEROPOINT_NJY - zp) / 2.5)
    return njy_per_dn_s * 1e-15 / pixel_area_sr()


# ---------------------------------------------------------------------------------------------
# Geometry


def detector_reference_point(detector: str) -> tuple[float, float]:
    """(v2_ref, v3_ref) in arcsec of a detector's science-array centre.

    The 18 detectors sit in 6 columns of 3, columns ~470″ apart, rows ~460″ apart, the
    outer columns raised a little like the real focal plane's arc.
    """
    n = DETECTORS.index(check_detector(detector))
    col, row = divmod(n, 3)
    v2 = (col - 2.5) * 470.0
    v3 = -1500.0 + (row - 1) * 460.0 + 40.0 * ((col - 2.5) / 2.5) ** 2
    return v2, v3


V3YANGLE = -60.0
VPARITY = -1
BORESIGHT_V2V3 = (0.0, -1500.0)
"""(V2, V3) of the WFI_CEN aperture used as the pointing reference (arcsec)."""


def _distortion_terms(detector: str) -> dict[tuple[int, int], tuple[float, float]]:
    """Higher-order terms (arcsec) of the detector→V2/V3 polynomial in units of
    u = dx/2044, v = dy/2044 (dx, dy pixel offsets from the array centre)."""
    v2r, v3r = detector_reference_point(detector)
    # Radial-ish field distortion grows away from the boresight; a few pixels at the corners.
    a = 1.0e-4 * (v2r - BORESIGHT_V2V3[0])
    b = 1.0e-4 * (v3r - BORESIGHT_V2V3[1])
    return {
        (2, 0): (0.08 + a, 0.05 * b), (1, 1): (0.06 * b, 0.07 + a), (0, 2): (0.04, 0.09 + b),
        (3, 0): (0.12, 0.01), (2, 1): (0.02, 0.10), (1, 2): (0.11, 0.02), (0, 3): (0.01, 0.13),
    }


class DetectorGeometry:
    """Science pixel (x, y, 0-based on the 4088² array) ↔ V2/V3 (arcsec) ↔ sky (deg).

    ``nside`` lets small test detectors use the same geometry: the distortion is defined
    on a 4088-pixel array and the small array takes its central part.
    """

    def __init__(self, detector: str, nside: int = 4088):
        self.detector = check_detector(detector)
        self.nside = int(nside)
        self.v2_ref, self.v3_ref = detector_reference_point(self.detector)
        self.x_ref = self.y_ref = (self.nside - 1) / 2.0
        th = math.radians(V3YANGLE)
        p = PLATE_SCALE
        # Linear part: SIAF-style ideal frame (ALGORITHMS.md §10).
        self.lin = np.array([[VPARITY * p * math.cos(th), p * math.sin(th)],
                             [-VPARITY * p * math.sin(th), p * math.cos(th)]])
        self.terms = _distortion_terms(self.detector)

    # Polynomial in (dx, dy) giving (v2 - v2_ref, v3 - v3_ref) in arcsec.
    def _poly(self, dx, dy):
        u = dx / 2044.0
        v = dy / 2044.0
        d2 = self.lin[0, 0] * dx + self.lin[0, 1] * dy
        d3 = self.lin[1, 0] * dx + self.lin[1, 1] * dy
        for (i, j), (c2, c3) in self.terms.items():
            m = u ** i * v ** j
            d2 = d2 + c2 * m
            d3 = d3 + c3 * m
        return d2, d3

    def _jac(self, dx, dy):
        u = dx / 2044.0
        v = dy / 2044.0
        j = [[np.full_like(u, self.lin[0, 0]), np.full_like(u, self.lin[0, 1])],
             [np.full_like(u, self.lin[1, 0]), np.full_like(u, self.lin[1, 1])]]
        for (i, k), (c2, c3) in self.terms.items():
            du = i * u ** max(i - 1, 0) * v ** k / 2044.0 if i else 0.0
            dv = k * u ** i * v ** max(k - 1, 0) / 2044.0 if k else 0.0
            j[0][0] = j[0][0] + c2 * du
            j[0][1] = j[0][1] + c2 * dv
            j[1][0] = j[1][0] + c3 * du
            j[1][1] = j[1][1] + c3 * dv
        return j

    def pixel_to_v2v3(self, x, y):
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        d2, d3 = self._poly(x - self.x_ref, y - self.y_ref)
        return self.v2_ref + d2, self.v3_ref + d3

    def v2v3_to_pixel(self, v2, v3):
        """Invert the polynomial with Newton iterations (converges to < 1e-9 px)."""
        t2 = np.asarray(v2, float) - self.v2_ref
        t3 = np.asarray(v3, float) - self.v3_ref
        inv = np.linalg.inv(self.lin)
        dx = inv[0, 0] * t2 + inv[0, 1] * t3
        dy = inv[1, 0] * t2 + inv[1, 1] * t3
        for _ in range(8):
            f2, f3 = self._poly(dx, dy)
            r2, r3 = t2 - f2, t3 - f3
            j = self._jac(dx, dy)
            det = j[0][0] * j[1][1] - j[0][1] * j[1][0]
            dx = dx + (j[1][1] * r2 - j[0][1] * r3) / det
            dy = dy + (-j[1][0] * r2 + j[0][0] * r3) / det
        return dx + self.x_ref, dy + self.y_ref

    def astropy_model(self):
        """The detector→V2/V3 transform as an astropy model (for the DISTORTION reference).

        Inputs are science pixels (0-based), outputs arcsec; the inverse is a least-squares
        polynomial fit of degree 5 (accurate to well under 1e-3 pixel)."""
        from astropy.modeling import models

        def coeffs(k):
            c = {}
            # Polynomial2D coefficient names c{i}_{j} multiply x^i y^j (x, y = pixel offsets).
            c["c1_0"] = self.lin[k, 0]
            c["c0_1"] = self.lin[k, 1]
            for (i, j), cc in self.terms.items():
                c[f"c{i}_{j}"] = cc[k] / 2044.0 ** (i + j)
            return c

        shift_in = models.Shift(-self.x_ref) & models.Shift(-self.y_ref)
        poly = (models.Mapping((0, 1, 0, 1))
                | models.Polynomial2D(3, **coeffs(0)) & models.Polynomial2D(3, **coeffs(1)))
        shift_out = models.Shift(self.v2_ref) & models.Shift(self.v3_ref)
        forward = shift_in | poly | shift_out

        # Fitted inverse on a grid, in V2/V3 offsets scaled to about ±1 (well conditioned).
        from astropy.modeling import fitting

        scale = self.nside * PLATE_SCALE / 2.0
        g = np.linspace(-0.5, self.nside - 0.5, 41)
        gx, gy = np.meshgrid(g, g)
        v2, v3 = self.pixel_to_v2v3(gx, gy)
        d2 = (v2 - self.v2_ref).ravel() / scale
        d3 = (v3 - self.v3_ref).ravel() / scale
        fitter = fitting.LinearLSQFitter()
        px = fitter(models.Polynomial2D(5), d2, d3, (gx - self.x_ref).ravel())
        py = fitter(models.Polynomial2D(5), d2, d3, (gy - self.y_ref).ravel())
        inverse = ((models.Shift(-self.v2_ref) & models.Shift(-self.v3_ref))
                   | (models.Scale(1 / scale) & models.Scale(1 / scale))
                   | models.Mapping((0, 1, 0, 1)) | px & py
                   | models.Shift(self.x_ref) & models.Shift(self.y_ref))
        forward.inverse = inverse
        forward.bounding_box = ((-0.5, self.nside - 0.5), (-0.5, self.nside - 0.5))
        return forward


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def attitude_matrix(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref) -> np.ndarray:
    """Rotation taking V-frame unit vectors to ICRS unit vectors (angles in deg, v2/v3 in ″)."""
    d = math.radians
    return (_rz(-d(ra_ref)) @ _ry(d(dec_ref)) @ _rx(d(roll_ref))
            @ _ry(-d(v3_ref / 3600.0)) @ _rz(d(v2_ref / 3600.0)))


def _unit(lon_deg, lat_deg):
    lon = np.radians(lon_deg)
    lat = np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _lonlat(u):
    lon = np.degrees(np.arctan2(u[1], u[0]))
    lat = np.degrees(np.arctan2(u[2], np.hypot(u[0], u[1])))
    return lon, lat


def v2v3_to_sky(attitude, v2, v3):
    u = _unit(np.asarray(v2, float) / 3600.0, np.asarray(v3, float) / 3600.0)
    w = np.tensordot(attitude, u, axes=1)
    ra, dec = _lonlat(w)
    return np.mod(ra, 360.0), dec


def sky_to_v2v3(attitude, ra, dec):
    u = _unit(np.asarray(ra, float), np.asarray(dec, float))
    w = np.tensordot(attitude.T, u, axes=1)
    v2, v3 = _lonlat(w)
    v2 = (v2 + 180.0) % 360.0 - 180.0
    return v2 * 3600.0, v3 * 3600.0


def detector_wcsinfo(attitude, detector: str) -> dict:
    """ra_ref, dec_ref, roll_ref of a detector's reference point for a given attitude, such
    that ``attitude_matrix(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref) == attitude``."""
    v2r, v3r = detector_reference_point(detector)
    ra, dec = v2v3_to_sky(attitude, v2r, v3r)
    ra, dec = float(ra), float(dec)
    d = math.radians
    m = _ry(-d(dec)) @ _rz(d(ra)) @ attitude @ _rz(-d(v2r / 3600.0)) @ _ry(d(v3r / 3600.0))
    roll = math.degrees(math.atan2(m[1, 2], m[1, 1])) % 360.0
    return {"aperture_name": f"{check_detector(detector)}_FULL", "v2_ref": v2r, "v3_ref": v3r,
            "vparity": VPARITY, "v3yangle": V3YANGLE, "ra_ref": ra, "dec_ref": dec,
            "roll_ref": roll}


def boresight_attitude(ra: float, dec: float, roll: float) -> np.ndarray:
    """Attitude for a pointing: the WFI_CEN reference point at (ra, dec), V3 at PA ``roll``."""
    return attitude_matrix(ra, dec, roll, *BORESIGHT_V2V3)
