"""Associations: round trips with member paths relative to the association file."""

import json
from pathlib import Path

import pytest

from romancore.associations import (
    AssociationError,
    asn_from_list,
    load_asn,
    member_paths,
    save_asn,
)
from romancore.cli import asn as asn_cli


def test_round_trip_relative_paths(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    files = [data / f"r{i}_cal.asdf" for i in range(3)]
    for f in files:
        f.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    asn = asn_from_list(["data/r0_cal.asdf", str(files[1]), ("data/r2_cal.asdf")], "prod")
    out = save_asn(asn, tmp_path / "sub" / "my_asn.json")
    raw = json.loads(out.read_text())
    assert [m["expname"] for m in raw["products"][0]["members"]] == [
        "../data/r0_cal.asdf", "../data/r1_cal.asdf", "../data/r2_cal.asdf"]
    assert raw["asn_rule"] == "DMS_ELPP_Base" and raw["products"][0]["name"] == "prod"
    back = load_asn(out)
    monkeypatch.chdir("/")
    assert member_paths(back, out) == [f.resolve() for f in files]


def test_exptypes_and_bad_files(tmp_path):
    asn = asn_from_list([("a.asdf", "science"), ("g.asdf", "guide_window")], "p", with_exptype=True)
    assert [p.name for p in member_paths(asn, tmp_path / "x.json")] == ["a.asdf"]
    assert len(member_paths(asn, tmp_path / "x.json", exptypes=None)) == 2
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AssociationError, match="cannot be read"):
        load_asn(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text(json.dumps({"products": []}))
    with pytest.raises(AssociationError, match="non-empty"):
        load_asn(tmp_path / "empty.json")


def test_asn_cli(tmp_path, capsys):
    out = tmp_path / "d_asn.json"
    rc = asn_cli.main(["-o", str(out), "--product-name", "r0001_WFI_cal", str(tmp_path / "a_cal.asdf"),
                       str(tmp_path / "b_cal.asdf")])
    assert rc == 0
    asn = load_asn(out)
    assert [m["expname"] for m in asn["products"][0]["members"]] == ["a_cal.asdf", "b_cal.asdf"]
    assert asn_cli.main(["--product-name", "x", "f.asdf"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "required" in err[0] and Path(out).exists()
