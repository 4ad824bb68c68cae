"""Scene rendering and geometry of the simulator."""

import math

import numpy as np
import pytest

from romancore.errors import ParameterError
from romancore.simulate.instrument import (
    DetectorGeometry,
    attitude_matrix,
    boresight_attitude,
    detector_wcsinfo,
    psf_fwhm_pixels,
    sky_to_v2v3,
    v2v3_to_sky,
)
from romancore.simulate.scene import SOURCE_DTYPE, make_sources, render_sources, source_positions


def _one(kind, flux, **shape):
    s = np.zeros(1, SOURCE_DTYPE)
    s["kind"], s["flux_e_s"] = kind, flux
    for k, v in shape.items():
        s[k] = v
    return s


@pytest.mark.parametrize("x0, y0", [(20.0, 21.0), (20.37, 19.81), (19.5, 20.5)])
def test_star_flux_centroid_and_width(x0, y0):
    img = render_sources(_one("star", 1000.0), np.array([x0]), np.array([y0]), (41, 41), "F158")
    assert img.sum() == pytest.approx(1000.0, rel=1e-5)
    yy, xx = np.mgrid[:41, :41]
    assert (img * xx).sum() / img.sum() == pytest.approx(x0, abs=1e-4)
    assert (img * yy).sum() / img.sum() == pytest.approx(y0, abs=1e-4)
    # Second moment = σ² of the Gaussian + 1/12 for the pixel integration.
    sigma = psf_fwhm_pixels("F158") / (2 * math.sqrt(2 * math.log(2)))
    var = (img * (xx - x0) ** 2).sum() / img.sum()
    assert var == pytest.approx(sigma**2 + 1 / 12, rel=1e-3)


def test_psf_fwhm_range():
    fw = [psf_fwhm_pixels(f) for f in ("F062", "F106", "F158", "F213")]
    assert all(1.2 <= f <= 2.0 for f in fw) and fw == sorted(fw)


def test_galaxy_flux_and_extent():
    s = _one("galaxy", 500.0, sersic_n=1.0, r_eff_arcsec=0.4, axis_ratio=0.5, pa_deg=30.0)
    img = render_sources(s, np.array([40.2]), np.array([39.7]), (81, 81), "F158")
    assert img.sum() == pytest.approx(500.0, rel=1e-5)
    star = render_sources(_one("star", 500.0), np.array([40.2]), np.array([39.7]), (81, 81), "F158")
    assert img.max() < 0.5 * star.max()
    yy, xx = np.mgrid[:81, :81]
    assert (img * xx).sum() / img.sum() == pytest.approx(40.2, abs=0.02)


def test_edge_sources_are_clipped_not_lost_elsewhere():
    img = render_sources(_one("star", 100.0), np.array([-0.2]), np.array([10.0]), (20, 20), "F158")
    # The part right of the array edge x = -0.5 lands: Φ(0.3/σ) of the flux.
    sigma = psf_fwhm_pixels("F158") / (2 * math.sqrt(2 * math.log(2)))
    inside = 0.5 * (1 + math.erf(0.3 / (sigma * math.sqrt(2))))
    assert img.sum() == pytest.approx(100.0 * inside, rel=1e-5)


def test_geometry_round_trips_and_scale():
    g = DetectorGeometry("WFI05")
    x = np.array([0.0, 100.3, 2043.5, 4087.0])
    y = np.array([0.0, 3000.7, 2043.5, 10.0])
    v2, v3 = g.pixel_to_v2v3(x, y)
    xb, yb = g.v2v3_to_pixel(v2, v3)
    np.testing.assert_allclose(xb, x, atol=1e-8)
    np.testing.assert_allclose(yb, y, atol=1e-8)
    # ~0.11″ per pixel at the centre.
    a2, a3 = g.pixel_to_v2v3(np.array([2043.5, 2044.5]), np.array([2043.5, 2043.5]))
    assert math.hypot(a2[1] - a2[0], a3[1] - a3[0]) == pytest.approx(0.11, rel=0.01)
    # The astropy model (DISTORTION reference) agrees with the numpy geometry.
    m = g.astropy_model()
    mv2, mv3 = m(x, y)
    np.testing.assert_allclose(mv2, v2, atol=1e-9)
    np.testing.assert_allclose(mv3, v3, atol=1e-9)


def test_attitude_and_wcsinfo_are_consistent():
    att = boresight_attitude(150.0, 2.0, 35.0)
    w = detector_wcsinfo(att, "WFI12")
    again = attitude_matrix(w["ra_ref"], w["dec_ref"], w["roll_ref"], w["v2_ref"], w["v3_ref"])
    np.testing.assert_allclose(again, att, atol=1e-12)
    ra, dec = v2v3_to_sky(att, np.array([w["v2_ref"], 100.0]), np.array([w["v3_ref"], -900.0]))
    assert ra[0] == pytest.approx(w["ra_ref"]) and dec[0] == pytest.approx(w["dec_ref"])
    v2, v3 = sky_to_v2v3(att, ra, dec)
    np.testing.assert_allclose([v2[1], v3[1]], [100.0, -900.0], atol=1e-7)


def test_sources_fall_where_the_geometry_puts_them():
    rng = np.random.default_rng(4)
    att = boresight_attitude(10.0, -30.0, 200.0)
    g = DetectorGeometry("WFI09", nside=200)
    ra0, dec0 = (float(v) for v in v2v3_to_sky(att, g.v2_ref, g.v3_ref))
    src = make_sources(ra0, dec0, 200 * 0.11 / 3600 / 2, "F087", rng, stars_per_arcmin2=3000,
                       galaxies_per_arcmin2=0)
    x, y = source_positions(src, g, att)
    assert len(src) > 50
    assert np.all(np.hypot(x - 99.5, y - 99.5) < 100 * math.sqrt(2) + 5)
    assert np.any(np.hypot(x - 99.5, y - 99.5) > 100)
    with pytest.raises(ParameterError, match="half_width_deg"):
        make_sources(ra0, dec0, 0.0, "F087", rng)
    with pytest.raises(ParameterError, match="optical_element"):
        make_sources(ra0, dec0, 0.01, "F000", rng)
