"""Benchmark cases, each run in its own process by ``benchmarks/run.py``.

    python benchmarks/cases.py CASE --size full|small --threads N --repeat K

prints one JSON line: wall times of the K runs, CPU time, peak RSS and throughput.
A case is a ``setup(n, threads) -> state`` function (not timed) and a ``run(state)``
function (timed); ``n`` is the detector size (4096 full, 256 small).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / "cache"
PATTERN_9 = [[1], [2], [3, 4], list(range(5, 10)), list(range(10, 18)), list(range(18, 26)),
             list(range(26, 34)), list(range(34, 44)), [44]]
PATTERN_6 = [[1], [2, 3], list(range(4, 8)), list(range(8, 13)), list(range(13, 19)), [19]]
FRAME = 3.16247
SIZES = {"full": 4096, "small": 256}


@dataclass
class Case:
    what: str
    setup: Callable
    run: Callable
    threaded: bool = True
    #: bytes the kernel must stream at least once (for the bandwidth floor)
    streamed: Callable | None = None
    #: (value, unit) throughput from (state, wall seconds)
    throughput: Callable | None = None


CASES: dict[str, Case] = {}


def case(name, what, *, threaded=True, streamed=None, throughput=None):
    def deco(setup_run):
        setup, run = setup_run()
        CASES[name] = Case(what, setup, run, threaded, streamed, throughput)
        return setup_run
    return deco


# ----------------------------------------------------------------------------- inputs
def synthetic_ramp(n: int, pattern=PATTERN_9, *, seed=1, gain=2.0, read_noise=6.0):
    """float32 ramp [nres, n, n] in DN: rates 0.1-1000 e/s, read noise, a few cosmic rays."""
    from romancore.algorithms.ramp_fit import read_pattern_quantities

    rng = np.random.default_rng(seed)
    q = read_pattern_quantities(pattern, FRAME)
    rate = (10 ** rng.uniform(-1, 3, (n, n)) / gain).astype(np.float32)
    noise = rng.standard_normal((n, n), dtype=np.float32)
    cube = np.empty((len(pattern), n, n), np.float32)
    hit = rng.random((n, n)) < 1e-4
    for i, t in enumerate(q.t_bar):
        cube[i] = np.roll(noise, 17 * i, axis=1) * np.float32(read_noise / np.sqrt(q.n_reads[i]))
        cube[i] += rate * np.float32(t) + np.float32(1000.0)
        if i >= len(pattern) // 2:
            cube[i][hit] += np.float32(800.0)
    return cube


def _mb(nbytes):
    return nbytes


# ----------------------------------------------------------------------------- cases
@case("memory_bandwidth", "numpy copy of a 1 GiB (small: 64 MiB) array", threaded=False,
      throughput=lambda s, w: (2 * s["a"].nbytes / w / 1e9, "GB/s"))
def _membw():
    def setup(n, threads):
        size = 2**30 if n >= 4096 else 2**26
        a = np.ones(size // 8)
        return {"a": a, "b": np.empty_like(a)}

    def run(s):
        np.copyto(s["b"], s["a"])
    return setup, run


@case("open_l1_metadata", "open a 9-resultant L1 file and read its metadata", threaded=False)
def _open_l1():
    def setup(n, threads):
        from romancore.datamodels import ScienceRawModel

        path = CACHE / f"bench_l1_{n}_uncal.asdf"
        if not path.exists():
            CACHE.mkdir(exist_ok=True)
            raw = ScienceRawModel.create_minimal(
                shape=(9, n, n), meta={"exposure": {"read_pattern": PATTERN_9, "nresultants": 9}})
            raw.data[...] = 1000
            raw.save(path)
        import romancore  # noqa: F401  (import cost is not part of the case)
        return {"path": path}

    def run(s):
        import romancore as rc

        m = rc.open(s["path"])
        _ = (m.meta.exposure.read_pattern, m.meta.instrument.detector)
        m.close()
    return setup, run


def _ramp_setup(pattern):
    def setup(n, threads):
        from romancore.datamodels import RampModel

        cube = synthetic_ramp(n, pattern)
        ramp = RampModel.create_minimal(shape=cube.shape, meta={"exposure": {
            "read_pattern": pattern, "frame_time": FRAME, "nresultants": len(pattern)}})
        ramp.data = cube
        return {"ramp": ramp, "n": n, "threads": threads, "nres": len(pattern)}
    return setup


def _pix_res(s, w):
    return (s["nres"] * s["n"] ** 2 / w / 1e6, "Mpix·res/s")


def _cube_bytes(s):
    return s["ramp"].data.nbytes


def _refs(n, *names):
    from romancore import datamodels as dm

    out = {}
    if "saturation" in names:
        sat = dm.SaturationRefModel.create_minimal(shape=(n, n))
        sat.data[...] = 55000.0
        out["saturation"] = sat
    if "linearity" in names:
        lin = dm.LinearityRefModel.create_minimal(shape=(n, n))
        coeffs = np.zeros((5, n, n), np.float32)
        coeffs[1] = 1.0
        coeffs[2] = 2e-7
        lin.coeffs = coeffs
        out["linearity"] = lin
    if "gain" in names:
        g = dm.GainRefModel.create_minimal(shape=(n, n))
        g.data[...] = 2.0
        out["gain"] = g
    if "readnoise" in names:
        r = dm.ReadnoiseRefModel.create_minimal(shape=(n, n))
        r.data[...] = 6.0
        out["readnoise"] = r
    if "refpix" in names:
        nfreq = n * (n // 32 + 12) // 2 + 1
        rng = np.random.default_rng(2)
        coeffs = {key: rng.normal(size=(32, nfreq)) * 1e-3 + 1j * rng.normal(size=(32, nfreq)) * 1e-3
                  for key in ("alpha", "gamma", "zeta")}
        out["refpix"] = dm.RefpixRefModel.create_minimal(**coeffs)
    return out


@case("saturation", "flag_saturation on a 9-resultant ramp", streamed=_cube_bytes, throughput=_pix_res)
def _sat():
    base = _ramp_setup(PATTERN_9)

    def setup(n, threads):
        s = base(n, threads)
        s.update(_refs(n, "saturation"))
        return s

    def run(s):
        s["ramp"].groupdq[...] = 0
        s["ramp"].flag_saturation(s["saturation"])
    return setup, run


@case("linearity", "classic linearity (4th-order polynomial) on a 9-resultant ramp",
      streamed=_cube_bytes, throughput=_pix_res)
def _lin():
    base = _ramp_setup(PATTERN_9)

    def setup(n, threads):
        s = base(n, threads)
        s.update(_refs(n, "linearity"))
        return s

    def run(s):
        s["ramp"].linearity(s["linearity"])
    return setup, run


@case("refpix", "reference-pixel correction (all stages) on a 9-resultant ramp",
      streamed=_cube_bytes, throughput=_pix_res)
def _refpix():
    base = _ramp_setup(PATTERN_9)

    def setup(n, threads):
        s = base(n, threads)
        s.update(_refs(n, "refpix"))
        s["ramp"].amp33 = np.full((9, n, n // 32), 1000, dtype=np.uint16)
        return s

    def run(s):
        s["ramp"].refpix(s["refpix"], nthreads=s["threads"])
    return setup, run


def _fit_case(pattern, jumps):
    base = _ramp_setup(pattern)

    def setup(n, threads):
        s = base(n, threads)
        s.update(_refs(n, "gain", "readnoise"))
        return s

    def run(s):
        s["ramp"].fit_ramps(s["gain"], s["readnoise"], use_ramp_jump_detection=jumps,
                            nthreads=s["threads"])
    return setup, run


for _pat, _pname in ((PATTERN_9, "9"), (PATTERN_6, "6")):
    for _jump in (True, False):
        _name = f"ramp_fit_{_pname}res_{'jump' if _jump else 'nojump'}"
        CASES[_name] = Case(
            f"ols_cas22 fit of the 4088² science area, {_pname} resultants, jump detection {'on' if _jump else 'off'}",
            *_fit_case(_pat, _jump), streamed=_cube_bytes, throughput=_pix_res)


# ----------------------------------------------------------------------------- mosaic kernels
def synthetic_l2_set(n: int, count: int, *, seed: int = 3) -> list[Path]:
    """``count`` dithered L2 images (n-8 square, real WFI gwcs, stars + sky + noise), cached."""
    from romancore.associations import asn_from_list, save_asn
    from romancore.datamodels import ImageModel
    from romancore.wcs import build_wfi_wcs, make_wfi_distortion, wfi_detector_geometry

    side = n - 8
    folder = CACHE / f"l2_{side}"
    paths = [folder / f"bench_{k:02d}_cal.asdf" for k in range(count)]
    if all(p.exists() for p in paths) and (folder / f"bench_{count}_asn.json").exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    geo = wfi_detector_geometry("WFI01")
    dist = make_wfi_distortion("WFI01", shape=(side, side))
    ys, xs = np.mgrid[-3:4, -3:4]
    stamp = np.exp(-(xs**2 + ys**2) / (2 * 0.75**2)).astype(np.float32)
    stamp /= stamp.sum()
    for k, path in enumerate(paths):
        if path.exists():
            continue
        image = ImageModel.create_minimal(shape=(side, side), meta={
            "instrument": {"detector": "WFI01", "optical_element": "F158"},
            "exposure": {"exposure_time": 139.1, "effective_exposure_time": 136.0},
            "photometry": {"conversion_megajanskys": 0.7, "conversion_megajanskys_uncertainty": 0.007,
                           "pixel_area": 2.84e-13},
            "observation": {"program": 1, "observation": 1, "visit": 1, "visit_file_group": 1,
                            "visit_file_sequence": 1, "visit_file_activity": "01", "exposure": k + 1,
                            "execution_plan": 1, "pass": 1, "segment": 1},
        })
        sky = np.float32(1.0 + 0.1 * k)
        data = rng.standard_normal((side, side), dtype=np.float32) * np.float32(0.05) + sky
        for _ in range(max(50, side * side // 40000)):
            y, x = rng.integers(4, side - 4, 2)
            data[y - 3:y + 4, x - 3:x + 4] += stamp * np.float32(rng.uniform(5, 500))
        image.data = data
        image.err = np.full((side, side), 0.05, np.float32)
        image.var_poisson = np.full((side, side), 0.0015, np.float32)
        image.var_rnoise = np.full((side, side), 0.001, np.float32)
        info = {"v2_ref": geo["v2_ref"], "v3_ref": geo["v3_ref"], "vparity": -1, "v3yangle": geo["v3yangle"],
                "ra_ref": 270.0 + 0.11 * (40 * k + 0.3 * k) / 3600 / np.cos(np.radians(66.0)),
                "dec_ref": 66.0 + 0.11 * (25 * k + 0.6 * k) / 3600, "roll_ref": 0.0,
                "aperture_name": "WFI01_FULL", "s_region": "?"}
        for key, value in info.items():
            image.meta.wcsinfo[key] = value
        image.meta.wcs = build_wfi_wcs(dist, info, shape=(side, side))
        image.save(path)
    save_asn(asn_from_list([str(p) for p in paths], product_name=f"bench_{count}"), folder / f"bench_{count}_asn.json")
    return paths


def _drizzle_case(kernel):
    def setup(n, threads):
        import romancore as rc
        from romancore.algorithms.drizzle import Drizzler
        from romancore.algorithms.pixmap import calc_pixmap
        from romancore.wcs import make_output_wcs

        paths = synthetic_l2_set(n, 2)
        image = rc.open(paths[0])
        out_wcs, shape = make_output_wcs([rc.open(p).meta.wcs for p in paths])
        pixmap = calc_pixmap(image.meta.wcs, out_wcs, image.data.shape)
        return {"Drizzler": Drizzler, "shape": shape, "data": np.array(image.data),
                "weight": np.ones(image.data.shape, np.float32), "pixmap": pixmap, "threads": threads,
                "npix": image.data.size}

    def run(s):
        d = s["Drizzler"](s["shape"], kernel=kernel, want_context=True, num_threads=s["threads"])
        d.add_image(s["data"], s["weight"], s["pixmap"])
        d.finalize()
    return setup, run


for _kernel in ("square", "point", "turbo"):
    CASES[f"drizzle_{_kernel}"] = Case(
        f"drizzle one 4088² input into the mosaic grid ({_kernel} kernel, with context)",
        *_drizzle_case(_kernel), streamed=lambda s: s["data"].nbytes + s["pixmap"].nbytes,
        throughput=lambda s, w: (s["npix"] / w / 1e6, "Mpix/s"))


def _pixmap_case(stepsize):
    def setup(n, threads):
        import romancore as rc
        from romancore.algorithms.pixmap import calc_pixmap
        from romancore.wcs import make_output_wcs

        paths = synthetic_l2_set(n, 2)
        image = rc.open(paths[0])
        out_wcs, _ = make_output_wcs([rc.open(p).meta.wcs for p in paths])
        shape = image.data.shape if stepsize > 1 else (min(image.data.shape[0], 256), image.data.shape[1])
        return {"f": calc_pixmap, "in": image.meta.wcs, "out": out_wcs, "shape": shape,
                "npix": shape[0] * shape[1]}

    def run(s):
        s["f"](s["in"], s["out"], s["shape"], stepsize=stepsize)
    return setup, run


CASES["pixmap_sparse"] = Case("pixel map of a 4088² WFI gwcs onto a TAN grid, sparse grid (default step) + spline",
                              *_pixmap_case(10), threaded=False,
                              throughput=lambda s, w: (s["npix"] / w / 1e6, "Mpix/s"))
CASES["pixmap_dense"] = Case("pixel map evaluated at every pixel (256 rows, for the rate)",
                             *_pixmap_case(1), threaded=False,
                             throughput=lambda s, w: (s["npix"] / w / 1e6, "Mpix/s"))


@case("outlier_median_4", "NaN/weight-aware median of 4 resampled 4088² planes (tiled)",
      streamed=lambda s: s["planes"].nbytes * 2, throughput=lambda s, w: (s["planes"][0].size / w / 1e6, "Mpix/s"))
def _median():
    def setup(n, threads):
        from romancore.algorithms.outlier_detection import median_of_resampled

        rng = np.random.default_rng(5)
        side = n - 8
        planes = rng.standard_normal((4, side, side), dtype=np.float32)
        weights = np.ones_like(planes)
        planes[0, ::97, ::89] = np.nan
        return {"f": median_of_resampled, "planes": planes, "weights": weights}

    def run(s):
        s["f"](list(zip(s["planes"], s["weights"], strict=True)), maskpt=0.7)
    return setup, run


@case("skymatch_stat_mode", "clipped 'mode' sky statistic of a 4088² image", threaded=False,
      streamed=lambda s: s["values"].nbytes, throughput=lambda s, w: (s["values"].size / w / 1e6, "Mpix/s"))
def _skystat():
    def setup(n, threads):
        from romancore.algorithms.skymatch import sky_statistic

        rng = np.random.default_rng(6)
        side = n - 8
        return {"f": sky_statistic, "values": (rng.standard_normal(side * side, dtype=np.float32) + 10.0)}

    def run(s):
        s["f"](s["values"], "mode")
    return setup, run


# ----------------------------------------------------------------------------- pipelines
def _simulated_exposure(size: str) -> dict:
    """One simulated exposure with its CRDS cache (made once by romancore-sim in a child process)."""
    import subprocess

    folder = CACHE / f"sim_{size}"
    manifest = folder / "manifest.json"
    if not manifest.exists():
        subprocess.run([sys.executable, "-m", "romancore.cli.sim", "--out", str(folder), "--size", size,
                        "--exposures", "1", "--seed", "11"], check=True, capture_output=True)
    return json.loads(manifest.read_text()) | {"folder": str(folder)}


@case("elp", "Exposure pipeline on one simulated 9-resultant exposure (dq_init … flat_field; catalog/tweakreg skipped)")
def _elp():
    def setup(n, threads):
        m = _simulated_exposure("full" if n >= 4096 else "small")
        os.environ.update(m["crds_env"])  # before crds is imported in this process
        from romancore.pipeline import ExposurePipeline

        return {"P": ExposurePipeline, "path": str(Path(m["folder"]) / m["uncal"][0]), "threads": threads}

    def run(s):
        s["P"].call(s["path"], steps={"source_catalog": {"skip": True}, "tweakreg": {"skip": True}})
    return setup, run


@case("elp_with_catalog", "Exposure pipeline incl. source_catalog (tweakreg skipped: one exposure)")
def _elp_cat():
    def run(s):
        s["P"].call(s["path"], steps={"tweakreg": {"skip": True}})
    return CASES["elp"].setup, run


def _common_grid(paths) -> Path:
    """The output grid fitted to all the cached inputs, as an ``output_wcs`` ASDF file, so the
    mosaic cases for N = 2, 4, 8 resample onto the same grid and their memory compares."""
    import asdf

    from romancore.container import ModelContainer
    from romancore.resample import output_grid

    target = paths[0].parent / f"bench_grid_{len(paths)}.asdf"
    if not target.exists():
        grid = output_grid(ModelContainer([str(p) for p in paths], on_disk=True), resample_on_skycell=False)
        wcs = grid.wcs
        ny, nx = grid.shape
        wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
        asdf.AsdfFile({"wcs": wcs}).write_to(target)
    return target


def _mlp_case(count):
    def setup(n, threads):
        paths = synthetic_l2_set(n, count)
        grid = _common_grid(synthetic_l2_set(n, 8))
        from romancore.pipeline import MosaicPipeline

        return {"P": MosaicPipeline, "asn": str(paths[0].parent / f"bench_{count}_asn.json"),
                "grid": str(grid)}

    def run(s):
        s["P"].call(s["asn"], steps={"source_catalog": {"skip": True},
                                     "resample": {"output_wcs": s["grid"]}})
    return setup, run


for _count in (2, 4, 8):
    CASES[f"mlp_{_count}"] = Case(f"Mosaic pipeline on {_count} dithered 4088² L2 images (flux … resample; resample onto the grid of all 8)",
                                  *_mlp_case(_count))


# ----------------------------------------------------------------------------- driver
def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    c = CASES[args.case]
    state = c.setup(SIZES[args.size], args.threads)
    walls, cpus = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        c.run(state)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    med = statistics.median(walls)
    out = {
        "case": args.case, "what": c.what, "threads": args.threads, "size": args.size,
        "wall_s": {"median": med, "min": min(walls), "max": max(walls)},
        "cpu_s": cpus[walls.index(sorted(walls)[len(walls) // 2])],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if c.throughput:
        out["throughput"], out["unit"] = c.throughput(state, med)
    if c.streamed:
        out["bytes_streamed"] = int(c.streamed(state))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
