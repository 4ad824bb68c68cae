"""Datamodels: opening real Roman files, creation, validation, access, round trips, bad input."""

import shutil

import numpy as np
import pytest
from astropy.time import Time

import romancore as rc
from romancore import datamodels as dm
from romancore.errors import FileFormatError, ValidationError, WrongModelError

FIXTURE_CLASSES = {
    "r0000101001001001001_0001_wfi01_f158_uncal.asdf": (dm.ScienceRawModel, (6, 64, 64), "uint16"),
    "r0000101001001001001_0001_wfi01_f158_cal.asdf": (dm.ImageModel, (64, 64), "float32"),
    "r00001_p_v01001001001_270p65x48y69_f158_coadd.asdf": (dm.MosaicModel, (64, 64), "float32"),
}
REF_CLASSES = {
    "apcorr": dm.ApcorrRefModel, "dark": dm.DarkRefModel, "darkdecaysignal": dm.DarkDecaySignalRefModel,
    "distortion": dm.DistortionRefModel, "flat": dm.FlatRefModel, "gain": dm.GainRefModel,
    "inverselinearity": dm.InverseLinearityRefModel, "linearity": dm.LinearityRefModel,
    "mask": dm.MaskRefModel, "matable": dm.MATableRefModel, "pixelarea": dm.PixelareaRefModel,
    "readnoise": dm.ReadnoiseRefModel, "refpix": dm.RefpixRefModel, "saturation": dm.SaturationRefModel,
    "skycells": dm.SkycellsRefModel, "wfiimgphotom": dm.WfiImgPhotomRefModel,
}


@pytest.mark.parametrize("name", sorted(FIXTURE_CLASSES))
def test_fixture_products_open_to_the_right_class(data_dir, name):
    cls, shape, dtype = FIXTURE_CLASSES[name]
    with rc.open(data_dir / name) as model:
        assert type(model) is cls
        assert model.data.shape == shape
        assert model.data.dtype == np.dtype(dtype)
        assert model.meta.telescope == "ROMAN"
        assert isinstance(model.meta.file_date, Time)


@pytest.mark.parametrize("reftype", sorted(REF_CLASSES))
def test_fixture_reference_files_open_to_the_right_class(refs_dir, reftype):
    path = refs_dir / f"roman_wfi_{reftype}_fixture.asdf"
    with rc.open(path) as model:
        assert type(model) is REF_CLASSES[reftype]
    assert dm.class_for_reftype(REF_CLASSES[reftype].reftype) is REF_CLASSES[reftype]


def test_l1_opens_lazily_with_real_objects(uncal_path):
    raw = rc.open(uncal_path)
    # arrays are not read by opening
    assert type(raw._tree["data"]).__name__ == "NDArrayType"
    assert raw.meta.exposure.read_pattern[1] == [2, 3]
    assert isinstance(raw.meta.exposure.start_time, Time)
    assert raw["meta.exposure.nresultants"] == 6
    assert raw.amp33.shape == (6, 64, 128)


def test_cal_fixture_wcs_is_a_gwcs(cal_path):
    import gwcs

    image = dm.ImageModel(cal_path)
    assert isinstance(image.meta.wcs, gwcs.WCS)
    ra, dec = image.meta.wcs(10.0, 20.0)
    assert np.isfinite(ra) and np.isfinite(dec)


def test_constructor_refuses_other_kinds(cal_path, uncal_path):
    with pytest.raises(WrongModelError, match="expected RampModel, .* holds an ImageModel"):
        dm.RampModel(cal_path)
    with pytest.raises(WrongModelError, match="ScienceRawModel"):
        dm.ImageModel(uncal_path)


def test_create_minimal_shapes_and_validity():
    ramp = dm.RampModel.create_minimal(shape=(6, 24, 20))
    assert ramp.data.dtype == np.float32 and ramp.data.shape == (6, 24, 20)
    assert ramp.groupdq.dtype == np.uint8 and ramp.pixeldq.shape == (24, 20)
    assert ramp.amp33.shape == (6, 24, 128)
    assert ramp.border_ref_pix_top.shape == (6, 4, 20)
    assert ramp.dq_border_ref_pix_left.shape == (24, 4)
    image = dm.ImageModel.create_minimal(shape=(16, 16), meta={"instrument": {"detector": "WFI07"}})
    assert image.meta.instrument.detector == "WFI07"
    assert image.meta.model_type == "ImageModel"
    assert image.meta.exposure.start_time == Time("2020-01-01T00:00:00")
    image.validate()
    mosaic = dm.MosaicModel.create_minimal(shape=(8, 9))
    assert mosaic.context.shape == (1, 8, 9) and mosaic.context.dtype == np.uint32


