"""Step/Pipeline machinery with a test step on ImageModel: run path, cal_step, hooks, saving."""

import numpy as np
import pytest

import romancore.datamodels as dm
from romancore.errors import ParameterError, ReferenceFileError
from romancore.pipeline import Param, RefType, Step
from romancore.pipeline.naming import output_path, with_suffix
from romancore.pipeline.pipeline import Pipeline


class ScaledImage(dm.ImageModel):
    """ImageModel with a test calibration method (the datamodels' facades are not used here)."""

    def scale_by_flat(self, flat_ref, factor=1.0):
        self.data = (np.asarray(self.data) * factor / np.asarray(flat_ref.data)).astype(np.float32)
        return self

    def mutate_step(self, flat_ref, factor=1.0):
        ScaleStep._current.factor = 2.0  # a step must refuse this while running
        return self

    def explode(self, flat_ref, factor=1.0):
        raise ValueError("boom")


class ScaleStep(Step):
    """Divide by the flat and multiply by a factor (test step)."""

    class_alias = "scale"
    method = "scale_by_flat"
    reference_types = (RefType("flat"),)
    cal_step = "flat_field"
    spec = (Param("factor", "float", 1.0, "Multiplier.", min=0.0, exclusive_min=True),)
    _current = None

    def _open_input(self, input):
        data = super()._open_input(input)
        if type(data) is dm.ImageModel:  # files open as ImageModel; add the test method
            data = ScaledImage(data.copy()._tree)
        return data


class TwoScalePipeline(Pipeline):
    """Two scale steps in a row (test pipeline)."""

    class_alias = "two_scale"
    default_suffix = "cal"
    step_defs = (("first", ScaleStep), ("second", ScaleStep))

    def process(self, input, params, provider):
        from romancore.container import open_input

        model = open_input(input)
        for name in ("first", "second"):
            model = self.run_step(name, model, provider, params)
        if params["save_results"]:
            self.save_products(model, {}, params)
        return model


_BASE = {}


def make_image(value=4.0, name="r0001_wfi01_uncal.asdf"):
    if "img" not in _BASE:
        _BASE["img"] = dm.ImageModel.create_minimal(shape=(6, 6), meta={"filename": name})
        _BASE["flat"] = dm.FlatRefModel.create_minimal(shape=(6, 6))
    img = ScaledImage(_BASE["img"].copy()._tree)
    img.data = np.full((6, 6), value, np.float32)
    img.meta.filename = name
    return img


@pytest.fixture
def flat_file(tmp_path):
    make_image()
    flat = _BASE["flat"].copy()
    flat.data = np.full((6, 6), 2.0, np.float32)
    return str(flat.save(tmp_path / "my_flat.asdf"))


