"""Benchmark: drizzle one full 4088x4088 detector into a ~4300x4300 output, and the pixmap.

Prints one JSON document: wall time and peak RSS per kernel (and for the mosaic
configuration: three variance planes and the exposure-time map), and the pixmap time
sparse (stepsize 10, bicubic) vs dense with the sparse-vs-dense accuracy.  The
dense pixmap is timed on a strip of rows and scaled to the full detector (a full
dense evaluation takes minutes); the JSON says so.

Usage: ``python benchmarks/bench_drizzle.py [--threads N] [--size 4088]``
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from astropy import coordinates as coord
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from romancore.algorithms.drizzle import Drizzler  # noqa: E402
from romancore.algorithms.pixmap import calc_pixmap  # noqa: E402


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _frames():
    return cf.Frame2D(name="detector"), cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")


def detector_wcs(n, ra=80.0, dec=-30.0, roll=20.0):
    """5th-order polynomial distortion (0.11"/px) + TAN, like a WFI detector."""
    centre = models.Shift(-(n - 1) / 2) & models.Shift(-(n - 1) / 2)
    cx = dict(c1_0=0.1100, c0_1=0.0021, c2_0=2.5e-7, c1_1=-1.2e-7, c0_2=0.8e-7,
              c3_0=-1.5e-11, c2_1=0.7e-11, c1_2=-1.1e-11, c0_3=0.4e-11,
              c4_0=2.0e-15, c2_2=-1.0e-15, c0_4=1.5e-15, c5_0=-3.0e-19, c3_2=2.0e-19, c1_4=-1.0e-19)
    cy = dict(c1_0=-0.0017, c0_1=0.1085, c2_0=-0.9e-7, c1_1=2.1e-7, c0_2=-1.6e-7,
              c3_0=0.6e-11, c2_1=-1.3e-11, c1_2=0.9e-11, c0_3=-1.8e-11,
              c4_0=-1.0e-15, c3_1=1.2e-15, c0_4=-2.0e-15, c0_5=2.5e-19, c2_3=-1.5e-19, c4_1=1.0e-19)
    dist = centre | models.Mapping((0, 1, 0, 1)) | (models.Polynomial2D(5, **cx) & models.Polynomial2D(5, **cy))
    rot = np.deg2rad(roll)
    m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) / 3600.0
    sky = models.AffineTransformation2D(matrix=m) | models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra, dec, 180.0)
    det, world = _frames()
    w = gwcs_wcs.WCS([(det, dist | sky), (world, None)])
    w.bounding_box = ((-0.5, n - 0.5), (-0.5, n - 0.5))
    return w


def output_wcs(n_out, scale_arcsec, ra, dec, roll=0.0):
    rot = np.deg2rad(roll)
    m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) * scale_arcsec / 3600.0
    c = (n_out - 1) / 2
    t = ((models.Shift(-c) & models.Shift(-c)) | models.AffineTransformation2D(matrix=m)
         | models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra, dec, 180.0))
    det, world = _frames()
    return gwcs_wcs.WCS([(det, t), (world, None)])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--size", type=int, default=4088)
    ap.add_argument("--out-size", type=int, default=4300)
    ap.add_argument("--strip", type=int, default=128, help="rows of the dense pixmap timing strip")
    args = ap.parse_args()
    n = args.size
    win = detector_wcs(n)
    ra, dec = win((n - 1) / 2, (n - 1) / 2)
    wout = output_wcs(args.out_size, 0.11, ra, dec, roll=20.0)  # the detector fits in the output
    report = {"input_shape": [n, n], "output_shape": [args.out_size, args.out_size],
              "threads": args.threads}

    t0 = time.perf_counter()
    pixmap = calc_pixmap(win, wout, (n, n), stepsize=10, order=3)
    report["pixmap_sparse_s"] = round(time.perf_counter() - t0, 3)

    strip = (slice(n // 2, n // 2 + args.strip), slice(None))
    t0 = time.perf_counter()
    dense_strip = calc_pixmap(win, wout, (n, n), stepsize=1, bounding_box=((-0.5, n - 0.5),
                              (n // 2 - 0.5, n // 2 + args.strip - 1.5)))
    dt = time.perf_counter() - t0
    report["pixmap_dense_strip_rows"] = args.strip
    report["pixmap_dense_strip_s"] = round(dt, 3)
    report["pixmap_dense_full_s_extrapolated"] = round(dt * n / args.strip, 1)
    report["pixmap_sparse_vs_dense_max_px"] = float(np.nanmax(np.abs(pixmap[strip] - dense_strip[strip])))
    corner = (slice(0, 64), slice(0, 64))
    dense_corner = calc_pixmap(win, wout, (n, n), stepsize=1, bounding_box=((-0.5, 63.5), (-0.5, 63.5)))
    report["pixmap_sparse_vs_dense_corner_max_px"] = float(np.abs(pixmap[corner] - dense_corner[corner]).max())
    del dense_strip, dense_corner
    report["peak_rss_after_pixmap_mb"] = round(_peak_rss_mb(), 1)

    rng = np.random.default_rng(0)
    data = rng.normal(1.0, 0.1, (n, n)).astype(np.float32)
    weight = np.ones((n, n), np.float32)
    kernels = {}
    for kernel in ("square", "point", "turbo"):
        d = Drizzler((args.out_size, args.out_size), kernel=kernel, num_threads=args.threads,
                     pixel_scale_ratio=1.0)
        t0 = time.perf_counter()
        nhit = d.add_image(data, weight, pixmap)
        dt = time.perf_counter() - t0
        res = d.finalize()
        ok = res.weight > 0
        flux_in = float(data.astype(np.float64).sum())
        flux_out = float(np.sum(res.data[ok].astype(np.float64) * res.weight[ok]))
        kernels[kernel] = {"add_image_s": round(dt, 3), "pixels_hit": int(nhit),
                           "flux_rel_err": (flux_out - flux_in) / flux_in,
                           "peak_rss_mb": round(_peak_rss_mb(), 1)}
        del d, res
    report["kernels"] = kernels

    # the mosaic resample configuration: data, weight, context, three variance planes and the
    # exposure-time map (with its own coverage weights) in one pass per input
    var = {"var_rnoise": np.full((n, n), 25.0, np.float32),
           "var_poisson": rng.uniform(1.0, 2.0, (n, n)).astype(np.float32),
           "var_flat": np.full((n, n), 0.01, np.float32)}
    cover = np.ones((n, n), np.float32)
    d = Drizzler((args.out_size, args.out_size), kernel="square", num_threads=args.threads,
                 pixel_scale_ratio=1.0, variance_planes=tuple(var), exptime_map=True)
    t0 = time.perf_counter()
    d.add_image(data, weight / 25.0, pixmap, variances=var, exptime=100.0, exptime_weight=cover)
    dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = d.finalize()
    report["square_3var_exptime"] = {
        "add_image_s": round(dt, 3), "finalize_s": round(time.perf_counter() - t0, 3),
        "median_var_rnoise": float(np.nanmedian(res.variances["var_rnoise"])),
        "peak_rss_mb": round(_peak_rss_mb(), 1)}
    del d, res, var, cover
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
