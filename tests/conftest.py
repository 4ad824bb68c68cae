"""Shared test fixtures: paths to the real Roman files in tests/data."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def uncal_path() -> Path:
    return DATA / "r0000101001001001001_0001_wfi01_f158_uncal.asdf"


@pytest.fixture
def cal_path() -> Path:
    return DATA / "r0000101001001001001_0001_wfi01_f158_cal.asdf"


@pytest.fixture
def coadd_path() -> Path:
    return DATA / "r00001_p_v01001001001_270p65x48y69_f158_coadd.asdf"


@pytest.fixture
def refs_dir() -> Path:
    return DATA / "refs"