def test_assigning_a_wrong_type_names_path_value_and_type():
    image = dm.ImageModel.create_minimal(shape=(4, 4))
    with pytest.raises(ValidationError) as info:
        image.meta.wcsinfo.ra_ref = "foo"
    text = str(info.value)
    assert "meta.wcsinfo.ra_ref" in text and "'foo'" in text and "number" in text
    with pytest.raises(ValidationError, match="meta.instrument.detector"):
        image["meta.instrument.detector"] = "WFI19"
    with pytest.raises(ValidationError, match="dtype is float64"):
        image.data = np.zeros((4, 4))
    with pytest.raises(ValidationError, match="dimensions"):
        image.dq = np.zeros((2, 4, 4), dtype=np.uint32)
    image.meta.wcsinfo.ra_ref = 12.5  # a right value is accepted
    assert image.meta.wcsinfo.ra_ref == 12.5


def test_missing_nodes_are_created_on_assignment():
    image = dm.ImageModel.create_minimal(shape=(4, 4))
    image.meta.cal_step.flat_field = "COMPLETE"
    image.meta["background.level"] = 0.5
    assert image["meta.cal_step.flat_field"] == "COMPLETE"
    assert image.meta.background.level == 0.5
    with pytest.raises(ValidationError):
        image.meta.cal_step.photom = "DONE"


def test_copy_is_deep():
    image = dm.ImageModel.create_minimal(shape=(4, 4))
    other = image.copy()
    other.data[0, 0] = 7
    other.meta.instrument.detector = "WFI02"
    assert image.data[0, 0] == 0
    assert image.meta.instrument.detector == "WFI01"


def test_info_and_search(capsys):
    image = dm.ImageModel.create_minimal(shape=(4, 4))
    image.meta.cal_step.flat_field = "COMPLETE"
    text = image.info(max_rows=None)
    assert "meta.instrument.detector" in text and "array float32 (4, 4)" in text
    assert image.search("cal_step") == {"meta.cal_step.flat_field": "COMPLETE"}


@pytest.mark.parametrize(
    "cls, shape",
    [(dm.ScienceRawModel, (3, 12, 12)), (dm.RampModel, (3, 12, 12)), (dm.ImageModel, (10, 11)),
     (dm.MosaicModel, (9, 7)), (dm.SegmentationMapModel, (5, 5)), (dm.FlatRefModel, (6, 6)),
     (dm.GainRefModel, (6, 6)), (dm.LinearityRefModel, (6, 6))],
)
def test_round_trip_is_exact(tmp_path, cls, shape):
    rng = np.random.default_rng(0)
    model = cls.create_minimal(shape=shape)
    for name, value in list(model._tree.items()):
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "f":
                value[...] = rng.normal(size=value.shape)
            else:
                value[...] = rng.integers(0, np.iinfo(value.dtype).max, size=value.shape, dtype=value.dtype)
    path = model.save(tmp_path / "x.asdf")
    back = rc.open(path)
    assert type(back) is cls
    for name, value in model._tree.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(back, name), value)
            assert getattr(back, name).dtype == value.dtype
    assert back.meta.to_dict().keys() == model.meta.to_dict().keys()
    if not isinstance(model, dm.models.ReferenceFileModel):
        assert back.meta.filename == "x.asdf"


def test_catalog_model_round_trip(tmp_path):
    from astropy.table import Table

    cat = dm.ImageSourceCatalogModel.create_minimal()
    cat.source_catalog = Table({"label": np.arange(3), "flux": np.array([1.0, 2.5, 3.0])})
    back = rc.open(cat.save(tmp_path / "c_cat.asdf"))
    assert type(back) is dm.ImageSourceCatalogModel
    assert list(back.source_catalog["flux"]) == [1.0, 2.5, 3.0]


def test_fixture_round_trip_keeps_everything(tmp_path, cal_path):
    image = rc.open(cal_path)
    out = image.save(tmp_path / "copy_cal.asdf")
    back = rc.open(out)
    for name in ("data", "dq", "err", "var_poisson", "amp33"):
        np.testing.assert_array_equal(getattr(back, name), getattr(image, name))
    assert back.meta.wcsinfo.to_dict() == image.meta.wcsinfo.to_dict()
    assert back.meta.calibration_software_name == "romancore"