@pytest.fixture(autouse=True)
def no_crds(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    monkeypatch.delenv("CRDS_SERVER_URL", raising=False)


def test_suffix_rules():
    assert with_suffix("r0001_wfi01_uncal.asdf", "cal") == "r0001_wfi01_cal.asdf"
    assert with_suffix("r0001_wfi01_dqinit.asdf", "saturation") == "r0001_wfi01_saturation.asdf"
    assert with_suffix("myimage.asdf", "cal") == "myimage_cal.asdf"
    assert with_suffix("r0001_wfi01_cal.asdf", "cat", ".parquet") == "r0001_wfi01_cat.parquet"
    assert with_suffix("files", "coadd") == "files_coadd.asdf"
    assert str(output_path("a_uncal.asdf", "cal", output_dir="out")) == "out/a_cal.asdf"
    # output_file: with an extension it is the primary product's name; without, a base name
    assert str(output_path("a_uncal.asdf", "cal", output_file="x.asdf")) == "x.asdf"
    assert str(output_path("a_uncal.asdf", "coadd", output_file="RDox")) == "RDox_coadd.asdf"
    assert str(output_path("a_uncal.asdf", "cat", output_file="x.asdf", primary=False)) == "x_cat.asdf"


def test_run_and_call_agree_and_record_refs(flat_file):
    a = ScaleStep.call(make_image(), override_flat=flat_file, factor=3.0)
    b = ScaleStep(override_flat=flat_file, factor=3.0).run(make_image())
    np.testing.assert_array_equal(a.data, np.full((6, 6), 6.0, np.float32))
    np.testing.assert_array_equal(a.data, b.data)
    assert a.meta.cal_step.flat_field == "COMPLETE"
    assert a.meta.ref_file.flat == "my_flat.asdf"


def test_skip_and_na_override(flat_file):
    out = ScaleStep.call(make_image(), skip=True)
    assert out.meta.cal_step.flat_field == "SKIPPED"
    np.testing.assert_array_equal(out.data, 4.0)
    out = ScaleStep.call(make_image(), override_flat="N/A")
    assert out.meta.cal_step.flat_field == "SKIPPED"


def test_missing_reference_message():
    with pytest.raises(ReferenceFileError) as err:
        ScaleStep.call(make_image())
    msg = str(err.value)
    assert "FLAT" in msg and "override_flat" in msg and "CRDS" in msg


def test_failure_marks_failed(flat_file, monkeypatch):
    monkeypatch.setattr(ScaleStep, "method", "explode")
    img = make_image()
    with pytest.raises(ValueError, match="boom"):
        ScaleStep.call(img, override_flat=flat_file)
    assert img.meta.cal_step.flat_field == "FAILED"


def test_parameters_frozen_while_running(flat_file, monkeypatch):
    monkeypatch.setattr(ScaleStep, "method", "mutate_step")
    step = ScaleStep(override_flat=flat_file)
    monkeypatch.setattr(ScaleStep, "_current", step)
    with pytest.raises(ParameterError, match="cannot change while the step runs"):
        step.run(make_image())
    assert step.factor == 1.0
    step.factor = 5.0  # allowed between runs, and validated
    with pytest.raises(ParameterError, match="factor"):
        step.factor = -1.0


seen = []


def record_hook(model):
    seen.append(float(np.asarray(model.data)[0, 0]))


def double_hook(model):
    model.data = np.asarray(model.data) * 2
    return model


def test_hooks_callables_and_dotted_paths(flat_file):
    seen.clear()
    out = ScaleStep.call(make_image(), override_flat=flat_file,
                         pre_hooks=[record_hook, "tests.test_pipeline.double_hook"],
                         post_hooks=[record_hook])
    # pre: saw 4, doubled to 8; step: 8/2 = 4; post saw 4
    assert seen == [4.0, 4.0]
    np.testing.assert_array_equal(out.data, 4.0)
    with pytest.raises(ParameterError, match="pre_hooks"):
        ScaleStep(pre_hooks=["no_such_module.nothing"])


def test_save_results_names(flat_file, tmp_path):
    ScaleStep.call(make_image(), override_flat=flat_file, save_results=True, output_dir=str(tmp_path / "o"))
    assert (tmp_path / "o" / "r0001_wfi01_scale.asdf").is_file()
    pipe = TwoScalePipeline(steps={"first": {"override_flat": flat_file, "factor": 2.0},
                                   "second": {"override_flat": flat_file, "save_results": True}},
                            save_results=True, output_dir=str(tmp_path / "p"))
    out = pipe.run(make_image())
    np.testing.assert_array_equal(out.data, 2.0)  # 4*2/2 = 4, then /2 = 2
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == ["r0001_wfi01_cal.asdf", "r0001_wfi01_scale.asdf"]
    reopened = dm.open(tmp_path / "p" / "r0001_wfi01_cal.asdf")
    assert reopened.meta.cal_step.flat_field == "COMPLETE"


def test_list_input_gives_container(flat_file):
    from romancore.container import ModelContainer

    out = ScaleStep.call([make_image(2.0), make_image(6.0)], override_flat=flat_file)
    assert isinstance(out, ModelContainer) and len(out) == 2
    assert [float(np.asarray(m.data)[0, 0]) for m in out] == [1.0, 3.0]


def test_elp_and_mos_tables():
    from romancore.pipeline import ExposurePipeline, MosaicPipeline

    assert [n for n, _ in ExposurePipeline.step_defs] == [
        "dq_init", "saturation", "refpix", "dark_decay", "wfi18_transient", "linearity", "ramp_fit",
        "dark_current", "assign_wcs", "photom", "flat_field", "source_catalog", "tweakreg"]
    assert [n for n, _ in MosaicPipeline.step_defs] == [
        "flux", "skymatch", "outlier_detection", "resample", "source_catalog"]
    elp = ExposurePipeline()
    assert elp.ramp_fit.algorithm == "ols_cas22"
    assert elp._applicable("WFI_SPECTRAL")[-1] == "photom"
    assert elp._applicable("WFI_IMAGE")[-1] == "tweakreg"
    mos = MosaicPipeline(resample_on_skycell=False, steps={"outlierdetection": {"snr": "5 4"}})
    assert mos.outlier_detection.snr == (5.0, 4.0) and mos.outlier_detection.scale == (0.5, 0.4)
    assert mos.resample.resample_on_skycell is False
    for name in ("roman_hlp", "highlevel_pipeline", "HighLevelPipeline", "mosaic_pipeline"):
        from romancore.pipeline import resolve_class

        assert resolve_class(name) is MosaicPipeline
