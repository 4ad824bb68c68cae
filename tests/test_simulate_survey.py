"""End-to-end simulated data set: L1 files, metadata, truth, CRDS selection, association, CLI."""

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

import romancore.datamodels as dm
from romancore.cli.sim import main
from romancore.simulate.instrument import MA_TABLES, resultant_times

MA = MA_TABLES["SIM_SHORT_6"]
DETECTORS = ["WFI01", "WFI07"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["--out", str(out), "--detectors", ",".join(DETECTORS), "--exposures", "2",
                   "--filter", "F129", "--size", "small", "--ma-table", "SIM_SHORT_6", "--seed", "5",
                   "--pointing-error", "0.4", "--cr-rate", "300"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stdout"] = buf.getvalue()
    return out, manifest


def test_l1_files_names_and_metadata(dataset):
    out, manifest = dataset
    assert manifest["uncal"] == [f"r0000101001001001001_01101_{e:04d}_{d.lower()}_uncal.asdf"
                                 for e in (1, 2) for d in DETECTORS]
    for k, name in enumerate(manifest["uncal"]):
        with dm.open(out / name) as m:
            assert isinstance(m, dm.ScienceRawModel)
            assert m.data.dtype == np.uint16 and m.data.shape == (6, 128, 128)
            assert m.amp33.dtype == np.uint16 and m.amp33.shape == (6, 128, 128)
            e = m.meta.exposure
            assert e.read_pattern == MA.as_list() and e.nresultants == 6
            assert e.frame_time == MA.frame_time and e.ma_table_name == "SIM_SHORT_6"
            assert e.type == "WFI_IMAGE"
            assert m.meta.instrument.detector == DETECTORS[k % 2]
            assert m.meta.instrument.optical_element == "F129"
            assert m.meta.observation.exposure == k // 2 + 1
            assert m.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            assert m.meta.velocity_aberration.scale_factor == 1.0
            p = m.get_crds_parameters()
            assert p["roman.meta.exposure.start_time"].startswith("2027-06-01")
            # Raw values: pedestal ~5000 DN, growing with time, within the A/D range.
            means = m.data[:, 4:-4, 4:-4].reshape(6, -1).mean(axis=1)
            assert 3000 < means[0] < 8000 and np.all(np.diff(means) > 0)


def test_truth_positions_agree_with_distortion_reference_and_wcsinfo(dataset):
    """Exposure 1 has no pointing error: truth (x, y) → DISTORTION model → V2/V3 →
    v23tosky (ALGORITHMS.md §10, written out here) gives the truth (ra, dec)."""
    out, manifest = dataset
    refs = manifest["references"]
    for k, det in enumerate(DETECTORS):
        stem = manifest["uncal"][k].replace("_uncal.asdf", "")
        truth = Table.read(out / "truth" / f"{stem}_truth.ecsv")
        assert len(truth) > 20
        dist_name = next(n for n, r in refs.items() if r["reftype"] == "distortion" and r["detector"] == det)
        with dm.open(out / "crds_cache/references/roman/wfi" / dist_name) as d:
            model = d.coordinate_distortion_transform
        with dm.open(out / manifest["uncal"][k]) as m:
            w = m.meta.wcsinfo.to_dict()
        v2, v3 = model(np.asarray(truth["x"]), np.asarray(truth["y"]))
        ra, dec = _v23tosky(v2, v3, w)
        sep = np.hypot((ra - truth["ra"]) * math.cos(math.radians(w["dec_ref"])), dec - truth["dec"])
        assert np.max(sep) * 3600 < 1e-3
        # The inverse of the distortion model is good to < 0.01 pixel.
        x, y = model.inverse(v2, v3)
        assert np.max(np.hypot(x - truth["x"], y - truth["y"])) < 0.01


def _v23tosky(v2, v3, w):
    d = np.radians

    def rz(a):
        return np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])

    def ry(a):
        return np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])

    def rx(a):
        return np.array([[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])

    a2, a3 = d(np.asarray(v2) / 3600), d(np.asarray(v3) / 3600)
    u = np.stack([np.cos(a3) * np.cos(a2), np.cos(a3) * np.sin(a2), np.sin(a3)])
    m = (rz(-d(w["ra_ref"])) @ ry(d(w["dec_ref"])) @ rx(d(w["roll_ref"]))
         @ ry(-d(w["v3_ref"] / 3600)) @ rz(d(w["v2_ref"] / 3600)))
    x, y, z = m @ u
    return np.degrees(np.arctan2(y, x)) % 360, np.degrees(np.arctan2(z, np.hypot(x, y)))


def test_pointing_error_is_recorded_and_small(dataset):
    out, manifest = dataset
    stem = manifest["uncal"][2].replace("_uncal.asdf", "")
    t = Table.read(out / "truth" / f"{stem}_truth.ecsv")
    nom, true = t.meta["pointing_nominal"], t.meta["pointing_true"]
    off = math.hypot((nom["ra_ref"] - true["ra_ref"]) * math.cos(math.radians(nom["dec_ref"])),
                     nom["dec_ref"] - true["dec_ref"]) * 3600
    assert 0 < off < 5 * 0.4 * 3


def test_cosmic_rays_are_in_the_l1_data_where_recorded(dataset):
    out, manifest = dataset
    n, tbar, _ = resultant_times(MA.read_pattern, MA.frame_time)
    checked = found = 0
    for name in manifest["uncal"]:
        stem = name.replace("_uncal.asdf", "")
        crs = Table.read(out / "truth" / f"{stem}_cosmicrays.ecsv")
        with dm.open(out / name) as m:
            data = np.asarray(m.data, dtype=float)
        for c in crs[crs["charge"] > 4000]:
            same = crs[(crs["x"] == c["x"]) & (crs["y"] == c["y"])]
            if len(same) > 1:
                continue
            ramp = data[:, c["y"] + 4, c["x"] + 4]
            if ramp.max() > 40000:
                continue
            frac = np.array([np.mean(np.asarray(r) >= c["read"]) for r in MA.read_pattern])
            if frac[0] > 0:
                continue  # hit before the first resultant: no difference shows it
            step = int(np.argmax(np.diff(frac)))
            rate = np.median(np.diff(ramp) / np.diff(tbar))
            excess = np.diff(ramp) - rate * np.diff(tbar)
            checked += 1
            found += int(np.argmax(excess) == step)
    assert checked >= 5
    assert found >= 0.9 * checked


def test_crds_cache_selects_each_detectors_files(dataset):
    out, manifest = dataset
    reftypes = ["mask", "saturation", "refpix", "linearity", "inverselinearity", "dark",
                "darkdecaysignal", "gain", "readnoise", "distortion", "flat", "photom", "skycells"]
    script = (
        "import crds, json, sys\n"
        "res = {}\n"
        f"for det in {DETECTORS!r}:\n"
        "    p = {'roman.meta.instrument.name': 'WFI', 'roman.meta.instrument.detector': det,\n"
        "         'roman.meta.instrument.optical_element': 'F129',\n"
        "         'roman.meta.exposure.start_time': '2027-06-01 00:00:00',\n"
        "         'roman.meta.exposure.type': 'WFI_IMAGE'}\n"
        f"    res[det] = crds.getreferences(p, reftypes={reftypes!r}, context='roman_0001.pmap', observatory='roman')\n"
        "print(json.dumps(res))\n"
    )
    env = {**os.environ, **manifest["crds_env"]}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    cache = Path(manifest["crds_env"]["CRDS_PATH"])
    for det in DETECTORS:
        assert set(res[det]) == set(reftypes)
        for reftype, path in res[det].items():
            path = Path(path)
            assert path.parent == cache / "references/roman/wfi"
            with dm.open(path) as ref:
                assert ref.meta.reftype.lower() == reftype
                if reftype not in ("darkdecaysignal", "skycells"):
                    assert ref.meta.instrument.detector == det
                if reftype in ("flat", "distortion"):
                    assert ref.meta.instrument.optical_element == "F129"


def test_reference_files_are_consistent_with_l1_shapes(dataset):
    out, manifest = dataset
    refdir = out / "crds_cache/references/roman/wfi"
    by_type = {r["reftype"]: n for n, r in manifest["references"].items() if r.get("detector") == "WFI01"}
    with dm.open(refdir / by_type["mask"]) as m:
        assert m.dq.shape == (128, 128) and m.dq.dtype == np.uint32
    with dm.open(refdir / by_type["flat"]) as f:
        assert f.data.shape == (120, 120)
    with dm.open(refdir / by_type["linearity"]) as lin:
        assert lin.coeffs.shape == (6, 128, 128)
    with dm.open(refdir / by_type["photom"]) as ph:
        row = ph.phot_table["F129"]
        value = np.ravel(getattr(row["photmjsr"], "value", row["photmjsr"]))[0]
        area = np.ravel(getattr(row["pixelareasr"], "value", row["pixelareasr"]))[0]
        assert value > 0
        assert area == pytest.approx((0.11 / 206264.806) ** 2, rel=1e-6)


def test_association_and_reference_catalog(dataset):
    out, manifest = dataset
    asn = json.loads((out / manifest["association"]).read_text())
    members = [m["expname"] for m in asn["products"][0]["members"]]
    assert members == [n.replace("_uncal.asdf", "_cal.asdf") for n in manifest["uncal"]]
    assert all(m["exptype"] == "science" for m in asn["products"][0]["members"])
    assert {"asn_type", "asn_rule", "asn_id", "target", "products"} <= set(asn)
    refcat = Table.read(out / manifest["refcat"])
    src = Table.read(out / "truth" / "sources.ecsv")
    stars = src[src["kind"] == "star"]
    assert len(refcat) == len(stars) > 50
    dra = (refcat["ra"] - stars["ra"]) * np.cos(np.radians(stars["dec"])) * 3600
    assert 0.002 < np.std(dra) < 0.01


@pytest.mark.parametrize("args, message", [
    (["--detectors", "WFI19"], "WFI19"),
    (["--filter", "F999"], "F999"),
    (["--size", "huge"], "huge"),
    (["--exposures", "0"], "n_exposures"),
    (["--ma-table", "NOPE"], "NOPE"),
    (["--seed", "abc"], "abc"),
])
def test_cli_bad_arguments_exit_1(tmp_path, capsys, args, message):
    rc = main(["--out", str(tmp_path / "x"), *args])
    assert rc == 1
    err = capsys.readouterr().err
    assert message in err and "romancore-sim" in err
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_cli_prints_what_it_wrote_and_the_crds_environment(dataset):
    out, manifest = dataset
    text = manifest["stdout"]
    assert f"export CRDS_PATH={(out / 'crds_cache').resolve()}" in text
    assert "export CRDS_MODE=local" in text
    for name in manifest["uncal"]:
        assert name in text
    assert Path(manifest["crds_env"]["CRDS_PATH"]) == (out / "crds_cache").resolve()
    assert manifest["crds_env"]["CRDS_MODE"] == "local"
