"""Typed parameters: coercion, bad values, precedence, parameter-file round trips."""

import pytest

from romancore.errors import ParameterError
from romancore.pipeline import ExposurePipeline, FlatFieldStep, MosaicPipeline, Param, docs_table
from romancore.pipeline.config import load_config


def test_coercion_from_strings():
    assert Param("a", "bool", False, "").coerce("yes") is True
    assert Param("a", "int", 0, "").coerce("3") == 3
    assert Param("a", "float", 0.0, "", nullable=True).coerce("none") is None
    assert Param("a", "float_list", (1.0, 2.0), "", length=2).coerce("4.0,3") == (4.0, 3.0)
    assert Param("a", "option", "x", "", choices=("ols_cas22", "likely")).coerce("OLS_CAS22") == "ols_cas22"
    assert Param("a", "bits", "0", "").coerce("~DO_NOT_USE+NON_SCIENCE") == "~DO_NOT_USE+NON_SCIENCE"


@pytest.mark.parametrize("name,value,fragment", [
    ("ramp_fit.algorithm", "ols", "one of 'ols_cas22'"),
    ("outlier_detection.maskpt", "1.5", "<= 1.0"),
    ("outlier_detection.snr", "4", "needs 2 values"),
    ("skymatch.dqbits", "NOT_A_FLAG", "DQ bit specification"),
    ("source_catalog.npixels", "2.5", "an integer"),
    ("flat_field.include_var_flat", "maybe", "true or false"),
])
def test_bad_values_name_step_param_value_rule(name, value, fragment):
    step, param = name.split(".")
    cls = MosaicPipeline if step in ("outlier_detection", "skymatch") else ExposurePipeline
    with pytest.raises(ParameterError) as err:
        cls(steps={step: {param: value}})
    msg = str(err.value)
    assert step in msg and param in msg and repr(value) in msg and fragment in msg


def test_unknown_parameter_and_step():
    with pytest.raises(ParameterError, match="unknown parameter 'nope'.*known parameters"):
        ExposurePipeline(steps={"ramp_fit": {"nope": 1}})
    with pytest.raises(ParameterError, match="unknown step 'jump'"):
        ExposurePipeline(steps={"jump": {"skip": True}})


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_precedence_code_file_keywords(tmp_path):
    cfg = _write(tmp_path / "p.yaml", """
class: romancal.pipeline.exposure_pipeline.ExposurePipeline
name: ExposurePipeline
parameters: {save_calibrated_ramp: true, output_use_model: false}
steps:
  - class: romancal.ramp_fitting.ramp_fit_step.RampFitStep
    parameters: {threshold_intercept: 6.0, threshold_constant: 0.5}
  - name: flatfield
    parameters: {config_file: flat.yaml}
""")
    _write(tmp_path / "flat.yaml", "class: FlatFieldStep\nparameters: {skip: true, include_var_flat: true}\n")
    pipe = ExposurePipeline.from_config(cfg, steps={"ramp_fit": {"threshold_constant": 0.25}})
    assert pipe.save_calibrated_ramp is True                 # file over code default
    assert pipe.ramp_fit.threshold_intercept == 6.0          # file over code default
    assert pipe.ramp_fit.threshold_constant == 0.25          # keywords over file
    assert pipe.flat_field.skip is True and pipe.flat_field.include_var_flat is True  # nested file
    assert pipe.ramp_fit.algorithm == "ols_cas22"            # code default
    with pytest.raises(ParameterError, match="not ExposurePipeline"):
        ExposurePipeline.from_config(_write(tmp_path / "m.yaml", "class: roman_mos\nparameters: {}\n"))


@pytest.mark.parametrize("ext", [".asdf", ".yaml"])
def test_parameter_file_round_trip(tmp_path, ext):
    pipe = MosaicPipeline(save_results=True, output_dir="out",
                          steps={"outlier_detection": {"snr": "5 4", "good_bits": "~DO_NOT_USE"},
                                 "resample": {"crval": [10.0, -5.0], "pixfrac": 0.8},
                                 "skymatch": {"lower": -1.0}})
    path = pipe.export_config(tmp_path / f"pars{ext}")
    again = MosaicPipeline.from_config(path)
    assert again.to_config() == pipe.to_config()
    assert again.resample.crval == (10.0, -5.0)
    cfg = load_config(path)
    assert cfg["steps"]["outlier_detection"]["snr"] == [5.0, 4.0]


def test_single_step_round_trip_and_docs(tmp_path):
    step = FlatFieldStep(include_var_flat=True, override_flat="f.asdf")
    again = FlatFieldStep.from_config(step.export_config(tmp_path / "flat.asdf"))
    assert again.get_parameters() == step.get_parameters()
    rst = docs_table(FlatFieldStep)
    md = docs_table(FlatFieldStep, "md")
    for text in (rst, md):
        assert "include_var_flat" in text and "override_flat" in text
