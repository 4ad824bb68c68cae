"""Benchmark of the simulator: one full-size (4096×4096 + amp33) 9-resultant exposure.

    python benchmarks/bench_simulate.py [--size full|small] [--out DIR]

Prints JSON: wall and CPU times of the detector truth, the scene, the ramp generation and
the L1 file write, and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from romancore.simulate.instrument import (
        BORDER,
        CHANNEL_WIDTH,
        MA_TABLES,
        DetectorGeometry,
        boresight_attitude,
    )
    from romancore.simulate.ramps import cosmic_ray_hits, simulate_resultants
    from romancore.simulate.references import make_detector_truth
    from romancore.simulate.scene import make_sources, render_sources, source_positions
    from romancore.simulate.survey import SIZES

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--out", default=None, help="directory for the L1 file (default: a temp dir)")
    args = p.parse_args(argv)
    n = SIZES[args.size]
    ma = MA_TABLES["C2A_IMG_HLWAS"]
    rng = np.random.default_rng(1)
    times = {}
    cpu0 = time.process_time()

    t = time.perf_counter()
    truth = make_detector_truth("WFI01", (n, n), seed=1, nreads_max=ma.nreads)
    times["detector_truth_s"] = time.perf_counter() - t

    t = time.perf_counter()
    att = boresight_attitude(270.0, 66.0, 0.0)
    geom = DetectorGeometry("WFI01", nside=n - 2 * BORDER)
    from romancore.simulate.instrument import v2v3_to_sky
    ra0, dec0 = (float(v) for v in v2v3_to_sky(att, geom.v2_ref, geom.v3_ref))
    half = (n - 2 * BORDER) * 0.11 / 3600 / 2 * 1.1
    src = make_sources(ra0, dec0, half, "F158", rng)
    x, y = source_positions(src, geom, att)
    rate = np.zeros((n, n + CHANNEL_WIDTH), np.float32)
    sci = rate[BORDER:n - BORDER, BORDER:n - BORDER]
    sci += render_sources(src, x, y, (n - 2 * BORDER, n - 2 * BORDER), "F158")
    sci += np.float32(0.8)
    sci *= truth.flat[BORDER:-BORDER, BORDER:-BORDER]
    rate[:, :n] += truth.dark_rate
    times["scene_s"] = time.perf_counter() - t
    times["n_sources"] = int(len(src))

    t = time.perf_counter()
    pad = np.zeros((n, CHANNEL_WIDTH), np.float32)
    crs = cosmic_ray_hits((n, n), ma.read_pattern, ma.frame_time, rng)
    data = np.empty((ma.nresultants, n, n), np.uint16)
    amp33 = np.empty((ma.nresultants, n, CHANNEL_WIDTH), np.uint16)
    simulate_resultants(
        rate, ma.read_pattern, ma.frame_time,
        gain=np.hstack([truth.gain, pad + 1]), read_noise=np.hstack([truth.read_noise, truth.amp33_read_noise]),
        pedestal=np.hstack([truth.pedestal, truth.amp33_pedestal]), nonlinearity=np.hstack([truth.beta, pad]),
        full_well=np.hstack([truth.full_well, pad + 1e9]), cosmic_rays=crs, drift=truth.drift,
        rng=rng, out=[data, amp33],
    )
    times["ramps_s"] = time.perf_counter() - t
    times["n_cr_deposits"] = int(len(crs))

    import romancore.datamodels as dm

    t = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        model = dm.ScienceRawModel.create_minimal(meta={"instrument": {"detector": "WFI01", "optical_element": "F158"}},
                                                  data=data, amp33=amp33)
        path = model.save(Path(tmp) / "bench_uncal.asdf")
        times["l1_bytes"] = path.stat().st_size
    times["write_s"] = time.perf_counter() - t
    times["total_s"] = sum(v for k, v in times.items() if k.endswith("_s"))
    times["total_cpu_s"] = time.process_time() - cpu0
    times["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times["size"] = args.size
    times["nresultants"] = ma.nresultants
    times["nreads"] = ma.nreads
    print(json.dumps({"bench_simulate": times}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