def test_saved_files_read_with_plain_asdf(tmp_path):
    import warnings

    import asdf

    image = dm.ImageModel.create_minimal(shape=(4, 4))
    path = image.save(tmp_path / "plain_cal.asdf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with asdf.open(path) as af:
            node = af.tree["roman"]
            assert node._tag == "asdf://stsci.edu/datamodels/roman/tags/wfi_image-2.1.0"
            assert np.asarray(node["data"]).shape == (4, 4)


def test_save_refuses_to_overwrite_source_and_never_touches_input(tmp_path, cal_path):
    local = tmp_path / "in_cal.asdf"
    shutil.copy(cal_path, local)
    before = local.read_bytes()
    image = rc.open(local)
    image.data[0, 0] = 1234.0  # copy-on-write: the file on disk does not change
    with pytest.raises(FileFormatError, match="refusing to overwrite"):
        image.save(local)
    assert local.read_bytes() == before
    image.save(local, overwrite=True)
    assert rc.open(local).data[0, 0] == 1234.0


def test_invalid_model_is_not_written(tmp_path):
    image = dm.ImageModel.create_minimal(shape=(4, 4))
    image._tree["dq"] = np.zeros((4, 4), dtype=np.float32)  # bypass assignment checks
    with pytest.raises(ValidationError, match="dq"):
        image.save(tmp_path / "bad_cal.asdf")
    assert list(tmp_path.iterdir()) == []


def test_missing_required_metadata_is_reported(tmp_path, cal_path):
    image = rc.open(cal_path)
    del image.meta.exposure.start_time
    path = tmp_path / "x_cal.asdf"
    with pytest.raises(ValidationError, match="start_time"):
        image.save(path)
    assert not path.exists()


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "not_asdf", "missing"])
def test_bad_files_raise_clear_errors(tmp_path, cal_path, kind):
    path = tmp_path / "bad.asdf"
    raw = cal_path.read_bytes()
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "garbage":
        path.write_bytes(raw[:200] + b"\x00\xff" * 50 + raw[300:])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_asdf":
        path.write_text("SIMPLE  =                    T")
    with pytest.raises(FileFormatError) as info:
        model = rc.open(path)
        model.data.sum()  # reading must fail clearly too
    assert str(path) in str(info.value)


def test_get_crds_parameters(uncal_path):
    params = rc.open(uncal_path).get_crds_parameters()
    assert params["roman.meta.instrument.detector"] == "WFI01"
    assert params["roman.meta.instrument.optical_element"] == "F158"
    assert params["roman.meta.exposure.type"] == "WFI_IMAGE"
    assert params["roman.meta.exposure.start_time"] == "2027-03-01 00:00:00"


def test_release_arrays_reads_them_again(tmp_path):
    image = dm.ImageModel.create_minimal(shape=(6, 5))
    image.data[...] = 3.0
    path = image.save(tmp_path / "r_cal.asdf")
    back = rc.open(path)
    first = back.data
    assert type(back._tree["data"]).__name__ != "NDArrayType"
    assert back.release_arrays() >= 1
    assert type(back._tree["data"]).__name__ == "NDArrayType"
    again = back.data
    assert again is not first
    np.testing.assert_array_equal(again, first)
    assert dm.ImageModel.create_minimal(shape=(2, 2)).release_arrays() == 0


@pytest.mark.parametrize("suffix", [".ecsv", ".parquet"])
def test_catalog_export(tmp_path, suffix):
    from astropy.table import Table

    cat = dm.ImageSourceCatalogModel.create_minimal()
    cat.source_catalog = Table({"label": np.arange(3), "kron_flux": np.array([1.0, 2.5, 3.0])})
    out = cat.export(tmp_path / f"c_cat{suffix}")
    back = Table.read(out)
    assert list(back["kron_flux"]) == [1.0, 2.5, 3.0]
    with pytest.raises(FileFormatError, match="exists"):
        cat.export(out)
    with pytest.raises(FileFormatError, match="ecsv or .parquet"):
        cat.export(tmp_path / "c_cat.fits")


def test_assigned_arrays_survive_release(tmp_path):
    image = dm.ImageModel.create_minimal(shape=(4, 4))
    path = image.save(tmp_path / "s_cal.asdf")
    back = rc.open(path)
    _ = back.dq
    back.dq = np.full((4, 4), 7, dtype=np.uint32)
    back.release_arrays()
    assert (back.dq == 7).all()
