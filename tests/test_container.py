"""ModelContainer: lazy members, on-disk mode (one resident member), grouping, save."""

import numpy as np
import pytest

import romancore.datamodels as dm
from romancore.associations import asn_from_list, save_asn
from romancore.container import ModelContainer
from romancore.errors import NoScienceDataError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("members")
    base = dm.ImageModel.create_minimal(shape=(4, 4))
    paths = []
    # exposures 1,1,2 -> two groups (detectors of one exposure share a group)
    for i, (det, expo) in enumerate([("WFI01", 1), ("WFI02", 1), ("WFI01", 2)]):
        m = base.copy()
        m.data = np.full((4, 4), float(i), np.float32)
        m.meta.instrument.detector = det
        m.meta.observation.exposure = expo
        paths.append(m.save(d / f"r{i}_{det.lower()}_cal.asdf"))
    return paths


def test_on_disk_keeps_one_member(files, tmp_path):
    c = ModelContainer([str(p) for p in files], on_disk=True, tmpdir=tmp_path / "t")
    assert c.n_resident == 0
    peak = 0
    for i, model in enumerate(c):
        peak = max(peak, c.n_resident)
        model.data = np.asarray(model.data) + 10  # changes must survive eviction
        assert model.meta.filename == files[i].name
    assert peak == 1 and c.n_resident == 0
    assert [float(np.asarray(c[i].data)[0, 0]) for i in range(3)] == [10.0, 11.0, 12.0]
    assert c.n_resident == 1
    assert c[1].meta.filename == files[1].name  # the temporary name does not leak
    for p in files:  # inputs untouched
        assert float(np.asarray(dm.open(p).data)[0, 0]) < 10
    c.close()


def test_grouping_and_asn(files, tmp_path):
    asn = asn_from_list([str(p) for p in files], "prod")
    path = save_asn(asn, tmp_path / "a_asn.json")
    c = ModelContainer(str(path))
    assert len(c) == 3 and c.asn_table["products"][0]["name"] == "prod"
    groups = list(c.group_indices.values())
    assert groups == [[0, 1], [2]]
    assert [len(g) for g in c.models_grouped] == [2, 1]
    assert c.get_crds_parameters()["roman.meta.instrument.detector"] == "WFI01"
    out = c.save(dir_path=tmp_path / "saved")
    assert [p.name for p in out] == [p.name for p in files]
    out = c.save(path="stack.asdf", dir_path=tmp_path / "saved2")
    assert [p.name for p in out] == ["stack_0.asdf", "stack_1.asdf", "stack_2.asdf"]


def test_models_and_empty_asn(files, tmp_path):
    m = dm.open(files[0])
    c = ModelContainer([m, str(files[1])])
    assert c[0] is m and len(c) == 2
    asn = asn_from_list([("g.asdf", "guide_window")], "p", with_exptype=True)
    path = save_asn(asn, tmp_path / "g_asn.json")
    with pytest.raises(NoScienceDataError):
        ModelContainer(str(path))
