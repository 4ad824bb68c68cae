"""Benchmark ``fit_ramps_cas22`` on a full-size WFI cube; prints one JSON document.

Each configuration runs in a fresh Python process so its peak RSS (``ru_maxrss``) is its own:
the process builds a 9 x 4096 x 4096 float32 ramp (the 9-resultant read pattern, frame time
3.16247 s, rates 0.1-1000 e/s, read noise and ~1e-4 cosmic rays per pixel) and fits the
4088 x 4088 science area through the strided view ``data[:, 4:-4, 4:-4]`` with jump
detection, as the pipeline does.  ``--contiguous`` fits a 9 x 4088 x 4088 cube instead.

    python benchmarks/bench_ramp_fit.py [--threads 1 2] [--size 4096] [--contiguous]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

PATTERN_9 = [[1], [2], [3, 4], list(range(5, 10)), list(range(10, 18)), list(range(18, 26)),
             list(range(26, 34)), list(range(34, 44)), [44]]
FRAME = 3.16247
GAIN = 2.0
READ_NOISE_DN = 6.0


def _one(size: int, nthreads: int, contiguous: bool) -> dict:
    import numpy as np

    from romancore.algorithms.ramp_fit import fit_ramps_cas22, read_pattern_quantities

    rng = np.random.default_rng(1)
    q = read_pattern_quantities(PATTERN_9, FRAME)
    n = size - 8 if contiguous else size
    rate = (10 ** rng.uniform(-1, 3, (n, n)) / GAIN).astype(np.float32)  # DN/s
    cube = np.empty((len(PATTERN_9), n, n), np.float32)
    hit = rng.random((n, n)) < 1e-4
    hit_at = rng.integers(1, len(PATTERN_9), (n, n), dtype=np.int8)
    for i, t in enumerate(q.t_bar):
        plane = cube[i]
        plane[...] = rng.standard_normal((n, n), dtype=np.float32)
        plane *= np.float32(READ_NOISE_DN / np.sqrt(q.n_reads[i]))
        plane += rate * np.float32(t) + np.float32(1000.0)
        plane[hit & (hit_at <= i)] += np.float32(500.0)
    n_hits = int(hit.sum() if contiguous else hit[4:-4, 4:-4].sum())
    del rate, hit, hit_at, plane
    data = cube if contiguous else cube[:, 4:-4, 4:-4]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = fit_ramps_cas22(data, None, None, READ_NOISE_DN, GAIN, PATTERN_9, FRAME,
                          nthreads=nthreads, record_jumps=True)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "nthreads": nthreads,
        "shape_fitted": list(data.shape),
        "strided_view": not contiguous,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(rss / 1024, 1),
        "peak_rss_mb_before_fit": round(rss_before / 1024, 1),
        "input_cube_mb": round(cube.nbytes / 2**20, 1),
        "n_jumps": int(len(out.jumps)),
        "n_hits_injected": n_hits,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--contiguous", action="store_true")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(_one(args.size, args.child, args.contiguous)))
        return 0
    runs = []
    for nt in args.threads:
        cmd = [sys.executable, __file__, "--child", str(nt), "--size", str(args.size)]
        if args.contiguous:
            cmd.append("--contiguous")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    result = {
        "benchmark": "ramp_fit.fit_ramps_cas22 (ols_cas22 + jump detection)",
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                    "python": platform.python_version()},
        "runs": runs,
    }
    by = {r["nthreads"]: r["wall_s"] for r in runs}
    if 1 in by and 2 in by and by[2] > 0:
        result["speedup_2_vs_1"] = round(by[1] / by[2], 2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
