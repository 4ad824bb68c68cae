"""Astronomical scene: a source list on the sky and its rendering on a detector.

Stars are Gaussian PSFs (FWHM from :func:`~romancore.simulate.instrument.psf_fwhm_pixels`)
integrated exactly over each pixel with error functions, so a star deposits exactly its
flux (to < 1e-6) in its stamp. Galaxies are elliptical Sérsic profiles
``I ∝ exp(−b_n((r/r_e)^{1/n} − 1))`` with ``b_n ≈ 2n − 1/3 + 4/(405n)``, evaluated on a
5× oversampled grid, convolved with the PSF, normalised to their flux inside the stamp and
binned to pixels. Rates are photo-electrons per second before the flat-field response.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from ..errors import ParameterError
from .instrument import (
    FILTERS,
    NOMINAL_GAIN,
    PLATE_SCALE,
    DetectorGeometry,
    check_filter,
    photmjsr,
    pixel_area_sr,
    psf_fwhm_pixels,
    sky_to_v2v3,
)

SOURCE_DTYPE = np.dtype([
    ("id", "i8"), ("kind", "U6"), ("ra", "f8"), ("dec", "f8"), ("abmag", "f8"),
    ("flux_e_s", "f8"), ("sersic_n", "f4"), ("r_eff_arcsec", "f4"), ("axis_ratio", "f4"),
    ("pa_deg", "f4"),
])
"""Sky source list: position (deg), AB magnitude in the filter, total rate (e/s), and the
Sérsic shape of galaxies (zeros for stars)."""

OVERSAMPLE = 5


def _tangent_offsets(ra, dec, ra0, dec0):
    """Gnomonic (ξ, η) in degrees of (ra, dec) about (ra0, dec0)."""
    ra, dec = np.radians(ra), np.radians(dec)
    ra0, dec0 = math.radians(ra0), math.radians(dec0)
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cosc
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _from_tangent(xi, eta, ra0, dec0):
    xi, eta = np.radians(xi), np.radians(eta)
    ra0, dec0 = math.radians(ra0), math.radians(dec0)
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(dec0) + np.where(rho > 0, eta * np.sin(c) * np.cos(dec0) / rho, 0))
    ra = ra0 + np.arctan2(xi * np.sin(c), rho * np.cos(dec0) * np.cos(c) - eta * np.sin(dec0) * np.sin(c))
    return np.mod(np.degrees(ra), 360.0), np.degrees(dec)


def make_sources(ra0: float, dec0: float, half_width_deg: float, optical_element: str,
                 rng: np.random.Generator, *, stars_per_arcmin2: float = 20.0,
                 galaxies_per_arcmin2: float = 10.0, star_mag=(18.0, 25.5),
                 galaxy_mag=(20.0, 25.0)) -> np.ndarray:
    """Draw stars and galaxies uniformly over a square of half-width ``half_width_deg``
    (in the tangent plane about (ra0, dec0)). Magnitudes follow a rising power law
    (dN/dm ∝ 10^{0.3 m}) between the given limits."""
    zp = FILTERS[check_filter(optical_element)][1]
    if not half_width_deg > 0:
        raise ParameterError(f"half_width_deg={half_width_deg!r} must be > 0")
    area = (2 * half_width_deg * 60.0) ** 2
    n_star = rng.poisson(stars_per_arcmin2 * area)
    n_gal = rng.poisson(galaxies_per_arcmin2 * area)
    n = n_star + n_gal
    src = np.zeros(n, dtype=SOURCE_DTYPE)
    src["id"] = np.arange(1, n + 1)
    src["kind"][:n_star] = "star"
    src["kind"][n_star:] = "galaxy"
    xi = rng.uniform(-half_width_deg, half_width_deg, n)
    eta = rng.uniform(-half_width_deg, half_width_deg, n)
    src["ra"], src["dec"] = _from_tangent(xi, eta, ra0, dec0)

    def powerlaw_mag(lo, hi, size):
        a = 0.3 * math.log(10)
        u = rng.random(size)
        return np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a

    src["abmag"][:n_star] = powerlaw_mag(*star_mag, n_star)
    src["abmag"][n_star:] = powerlaw_mag(*galaxy_mag, n_gal)
    src["flux_e_s"] = 10 ** ((zp - src["abmag"]) / 2.5)
    g = slice(n_star, n)
    src["sersic_n"][g] = rng.choice([1.0, 1.0, 1.5, 2.5, 4.0], n_gal)
    src["r_eff_arcsec"][g] = np.exp(rng.uniform(np.log(0.15), np.log(0.8), n_gal))
    src["axis_ratio"][g] = rng.uniform(0.4, 1.0, n_gal)
    src["pa_deg"][g] = rng.uniform(0, 180, n_gal)
    return src


def _gauss_1d(edges_minus_x0, sigma):
    z = edges_minus_x0 / (sigma * math.sqrt(2.0))
    cdf = 0.5 * (1 + erf(z))
    return np.diff(cdf, axis=-1)


def star_stamp(x0: float, y0: float, flux: float, sigma: float, half: int):
    """Pixel-integrated Gaussian: (stamp [2h+1, 2h+1], ix0, iy0) with its lower-left pixel at
    (ix0, iy0) and the source at (x0, y0) (pixel centres at integers)."""
    ix, iy = int(round(x0)), int(round(y0))
    edges = np.arange(-half, half + 2) - 0.5
    px = _gauss_1d(ix + edges - x0, sigma)
    py = _gauss_1d(iy + edges - y0, sigma)
    return flux * np.outer(py, px), ix - half, iy - half


def galaxy_stamp(x0, y0, flux, n, r_eff_pix, q, theta_rad, psf_sigma, half):
    ix, iy = int(round(x0)), int(round(y0))
    m = OVERSAMPLE
    size = (2 * half + 1) * m
    g = (np.arange(size) + 0.5) / m - half - 0.5
    gx = g[None, :] + ix - x0
    gy = g[:, None] + iy - y0
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    xr = gx * c + gy * s
    yr = -gx * s + gy * c
    r = np.sqrt(q * xr * xr + yr * yr / q)
    bn = 2 * n - 1 / 3 + 4 / (405 * n)
    img = np.exp(-bn * ((r / r_eff_pix) ** (1 / n) - 1))
    img = gaussian_filter(img, psf_sigma * m, mode="constant")
    img = img.reshape(2 * half + 1, m, 2 * half + 1, m).sum(axis=(1, 3))
    return flux * img / img.sum(), ix - half, iy - half


def source_positions(sources: np.ndarray, geometry: DetectorGeometry, attitude):
    """Science-array pixel positions (x, y, 0-based) of every source for an attitude."""
    v2, v3 = sky_to_v2v3(attitude, sources["ra"], sources["dec"])
    return geometry.v2v3_to_pixel(v2, v3)


def render_sources(sources: np.ndarray, x: np.ndarray, y: np.ndarray, shape, optical_element: str,
                   *, margin: int = 40) -> np.ndarray:
    """Rate image (e/s, float32, science array ``shape``) of the sources at pixel (x, y)."""
    ny, nx = shape
    img = np.zeros((ny, nx), np.float64)
    sigma = psf_fwhm_pixels(optical_element) / (2 * math.sqrt(2 * math.log(2)))
    on = (x > -margin) & (x < nx + margin) & (y > -margin) & (y < ny + margin)
    for k in np.flatnonzero(on):
        s = sources[k]
        if s["kind"] == "star":
            half = int(math.ceil(5 * sigma)) + 1
            stamp, ox, oy = star_stamp(x[k], y[k], s["flux_e_s"], sigma, half)
        else:
            re_pix = s["r_eff_arcsec"] / PLATE_SCALE
            half = int(min(30, math.ceil(5 * re_pix + 4 * sigma) + 1))
            stamp, ox, oy = galaxy_stamp(x[k], y[k], s["flux_e_s"], float(s["sersic_n"]), re_pix,
                                         float(s["axis_ratio"]), math.radians(s["pa_deg"]), sigma, half)
        h, w = stamp.shape
        y0, y1 = max(oy, 0), min(oy + h, ny)
        x0, x1 = max(ox, 0), min(ox + w, nx)
        if y0 < y1 and x0 < x1:
            img[y0:y1, x0:x1] += stamp[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return img.astype(np.float32)


def truth_table(sources: np.ndarray, x: np.ndarray, y: np.ndarray, shape, optical_element: str):
    """Astropy Table of the sources whose centre falls on the science array: id, kind, ra,
    dec, x, y (0-based science pixels), flux in e/s, DN/s (nominal gain), nJy and AB mag."""
    from astropy.table import Table

    ny, nx = shape
    on = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    s = sources[on]
    flux_dn = s["flux_e_s"] / NOMINAL_GAIN
    njy = flux_dn * photmjsr(optical_element) * pixel_area_sr() * 1e15
    t = Table()
    t["id"] = s["id"]
    t["kind"] = s["kind"]
    t["ra"] = s["ra"]
    t["dec"] = s["dec"]
    t["x"] = x[on]
    t["y"] = y[on]
    t["flux_e_s"] = s["flux_e_s"]
    t["flux_dn_s"] = flux_dn
    t["flux_njy"] = njy
    t["abmag"] = s["abmag"]
    t["sersic_n"] = s["sersic_n"]
    t["r_eff_arcsec"] = s["r_eff_arcsec"]
    for name, unit in (("ra", "deg"), ("dec", "deg"), ("x", "pix"), ("y", "pix"),
                       ("flux_e_s", "electron/s"), ("flux_dn_s", "DN/s"), ("flux_njy", "nJy"),
                       ("abmag", "mag(AB)"), ("r_eff_arcsec", "arcsec")):
        t[name].description = unit
    return t
