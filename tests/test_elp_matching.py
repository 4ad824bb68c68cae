"""tweakreg catalog matching in crowded fields: one-to-one matcher, thinning, footprint cut."""

import numpy as np
import pytest
from astropy.table import Table

from romancore.algorithms import tweakreg as tr
from romancore.errors import ParameterError


def _tables(imxy, refxy):
    return (Table({"TPx": refxy[:, 0], "TPy": refxy[:, 1]}),
            Table({"TPx": imxy[:, 0], "TPy": imxy[:, 1]}))


def _crowded(rng, nref=600, nim=120, box=60.0, shift=(0.31, -0.22), noise=0.01):
    """Reference list 5x denser than the image list (all image sources are reference
    sources, shifted and with position noise); units are arcsec, density ~ 600 / arcmin^2."""
    refxy = rng.uniform(0, box, (nref, 2))
    pick = rng.choice(nref, nim, replace=False)
    imxy = refxy[pick] - np.asarray(shift) + rng.normal(0, noise, (nim, 2))
    return imxy, refxy, pick


def test_dense_reference_matches_one_to_one_where_xyxymatch_overflows():
    rng = np.random.default_rng(11)
    imxy, refxy, pick = _crowded(rng)
    refcat, imcat = _tables(imxy, refxy)
    from tweakwcs.matchutils import MatchSourceConfusionError, XYXYMatch

    with pytest.raises(MatchSourceConfusionError):
        XYXYMatch(searchrad=2.0, separation=0.1, tolerance=0.7)(refcat, imcat, tp_pscale=0.11)
    ref_idx, im_idx = tr.TangentPlaneMatch(searchrad=2.0, separation=0.1, tolerance=0.7)(
        refcat, imcat, tp_pscale=0.11)
    assert len(np.unique(ref_idx)) == len(ref_idx) and len(np.unique(im_idx)) == len(im_idx)
    # every match is the true counterpart, and nearly every image source is matched
    np.testing.assert_array_equal(ref_idx, pick[im_idx])
    assert len(im_idx) >= 0.95 * len(imxy)


def test_histogram_offset_recovers_shift():
    rng = np.random.default_rng(12)
    imxy, refxy, _ = _crowded(rng, shift=(1.234, -0.567))
    offset, npeak = tr._histogram_offset(imxy, refxy, searchrad=3.0, binsize=0.11)
    np.testing.assert_allclose(offset, [1.234, -0.567], atol=0.005)
    assert npeak >= 100
    off0, n0 = tr._histogram_offset(imxy, refxy + 100.0, searchrad=3.0, binsize=0.11)
    assert n0 == 0 and np.all(off0 == 0)


def test_duplicate_detections_are_thinned_to_one():
    # one star seen in two exposures of a group: two rows 0.02" apart; only the first is kept
    xy = np.array([[0.0, 0.0], [0.02, 0.0], [5.0, 5.0], [5.0, 5.05], [5.0, 5.08], [9.0, 0.0]])
    np.testing.assert_array_equal(tr._thin(xy, 0.1), [0, 2, 5])
    np.testing.assert_array_equal(tr._thin(xy, 0.0), np.arange(6))
    # chains: 1 is dropped by 0, so 2 (close to 1 only) stays
    chain = np.array([[0.0, 0.0], [0.08, 0.0], [0.16, 0.0]])
    np.testing.assert_array_equal(tr._thin(chain, 0.1), [0, 2])

    rng = np.random.default_rng(13)
    imxy, refxy, pick = _crowded(rng, nref=300, nim=80)
    doubled = np.vstack([imxy, imxy + rng.normal(0, 0.01, imxy.shape)])
    refcat, imcat = _tables(doubled, refxy)
    ref_idx, im_idx = tr.TangentPlaneMatch(searchrad=2.0, separation=0.1, tolerance=0.3)(
        refcat, imcat, tp_pscale=0.11)
    assert np.all(im_idx < len(imxy))  # the duplicates (second copies) never match
    # a reference star with a neighbour closer than `separation` is thinned away too, and
    # its image source may then match the neighbour: allow a rare wrong match
    correct = ref_idx == pick[im_idx]
    assert correct.sum() >= 0.95 * len(imxy) and (~correct).sum() <= 2


def test_mutual_nearest_rejects_ambiguous_and_far_pairs():
    im = np.array([[0.0, 0.0], [0.3, 0.0], [10.0, 10.0]])
    ref = np.array([[0.1, 0.0], [20.0, 20.0]])
    i_im, i_ref = tr._mutual_nearest(im, ref, tolerance=0.5)
    np.testing.assert_array_equal(i_im, [0])
    np.testing.assert_array_equal(i_ref, [0])
    e_im, e_ref = tr._mutual_nearest(im[:0], ref, tolerance=0.5)
    assert e_im.size == 0 and e_ref.size == 0


def test_footprint_filter():
    # a footprint centred on (10, 20) with corners 0.01 deg away
    fra = np.array([10.0, 10.0 + 0.01 / np.cos(np.radians(20)), 10.0])
    fdec = np.array([20.0, 20.0, 20.01])
    ra = np.array([10.0, 10.0, 10.0, 10.0, 11.0])
    dec = np.array([20.0, 20.009, 20.0109, 20.0125, 20.0])
    keep = tr.footprint_filter(ra, dec, [(fra, fdec)], margin_arcsec=5.0)  # radius 36" + 5"
    np.testing.assert_array_equal(keep, [True, True, True, False, False])
    with pytest.raises(ParameterError, match="margin_arcsec"):
        tr.footprint_filter(ra, dec, [(fra, fdec)], margin_arcsec=-1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(searchrad=0.0), "searchrad must be a finite number > 0"),
    (dict(tolerance=np.nan), "tolerance must be a finite number > 0"),
    (dict(separation=-0.1), "separation must be a finite number >= 0"),
])
def test_matcher_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        tr.TangentPlaneMatch(**kwargs)
