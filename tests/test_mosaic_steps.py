"""Mosaic container steps: grids, skycells, single/on-disk modes, errors, memory, intermediates."""

from __future__ import annotations

import json
import logging
import tracemalloc

import asdf
import numpy as np
import pytest
from test_mosaic_pipeline import CRVAL, PHOTMJSR, SCALE, make_image

from romancore.associations import asn_from_list, save_asn
from romancore.container import ModelContainer
from romancore.datamodels import MosaicModel
from romancore.dq import pixel
from romancore.errors import OutputTooLargeError, RomancoreError
from romancore.outlier_detection import outlier_detection
from romancore.resample import resample
from romancore.skymatch import skymatch
from romancore.wcs import make_tan_wcs

SMALL = (64, 64)


class _Records(logging.Handler):
    """Collects the messages of one logger (independent of other tests' logging setup)."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    @property
    def text(self):
        return "\n".join(self.messages)


def _images(n, seed=1, shape=SMALL, **kw):
    rng = np.random.default_rng(seed)
    return [make_image(k, rng, shape=shape, **kw)[0] for k in range(n)]


def _write_asn(tmp_path, models, **asn_kw):
    names = []
    for m in models:
        p = tmp_path / m.meta.filename
        m.save(p)
        names.append(str(p))
    asn = asn_from_list(names, "r0000101_f158_mosaic", **asn_kw)
    return save_asn(asn, tmp_path / "asn.json")


def test_single_member_association_on_disk(tmp_path):
    from romancore.pipeline import MosaicPipeline

    (model,) = _images(1, seed=3)
    asn = _write_asn(tmp_path, [model])
    out = tmp_path / "out"
    mosaic = MosaicPipeline(resample_on_skycell=False, on_disk=True, save_results=True,
                            output_dir=str(out), steps={"source_catalog": {"skip": True}}).run(str(asn))
    assert mosaic.meta.cal_step.outlier_detection == "SKIPPED"
    assert mosaic.meta.cal_step.resample == "COMPLETE"
    assert mosaic.meta.cal_step.source_catalog == "SKIPPED"
    assert mosaic.meta.association.name == "asn.json"
    assert mosaic.meta.resample.members == [model.meta.filename]
    assert (out / "r0000101_f158_mosaic_coadd.asdf").is_file()
    # one flat-sky image, psr 1: the mosaic reproduces the surface brightness
    good = np.asarray(mosaic.weight) > 0
    assert np.nanmedian(np.asarray(mosaic.data)[good]) == pytest.approx(PHOTMJSR * 1.0, rel=0.02)


def test_cli_skip_source_catalog(tmp_path):
    from romancore.cli import mos

    asn = _write_asn(tmp_path, _images(2, seed=4))
    out = tmp_path / "out"
    rc = mos.main([str(asn), f"--output_dir={out}", "--steps.source_catalog.skip=True",
                   "--resample_on_skycell=False"])
    assert rc == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["r0000101_f158_mosaic_coadd.asdf"]
    with MosaicModel(out / files[0]) as m:
        assert m.meta.cal_step.source_catalog == "SKIPPED"
        assert m.meta.cal_step.outlier_detection == "COMPLETE"


def test_requested_grid_without_overlap_is_an_error():
    container = ModelContainer(_images(2, seed=5))
    with pytest.raises(RomancoreError, match="none of the 2 input images overlaps"):
        resample(container, crval=(CRVAL[0] + 1.0, CRVAL[1]), crpix=(25.0, 25.0), output_shape=(50, 50),
                 rotation=0.0, pixel_scale=SCALE, resample_on_skycell=False)


def test_spectral_inputs_refused():
    from romancore.pipeline import MosaicPipeline

    models = _images(2, seed=6)
    models[1].meta.exposure.type = "WFI_GRISM"
    with pytest.raises(RomancoreError, match="WFI_GRISM exposure: the mosaic pipeline processes imaging"):
        MosaicPipeline(resample_on_skycell=False).run(ModelContainer(models))


def test_missing_wcs_names_the_file():
    models = _images(2, seed=7)
    models[1].meta.wcs = None
    with pytest.raises(RomancoreError, match=models[1].meta.filename):
        skymatch(ModelContainer(models))


def test_skymatch_subtract_and_local():
    models = _images(3, seed=8, sky=2.0)
    before = [np.array(m.data) for m in models]
    c = skymatch(ModelContainer(models), skymethod="local", skystat="median", subtract=True)
    for m, b in zip(c, before, strict=True):
        assert m.meta.background.subtracted is True and m.meta.background.method == "local"
        assert m.meta.background.level == pytest.approx(2.0, abs=0.01)
        assert np.allclose(b - np.asarray(m.data), m.meta.background.level, atol=1e-5)


def _peak_bytes(n):
    models = _images(n, seed=9, shape=(96, 96))
    container = ModelContainer(models)
    opts = dict(crval=CRVAL, crpix=(59.5, 59.5), output_shape=(120, 120), rotation=0.0,
                pixel_scale=SCALE, resample_on_skycell=False, blendheaders=False)
    tracemalloc.start()
    try:
        mosaic = resample(container, **opts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mosaic.data.shape == (120, 120)
    return peak


def test_peak_memory_does_not_grow_with_inputs():
    _peak_bytes(2)  # warm caches (imports, lookup tables)
    # the least of two runs each: one-off allocations of other libraries (caches filled
    # lazily, e.g. by earlier tests) must not be counted as growth with N
    p2 = min(_peak_bytes(2), _peak_bytes(2))
    p6 = min(_peak_bytes(6), _peak_bytes(6))
    assert p6 <= 1.10 * p2, (p2, p6)


def test_single_outputs_and_on_disk_container():
    models = _images(3, seed=10)
    for in_memory in (True, False):
        out = resample(ModelContainer([m.copy() for m in models]), single=True, in_memory=in_memory,
                       resample_on_skycell=False)
        assert isinstance(out, ModelContainer) and len(out) == 3 and out.on_disk is (not in_memory)
        shapes = set()
        for k, m in enumerate(out):
            assert isinstance(m, MosaicModel)
            assert m.meta.resample.members == [models[k].meta.filename]
            assert m.context.shape[0] == 1
            # each output holds exactly its own input: weight > 0 where context bit 0 is set
            assert np.array_equal(np.asarray(m.weight) > 0, (np.asarray(m.context)[0] & 1) == 1)
            shapes.add(m.data.shape)
        assert len(shapes) == 1


def test_skycell_from_association(tmp_path):
    """An association with skycell_wcs_info resamples onto that grid (0.055"/pix: psr 0.5)."""
    models = _images(2, seed=11)
    info = {"name": "150p02x10y10", "pixel_scale": 0.055 / 3600.0, "ra_projection_center": CRVAL[0],
            "dec_projection_center": CRVAL[1], "x0_projection": 70.0, "y0_projection": 70.0,
            "ra_center": CRVAL[0], "dec_center": CRVAL[1], "nx": 140, "ny": 140, "orientat": 0.0,
            "orientat_projection_center": 0.0}
    asn = _write_asn(tmp_path, models, target="150p02x10y10")
    tree = json.loads(asn.read_text())
    tree["skycell_wcs_info"] = json.dumps(info)
    asn.write_text(json.dumps(tree))
    container = ModelContainer(str(asn))
    mosaic = resample(container, resample_on_skycell=True)
    assert mosaic.data.shape == (140, 140)
    assert mosaic.meta.wcsinfo.skycell_name == "150p02x10y10"
    assert mosaic.meta.resample.pixel_scale_ratio == pytest.approx(0.5, rel=1e-3)
    assert mosaic.meta.wcsinfo.ra_ref == pytest.approx(CRVAL[0])
    # surface brightness is preserved on the finer grid (no flux step here: DN/s, sky 1.0)
    good = np.asarray(mosaic.weight) > 0
    assert np.nanmedian(np.asarray(mosaic.data)[good]) == pytest.approx(1.0, rel=0.02)
    # skycell off: the grid is computed from the inputs at the input scale
    other = resample(ModelContainer(str(asn)), resample_on_skycell=False)
    assert other.meta.resample.pixel_scale_ratio == 1.0 and other.meta.wcsinfo.skycell_name == "none"


def test_output_wcs_file(tmp_path):
    models = _images(2, seed=12)
    grid = make_tan_wcs(CRVAL, (40.0, 40.0), SCALE, shape=(80, 90))
    path = tmp_path / "grid.asdf"
    asdf.AsdfFile({"wcs": grid}).write_to(path)
    mosaic = resample(ModelContainer(models), output_wcs=str(path), resample_on_skycell=False)
    assert mosaic.data.shape == (80, 90)
    assert mosaic.meta.resample.pixel_scale_ratio == pytest.approx(1.0, rel=1e-3)
    sized = resample(ModelContainer(models), output_wcs=str(path), output_shape=(50, 60))
    assert sized.data.shape == (60, 50)


def test_all_flagged_gives_nan_mosaic_with_warning():
    models = _images(2, seed=13)
    for m in models:
        m.dq = np.full(SMALL, pixel.DO_NOT_USE, np.uint32)
    with _Records("romancore.resample") as log:
        mosaic = resample(ModelContainer(models), resample_on_skycell=False)
    mosaic.validate()
    assert np.isnan(np.asarray(mosaic.data)).all()
    assert "no valid pixel" in log.text


def test_allowed_memory():
    with pytest.raises(OutputTooLargeError):
        resample(ModelContainer(_images(2, seed=14)), allowed_memory=1e-12, resample_on_skycell=False)


def test_weight_type_exptime_and_fillval():
    models = _images(2, seed=15)
    mosaic = resample(ModelContainer(models), weight_type="exptime", fillval="-1", resample_on_skycell=False)
    w = np.asarray(mosaic.weight)
    assert mosaic.meta.resample.weight_type == "exptime"
    # weights are exposure times (139 s per covering input, pixfrac 1)
    assert np.nanmax(w) == pytest.approx(2 * 139.0, rel=1e-4)
    assert (np.asarray(mosaic.data)[w == 0] == -1).all() and (w == 0).any()


def _cr_pair(seed, shape=SMALL, same_grid=False):
    rng = np.random.default_rng(seed)
    models, crs = [], []
    wcs = make_tan_wcs(CRVAL, (31.5, 31.5), SCALE, shape=shape) if same_grid else None
    for k in range(3):
        m, cr = make_image(k, rng, shape=shape, n_cr=10, wcs=wcs, sky=1.0)
        models.append(m)
        crs.append(cr)
    return models, crs


@pytest.mark.parametrize("resample_data", [True, False])
def test_outlier_paths_flag_crs(resample_data, tmp_path):
    models, crs = _cr_pair(16, same_grid=not resample_data)
    c = outlier_detection(ModelContainer(models), resample_data=resample_data,
                          save_intermediate_results=resample_data, output_dir=str(tmp_path))
    bits = np.uint32(pixel.OUTLIER | pixel.DO_NOT_USE)
    found = total = 0
    for m, cr in zip(c, crs, strict=True):
        flags = (np.asarray(m.dq) & bits) == bits
        found += int(flags[cr].sum())
        total += int(cr.sum())
        assert m.meta.cal_step.outlier_detection == "COMPLETE"
        assert m.meta.outlier_detection.good_bits == "0"
    # where only two of the three exposures overlap, the median is the mean of two values
    # and holds half of a CR; the blot keeps that (sharp) bump, so a weak CR there may pass
    assert found >= total - 1, (found, total)
    if resample_data:
        names = sorted(p.name for p in tmp_path.iterdir())
        assert sum(n.endswith("_blot.asdf") for n in names) == 3
        assert sum(n.endswith("_median.asdf") for n in names) == 1


def test_outlier_skipped_for_one_input():
    (m,) = _images(1, seed=17)
    with _Records("romancore.outlier_detection") as log:
        c = outlier_detection(ModelContainer([m]))
    assert c[0].meta.cal_step.outlier_detection == "SKIPPED"
    assert "at least 2 input images" in log.text


def test_unsubtracted_sky_is_removed_before_the_median():
    """Skies 1.0 vs 3.0 DN/s: with the levels recorded, no sky pixel is flagged."""
    rng = np.random.default_rng(18)
    models = []
    for k, sky in enumerate((1.0, 3.0, 2.0)):
        m, _ = make_image(k, rng, shape=SMALL, sky=sky)
        m.meta.background = {"level": sky, "method": "local", "subtracted": False}
        models.append(m)
    c = outlier_detection(ModelContainer(models))
    flagged = [int(((np.asarray(m.dq) & pixel.OUTLIER) != 0).sum()) for m in c]
    assert max(flagged) <= 3, flagged


def test_skycell_target_looked_up_in_skycells_reference(tmp_path):
    """An association naming only its skycell (target) uses the SKYCELLS table's grid."""
    from romancore.resample import output_grid
    from romancore.skycells import find_skycells, make_skycell_table, skycell_wcs
    from romancore.wcs import footprint

    models = _images(2, seed=19)
    table = make_skycell_table(center=CRVAL, radius=0.05)
    name = find_skycells(table, footprint(models[0].meta.wcs))[0]
    ref = {"meta": table.meta, "projection_regions": table.projection_regions, "skycells": table.skycells}
    asn = _write_asn(tmp_path, models, target=name)
    grid = output_grid(ModelContainer(str(asn)), ref, resample_on_skycell=True)
    expected, shape = skycell_wcs(table, name)
    assert grid.source == "skycell" and grid.skycell_name == name and grid.shape == shape == (5000, 5000)
    assert grid.pixel_scale_ratio == pytest.approx(0.5, rel=1e-3)
    x, y = grid.world_to_pixel(*CRVAL)
    assert np.allclose((x, y), expected.invert(*CRVAL, with_bounding_box=False), atol=1e-6)
    # without the reference the grid falls back to one computed from the inputs
    fallback = output_grid(ModelContainer(str(asn)), None, resample_on_skycell=True)
    assert fallback.source == "inputs"


# ----------------------------------------------------------------------------- file-backed members
def _file_images(tmp_path, n, shape=(96, 96)):
    from test_mosaic_pipeline import exposure_wcs

    rng = np.random.default_rng(21)
    # two alternating pointings: every n has the same footprint, hence the same grids
    models = [make_image(k, rng, shape=shape, wcs=exposure_wcs(k % 2, shape), n_cr=5)[0] for k in range(n)]
    return models, _write_asn(tmp_path, models)


def test_file_backed_results_survive_release(tmp_path):
    """flux / skymatch(subtract) / outlier DQ of file-backed members persist after their pages are released."""
    from romancore.flux import flux
    from romancore.resample import release_member

    models, asn = _file_images(tmp_path, 3)
    container = ModelContainer(str(asn))
    flux(container)
    skymatch(container, subtract=True)
    outlier_detection(container, resample_on_skycell=False)
    before = [np.array(container[i].dq) for i in range(len(models))]
    assert any(((b & pixel.OUTLIER) != 0).any() for b in before)
    for i, original in enumerate(models):
        m = container[i]
        release_member(m)  # again: values come back from the scratch files
        np.testing.assert_array_equal(m.dq, before[i])
        level = m.meta.background.level
        assert m.meta.background.subtracted is True and np.isfinite(level)
        np.testing.assert_allclose(m.data, original.data * PHOTMJSR - np.float32(level), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m.err, original.err * PHOTMJSR, rtol=1e-6)
        np.testing.assert_allclose(m.var_rnoise, original.var_rnoise * PHOTMJSR**2, rtol=1e-6)
        assert np.all((np.asarray(m.dq) & np.asarray(original.dq)) == np.asarray(original.dq))
        assert m.meta.cal_step.flux == "COMPLETE" and m.meta.cal_step.outlier_detection == "COMPLETE"
    # the input files are never changed
    import romancore as rc

    for i, original in enumerate(models):
        on_disk = rc.open(container.paths()[i])
        np.testing.assert_array_equal(on_disk.data, original.data)
        np.testing.assert_array_equal(on_disk.dq, original.dq)


def _pipeline_peak(tmp_path, n):
    from romancore.pipeline import MosaicPipeline

    folder = tmp_path / f"n{n}"
    folder.mkdir()
    _, asn = _file_images(folder, n, shape=(320, 320))
    tracemalloc.start()
    try:
        mosaic = MosaicPipeline.call(str(asn), resample_on_skycell=False,
                                     steps={"source_catalog": {"skip": True}})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(mosaic.data).any()
    return peak, mosaic.data.shape


def test_pipeline_peak_memory_does_not_grow_with_inputs(tmp_path):
    """Whole mosaic pipeline on file-backed inputs: no input plane per member stays allocated.

    The traced peak (numpy arrays, metadata) of 6 inputs exceeds that of 2 by less than
    3/4 of one 320² float32 plane per extra input (metadata only; keeping any per-member
    array such as a new DQ plane would exceed it), and by less than 15 % overall.
    """
    (tmp_path / "warm").mkdir()
    _pipeline_peak(tmp_path / "warm", 2)  # imports and lookup tables
    p2, shape2 = _pipeline_peak(tmp_path, 2)
    p6, shape6 = _pipeline_peak(tmp_path, 6)
    assert shape2 == shape6
    plane = 320 * 320 * 4
    assert (p6 - p2) / 4 < 0.75 * plane, (p2, p6)
    assert p6 <= 1.15 * p2, (p2, p6)


def test_store_array_keeps_a_scratch_array_without_copying(tmp_path):
    """A file-backed member takes a scratch array as it is (no second scratch file, no copy)."""
    from romancore.container import ModelContainer
    from romancore.resample import release_member, scratch_array, store_array

    models, asn = _file_images(tmp_path, 1)
    m = ModelContainer(str(asn))[0]
    scratch = scratch_array(np.shape(m.data), np.float32)
    scratch[...] = 7.0
    out = store_array(m, "data", scratch)
    assert out is scratch and np.shares_memory(np.asarray(m.data), scratch)
    release_member(m)
    np.testing.assert_array_equal(m.data, 7.0)
    # a plain array is copied into a new scratch array
    plain = np.full(np.shape(m.data), 3.0, np.float32)
    out = store_array(m, "err", plain)
    assert out is not plain and not np.shares_memory(out, plain)
    np.testing.assert_array_equal(m.err, 3.0)
