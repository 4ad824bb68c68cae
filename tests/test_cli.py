"""CLIs: exit codes, one-line errors, help, parameter files as first argument, --save-parameters."""

import numpy as np
import pytest

import romancore.datamodels as dm
from romancore.associations import asn_from_list, save_asn
from romancore.cli import elp, mos, step
from romancore.pipeline.config import load_config


@pytest.fixture(autouse=True)
def no_crds(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    monkeypatch.delenv("CRDS_SERVER_URL", raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    img = dm.ImageModel.create_minimal(shape=(6, 6))
    img.data = np.full((6, 6), 4.0, np.float32)
    flat = dm.FlatRefModel.create_minimal(shape=(6, 6))
    flat.data = np.full((6, 6), 2.0, np.float32)
    return img.save(d / "r0001_wfi01_uncal.asdf"), flat.save(d / "flat.asdf")


def one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_help_lists_step_parameters(capsys):
    assert step.main(["roman_elp", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--steps.ramp_fit.algorithm=VALUE" in out and "Default: 'ols_cas22'" in out
    assert "--steps.flat_field.override_flat=VALUE" in out and "--save_calibrated_ramp=VALUE" in out
    assert mos.main(["-h"]) == 0 and "--steps.outlier_detection.snr" in capsys.readouterr().out


def test_errors_exit_1_with_one_line(capsys, files, tmp_path):
    uncal, _ = files
    assert step.main(["no_such_step", str(uncal)]) == 1
    assert "unknown step or pipeline 'no_such_step'" in one_line(capsys)
    assert elp.main([str(uncal), "--steps.ramp_fit.algorithm=ols"]) == 1
    line = one_line(capsys)
    assert "ramp_fit" in line and "algorithm" in line and "'ols'" in line and "ols_cas22" in line
    assert elp.main([str(uncal), "--steps.ramp_fit.bogus=1"]) == 1
    assert "unknown parameter 'bogus'" in one_line(capsys)
    assert step.main(["flat_field", str(tmp_path / "missing.asdf")]) == 1
    one_line(capsys)
    # a missing reference file: one line naming the type and both ways to supply it
    assert step.main(["tests.test_pipeline.ScaleStep", str(uncal), f"--output-dir={tmp_path}"]) == 1
    line = one_line(capsys)
    assert "FLAT" in line and "override_flat" in line


def test_no_science_data_exit_64(capsys, tmp_path):
    asn = asn_from_list([("g.asdf", "guide_window")], "p", with_exptype=True)
    path = save_asn(asn, tmp_path / "g_asn.json")
    assert mos.main([str(path)]) == 64
    assert "no science data" in one_line(capsys)


def test_run_step_saves_and_parameter_file_first(files, tmp_path, capsys):
    uncal, flat = files
    pars = tmp_path / "pars.yaml"
    rc = step.main(["tests.test_pipeline.ScaleStep", str(uncal), f"--override_flat={flat}",
                    "--factor", "3", f"--output-dir={tmp_path / 'a'}", "--save-parameters", str(pars)])
    assert rc == 0, capsys.readouterr().err
    out = dm.open(tmp_path / "a" / "r0001_wfi01_scale.asdf")
    np.testing.assert_array_equal(out.data, 6.0)
    assert out.meta.cal_step.flat_field == "COMPLETE"
    saved = load_config(pars)
    assert saved["parameters"]["factor"] == 3.0 and saved["parameters"]["save_results"] is True
    # the saved file as first argument; the command line wins over the file
    rc = step.main([str(pars), str(uncal), "--factor=1", f"--output_dir={tmp_path / 'b'}"])
    assert rc == 0, capsys.readouterr().err
    np.testing.assert_array_equal(dm.open(tmp_path / "b" / "r0001_wfi01_scale.asdf").data, 2.0)


def test_logcfg_levels_and_file(files, tmp_path, capsys):
    import logging

    uncal, flat = files
    log = tmp_path / "run.log"
    cfg = tmp_path / "log.cfg"
    cfg.write_text(f"[*]\nlevel = CRITICAL\n\n[*.ScaleStep]\nlevel = INFO\nhandler = file:{log}\n")
    rc = step.main(["tests.test_pipeline.ScaleStep", str(uncal), f"--override_flat={flat}",
                    f"--output-dir={tmp_path}", f"--logcfg={cfg}"])
    assert rc == 0
    text = log.read_text()
    assert "done in" in text and "Saved" in text
    cfg.write_text("[*]\nlevel = INFO\nbreak_level = INFO\nhandler = stdout\n")
    rc = step.main(["tests.test_pipeline.ScaleStep", str(uncal), f"--override_flat={flat}",
                    f"--output-dir={tmp_path / 'c'}", f"--logcfg={cfg}"])
    assert rc == 1 and "break_level" in capsys.readouterr().err
    from romancore.cli import common

    root_before = list(logging.getLogger().handlers)
    common.configure_logging()  # back to defaults for other tests
    # the root logger is never touched, and repeated configuration does not stack handlers
    assert logging.getLogger().handlers == root_before
    installed = [h for h in logging.getLogger("romancore").handlers if isinstance(h, common._Dispatch)]
    assert len(installed) == 1
