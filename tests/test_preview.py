"""Static previews: NaN-aware downsampling, the percentile stretch, compass directions, PNG output."""

import numpy as np
import pytest

from romancore.preview import compass_directions, downsample, make_preview, percentile_stretch


def test_downsample_block_mean_ignores_nans():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    img[0, 0] = np.nan
    out = downsample(img, (2, 2))
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx(np.mean([1, 4, 5]))
    assert out[1, 1] == pytest.approx(np.mean([10, 11, 14, 15]))
    all_nan = np.full((4, 4), np.nan, dtype=np.float32)
    assert np.isnan(downsample(all_nan, (2, 2))).all()


def test_downsample_keeps_aspect_and_small_images():
    img = np.ones((100, 50), dtype=np.float32)
    assert downsample(img, (10, 10)).shape == (10, 5)
    assert downsample(img, (1000, 1000)).shape == (100, 50)


def test_percentile_stretch_limits():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(200, 200)).astype(np.float32)
    s = percentile_stretch(img, 90.0)
    assert s.min() == 0.0 and s.max() == 1.0
    assert np.mean(s == 0.0) == pytest.approx(0.05, abs=0.002)
    assert np.mean(s == 1.0) == pytest.approx(0.05, abs=0.002)


def _tan_wcs(rotation_deg):
    from romancore.wcs import make_tan_wcs, output_rotation_matrix

    return make_tan_wcs((30.0, -20.0), (50.0, 50.0), 0.11, pc=output_rotation_matrix(rotation_deg),
                        shape=(100, 100))


@pytest.mark.parametrize("rotation", [0.0, 90.0, 30.0])
def test_compass_points_north_and_east(rotation):
    north, east = compass_directions(_tan_wcs(rotation), 50.0, 50.0)
    # rotation = position angle of +y: north is +y rotated by -rotation on the display,
    # east is 90 degrees counter-clockwise from north (east to the left when north is up)
    t = np.radians(rotation)
    assert north == pytest.approx([np.sin(t), np.cos(t)], abs=1e-3)
    assert east == pytest.approx([-np.cos(t), np.sin(t)], abs=1e-3)


def test_png_is_written(tmp_path):
    from romancore.datamodels import ImageModel

    image = ImageModel.create_minimal(shape=(60, 80))
    image.data[...] = np.random.default_rng(1).normal(size=(60, 80))
    image.data[10, 10] = np.nan
    out = make_preview(image, tmp_path / "p.png", (30, 30), compass=False)
    from matplotlib.image import imread

    png = imread(out)
    assert png.shape[:2] == (30, 30)
