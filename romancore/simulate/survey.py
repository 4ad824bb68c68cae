"""Complete simulated data sets: dithered L1 exposures, truth tables, reference files, a
local CRDS cache and an association, written through the romancore data models.

Layout of a data set written by :func:`make_dataset` in ``out``::

    out/r<visit id>_<group/seq/act>_<exposure>_<det>_uncal.asdf   L1 exposures
    out/truth/<same stem>_truth.ecsv        sources on that exposure (true pixel positions)
    out/truth/<same stem>_cosmicrays.ecsv   cosmic-ray deposits (pixel, read, electrons)
    out/truth/sources.ecsv                  every simulated source
    out/astrometric_refcat.ecsv             stars with 5 mas position noise (for tweakreg)
    out/<product>_asn.json                  association of the *_cal.asdf the ELP will write
    out/crds_cache/...                      references + mappings (CRDS_PATH)
    out/manifest.json                       what was written and how
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.time import Time

from ..errors import ParameterError
from . import crds_cache as cc
from .instrument import (
    BORDER,
    BORESIGHT_V2V3,
    CHANNEL_WIDTH,
    DEFAULT_MA_TABLE,
    FILTERS,
    MA_TABLES,
    PLATE_SCALE,
    DetectorGeometry,
    MATable,
    boresight_attitude,
    check_detector,
    check_filter,
    detector_wcsinfo,
    photmjsr,
    pixel_area_sr,
    v2v3_to_sky,
)
from .ramps import cosmic_ray_hits, simulate_resultants
from .references import DetectorTruth, make_detector_truth, reference_arrays
from .scene import _tangent_offsets, make_sources, render_sources, source_positions, truth_table

SIZES = {"full": 4096, "small": 128}
USEAFTER = "2020-01-01 00:00:00"


@dataclass(frozen=True)
class VisitId:
    """Fields of the Roman exposure file name."""

    program: int = 1
    execution_plan: int = 1
    pass_: int = 1
    segment: int = 1
    observation: int = 1
    visit: int = 1
    visit_file_group: int = 1
    visit_file_sequence: int = 1
    visit_file_activity: int = 1

    @property
    def visit_id(self) -> str:
        return (f"{self.program:05d}{self.execution_plan:02d}{self.pass_:03d}{self.segment:03d}"
                f"{self.observation:03d}{self.visit:03d}")

    def basename(self, exposure: int, detector: str) -> str:
        """e.g. ``r0000101001001001001_01101_0001_wfi01``."""
        return (f"r{self.visit_id}_{self.visit_file_group:02d}{self.visit_file_sequence:1d}"
                f"{self.visit_file_activity:02d}_{exposure:04d}_{check_detector(detector).lower()}")


def _time_str(t: Time) -> str:
    return t.utc.strftime("%Y-%m-%d %H:%M:%S")


def footprint(geometry: DetectorGeometry, attitude) -> tuple[np.ndarray, np.ndarray]:
    """Sky (ra, dec) of the 4 outer corners of the science array."""
    n = geometry.nside
    x = np.array([-0.5, n - 0.5, n - 0.5, -0.5])
    y = np.array([-0.5, -0.5, n - 0.5, n - 0.5])
    return v2v3_to_sky(attitude, *geometry.pixel_to_v2v3(x, y))


def s_region(ra, dec) -> str:
    return "POLYGON ICRS " + " ".join(f"{a % 360:.9f} {d:.9f}" for a, d in zip(ra, dec, strict=True))


# ---------------------------------------------------------------------------------------------
# Reference files


def _ref_meta(reftype: str, detector: str, description: str, optical_element: str | None = None,
              exposure_type: bool = False) -> dict:
    meta = {"reftype": reftype.upper(), "author": "romancore.simulate", "description": description,
            "pedigree": "DUMMY", "useafter": Time(USEAFTER.replace(" ", "T"), scale="utc"),
            "telescope": "ROMAN", "origin": "romancore",
            "instrument": {"name": "WFI", "detector": detector}}
    if optical_element is not None:
        meta["instrument"]["optical_element"] = optical_element
    if exposure_type:
        meta["exposure"] = {"type": "WFI_IMAGE", "p_exptype": "WFI_IMAGE|"}
    return meta


def photom_table(gain: float) -> dict:
    """phot_table of the PHOTOM reference: one row per optical element."""
    table = {}
    area = pixel_area_sr() * u.sr
    for f in FILTERS:
        c = photmjsr(f, gain)
        table[f] = {"photmjsr": c * u.MJy / u.sr, "uncertainty": 0.01 * c * u.MJy / u.sr,
                    "pixelareasr": area}
    for f in ("GRISM", "PRISM", "DARK"):
        table[f] = {"photmjsr": None, "uncertainty": None, "pixelareasr": None}
    return table


def write_reference_files(truth: DetectorTruth, optical_element: str, refdir: Path,
                          serial: dict[str, int]) -> list[cc.CacheEntry]:
    """Write the reference set of one detector (and one filter where it matters) into
    ``refdir`` as ``roman_wfi_<reftype>_<NNNN>.asdf``; ``serial`` counts files per reftype.
    Returns CRDS cache entries selecting them."""
    from .. import datamodels as dm

    det = truth.detector
    opt = check_filter(optical_element)
    arrays = reference_arrays(truth)
    geometry = DetectorGeometry(det, nside=truth.shape[0] - 2 * BORDER)
    jobs = [
        ("mask", dm.MaskRefModel, arrays["mask"], {}, "Bad-pixel mask of the simulated detector"),
        ("saturation", dm.SaturationRefModel, arrays["saturation"], {},
         "Saturation threshold (raw DN) = reading at 97% of the full well"),
        ("refpix", dm.RefpixRefModel, arrays["refpix"], {},
         "Reference-pixel weights: left/right columns averaged, low-passed"),
        ("linearity", dm.LinearityRefModel, arrays["linearity"], {},
         "Raw DN -> linear DN polynomial (coeffs[k] multiplies x^k)"),
        ("inverselinearity", dm.InverseLinearityRefModel, arrays["inverselinearity"], {},
         "Linear DN -> raw DN polynomial (coeffs[k] multiplies x^k)"),
        ("dark", dm.DarkRefModel, arrays["dark"], {"exposure_type": True}, "Dark current (DN/s)"),
        ("gain", dm.GainRefModel, arrays["gain"], {}, "Gain (e/DN)"),
        ("readnoise", dm.ReadnoiseRefModel, arrays["readnoise"], {"exposure_type": True},
         "Read noise of one read (DN)"),
        ("flat", dm.FlatRefModel, arrays["flat"], {"optical_element": opt}, "Flat-field response"),
        ("distortion", dm.DistortionRefModel,
         {"coordinate_distortion_transform": geometry.astropy_model()}, {"optical_element": opt},
         "Science pixel (0-based) -> V2/V3 (arcsec) cubic polynomial"),
        ("photom", dm.WfiImgPhotomRefModel,
         {"phot_table": photom_table(float(np.mean(truth.gain)))}, {}, "Imaging photometry"),
    ]
    entries = []
    for reftype, cls, arrs, extra, descr in jobs:
        serial[reftype] = serial.get(reftype, 0) + 1
        name = f"roman_wfi_{reftype}_{serial[reftype]:04d}.asdf"
        meta = _ref_meta(reftype, det, f"{descr}; {det}", extra.get("optical_element"),
                         extra.get("exposure_type", False))
        if reftype == "distortion":
            meta.update({"input_units": "pixel", "output_units": "arcsec"})
        model = cls.create_minimal(meta=meta, **arrs)
        model.save(refdir / name, overwrite=True)
        sel = {"detector": det, "optical_element": opt, "exposure_type": "WFI_IMAGE"}
        entries.append(cc.CacheEntry(reftype, name, USEAFTER, sel))
    return entries


def write_darkdecaysignal(refdir: Path, detectors) -> cc.CacheEntry:
    """One DARKDECAYSIGNAL file (no detector selector in crds): the simulation has no
    dark-decay transient, so every detector's amplitude is 0 DN."""
    from .. import datamodels as dm

    table = {det: {"amplitude": 0.0, "time_constant": 23.0} for det in detectors}
    name = "roman_wfi_darkdecaysignal_0001.asdf"
    meta = _ref_meta("darkdecaysignal", check_detector(detectors[0]),
                     "Dark decay amplitude (DN) and time constant (s) per detector; zero in the simulation")
    dm.DarkDecaySignalRefModel.create_minimal(meta=meta, decay_table=table).save(refdir / name, overwrite=True)
    return cc.CacheEntry("darkdecaysignal", name, USEAFTER, {})


def write_skycells(refdir: Path, center, radius_deg: float) -> cc.CacheEntry:
    """SKYCELLS reference covering a cone (romancore.skycells' tessellation, only the
    projection regions within ``radius_deg`` of ``center``)."""
    from .. import datamodels as dm
    from ..skycells import make_skycell_table

    table = make_skycell_table(center=(float(center[0]), float(center[1])), radius=float(radius_deg))
    meta = {"reftype": "SKYCELLS", "author": "romancore.simulate",
            "description": f"Skycells of the projection regions within {radius_deg:.3f} deg of "
                           f"({center[0]:.5f}, {center[1]:.5f})",
            "pedigree": "DUMMY", "useafter": Time(USEAFTER.replace(" ", "T"), scale="utc"),
            **table.meta}
    name = "roman_wfi_skycells_0001.asdf"
    dm.SkycellsRefModel.create_minimal(meta=meta, projection_regions=table.projection_regions,
                                       skycells=table.skycells).save(refdir / name, overwrite=True)
    return cc.CacheEntry("skycells", name, USEAFTER, {})


# ---------------------------------------------------------------------------------------------
# Exposures


def l1_meta(*, detector, optical_element, ma: MATable, start_time: Time, visit: VisitId,
            exposure: int, nexposures: int, nominal_attitude, target_radec, dither,
            nside: int) -> dict:
    geometry = DetectorGeometry(detector, nside=nside)
    wcsinfo = detector_wcsinfo(nominal_attitude, detector)
    wcsinfo["s_region"] = s_region(*footprint(geometry, nominal_attitude))
    ra_v1, dec_v1 = (float(v) for v in v2v3_to_sky(nominal_attitude, 0.0, 0.0))
    v1 = detector_wcsinfo(nominal_attitude, "WFI01")  # roll of V3 at the V1 axis is close to it
    end = start_time + ma.exposure_time * u.s
    mjd = float(start_time.mjd)
    return {
        "product_type": "l1",
        "exposure": {"type": "WFI_IMAGE", "start_time": start_time, "end_time": end,
                     "engineering_quality": "OK", "nresultants": ma.nresultants,
                     "data_problem": "NONE", "frame_time": ma.frame_time,
                     "exposure_time": ma.exposure_time,
                     "effective_exposure_time": ma.effective_exposure_time,
                     "ma_table_name": ma.name, "ma_table_number": ma.number,
                     "ma_table_id": f"SIM{ma.number:03d}", "read_pattern": ma.as_list(),
                     "truncated": False, "hga_move": False},
        "instrument": {"name": "WFI", "detector": detector, "optical_element": optical_element},
        "observation": {"observation_id": visit.visit_id[:16], "visit_id": visit.visit_id,
                        "program": visit.program, "execution_plan": visit.execution_plan,
                        "pass": visit.pass_, "segment": visit.segment,
                        "observation": visit.observation, "visit": visit.visit,
                        "visit_file_group": visit.visit_file_group,
                        "visit_file_sequence": visit.visit_file_sequence,
                        "visit_file_activity": f"{visit.visit_file_activity:02d}",
                        "exposure": exposure, "wfi_parallel": False},
        "pointing": {"pa_aperture": wcsinfo["roll_ref"], "pointing_engineering_source": "CALCULATED",
                     "ra_v1": ra_v1, "dec_v1": dec_v1, "pa_v3": v1["roll_ref"],
                     "target_aperture": "WFI_CEN", "target_ra": float(target_radec[0]),
                     "target_dec": float(target_radec[1])},
        "program": {"title": "romancore simulated field", "investigator_name": "romancore",
                    "category": "SIM", "subcategory": "NONE", "science_category": "SIM"},
        "ephemeris": {"type": "DEFINITIVE", "time": mjd, "ephemeris_reference_frame": "EME2000",
                      "spatial_x": 1.2e6, "spatial_y": -8.0e5, "spatial_z": 3.0e5,
                      "velocity_x": 0.1, "velocity_y": 0.2, "velocity_z": -0.05},
        "velocity_aberration": {"ra_reference": wcsinfo["ra_ref"], "dec_reference": wcsinfo["dec_ref"],
                                "scale_factor": 1.0},
        "visit": {"dither": {"primary_name": "SIM", "subpixel_name": "SIM",
                             "executed_pattern": [float(v) for v in dither]},
                  "type": "PRIME_TARGETED_FIXED", "start_time": start_time,
                  "nexposures": nexposures, "internal_target": False},
        "wcsinfo": wcsinfo,
    }


def simulate_exposure(path: Path, *, truth: DetectorTruth, optical_element: str, ma: MATable,
                      sources: np.ndarray, true_attitude, meta: dict, sky_rate: float,
                      rng: np.random.Generator, cr_rate: float = 5.0, readout_drift: bool = True):
    """Render the scene, simulate the ramps and write one L1 file. Returns
    (path, truth table, cosmic-ray table)."""
    from .. import datamodels as dm

    ny, nx = truth.shape
    sci_shape = (ny - 2 * BORDER, nx - 2 * BORDER)
    geometry = DetectorGeometry(truth.detector, nside=sci_shape[0])
    x, y = source_positions(sources, geometry, true_attitude)
    rate = np.zeros((ny, nx + CHANNEL_WIDTH), np.float32)
    sci = rate[BORDER:ny - BORDER, BORDER:nx - BORDER]
    sci += render_sources(sources, x, y, sci_shape, optical_element)
    sci += np.float32(sky_rate)
    sci *= truth.flat[BORDER:-BORDER, BORDER:-BORDER]
    rate[:, :nx] += truth.dark_rate

    pad = np.zeros((ny, CHANNEL_WIDTH), np.float32)

    def both(a, b):
        return np.hstack([a, b])

    crs = cosmic_ray_hits((ny, nx), ma.read_pattern, ma.frame_time, rng, rate_per_cm2_s=cr_rate)
    data = np.empty((ma.nresultants, ny, nx), np.uint16)
    amp33 = np.empty((ma.nresultants, ny, CHANNEL_WIDTH), np.uint16)
    simulate_resultants(
        rate, ma.read_pattern, ma.frame_time,
        gain=both(truth.gain, np.ones_like(pad)),
        read_noise=both(truth.read_noise, truth.amp33_read_noise),
        pedestal=both(truth.pedestal, truth.amp33_pedestal),
        nonlinearity=both(truth.beta, pad),
        full_well=both(truth.full_well, np.full_like(pad, 1e9)),
        cosmic_rays=crs, drift=truth.drift if readout_drift else None, rng=rng, out=[data, amp33],
    )
    del rate
    model = dm.ScienceRawModel.create_minimal(meta=meta, data=data, amp33=amp33)
    model.save(path, overwrite=True)
    tt = truth_table(sources, x, y, sci_shape, optical_element)
    tt.meta["exposure"] = path.name
    tt.meta["sky_rate_e_s"] = float(sky_rate)
    tt.meta["note"] = "x, y: 0-based science-array pixels at the TRUE pointing"
    crt = Table(crs)
    crt["y"] -= BORDER
    crt["x"] -= BORDER
    crt.meta["note"] = ("x, y: 0-based science-array pixels; read: first 1-based read containing "
                        "the charge; charge in electrons")
    return path, tt, crt


def dither_offsets(n: int, size: str) -> list[tuple[float, float]]:
    """Offsets (pixels along the detector axes) of n exposures: a large step plus a sub-pixel
    step per exposure (so every exposure samples a different pixel phase)."""
    big = 40.0 if size == "small" else 400.0
    sub = [(0.0, 0.0), (0.5, 0.5), (0.25, 0.75), (0.75, 0.25), (0.5, 0.0), (0.0, 0.5)]
    out = []
    for k in range(n):
        ang = 2.399963 * k  # golden-angle spiral of large dithers
        r = big * math.sqrt(k) / math.sqrt(max(n - 1, 1)) if k else 0.0
        out.append((r * math.cos(ang) + sub[k % 6][0], r * math.sin(ang) + sub[k % 6][1]))
    return out


def make_dataset(out, *, detectors=("WFI01",), n_exposures: int = 4, optical_element: str = "F158",
                 size: str = "small", ma_table: str | MATable = DEFAULT_MA_TABLE, seed: int = 1,
                 ra: float = 270.0, dec: float = 66.0, roll: float = 0.0,
                 pointing_error_arcsec: float = 0.3, sky_rates=None,
                 stars_per_arcmin2: float | None = None, galaxies_per_arcmin2: float | None = None,
                 start_time: str = "2027-06-01T00:00:00", cr_rate: float = 5.0,
                 readout_drift: bool = True, log=print) -> dict:
    """Write a complete simulated data set (see the module docstring). Returns the manifest.

    ``readout_drift=False`` leaves out the per-read channel offsets/trends and the common
    readout wave (constant per-amplifier pedestals stay), for data that will be calibrated
    without the refpix step."""
    out = Path(out)
    detectors = [check_detector(d) for d in detectors]
    if len(set(detectors)) != len(detectors) or not detectors:
        raise ParameterError(f"detectors={detectors!r} must be a non-empty list without repeats")
    opt = check_filter(optical_element)
    if size not in SIZES:
        raise ParameterError(f"size={size!r} must be one of {sorted(SIZES)}")
    if isinstance(ma_table, str):
        if ma_table not in MA_TABLES:
            raise ParameterError(f"ma_table={ma_table!r} must be one of {sorted(MA_TABLES)}")
        ma = MA_TABLES[ma_table]
    else:
        ma = ma_table
    if not 1 <= int(n_exposures) <= 99:
        raise ParameterError(f"n_exposures={n_exposures!r} must be between 1 and 99")
    n_exposures = int(n_exposures)
    nfull = SIZES[size]
    nside = nfull - 2 * BORDER
    rng = np.random.default_rng(seed)
    if sky_rates is None:
        sky_rates = [0.6 + 0.15 * k for k in range(n_exposures)]
    if len(sky_rates) != n_exposures:
        raise ParameterError(f"sky_rates has {len(sky_rates)} values for {n_exposures} exposures")
    stars = stars_per_arcmin2 if stars_per_arcmin2 is not None else (15.0 if size == "full" else 1500.0)
    gals = galaxies_per_arcmin2 if galaxies_per_arcmin2 is not None else (8.0 if size == "full" else 500.0)

    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    cache = out / "crds_cache"
    refdir = cc.references_dir(cache)
    refdir.mkdir(parents=True, exist_ok=True)

    # Pointings: nominal (what the metadata says) and true (with pointing errors).
    base = boresight_attitude(ra, dec, roll)
    pointings = []
    for k, (dx, dy) in enumerate(dither_offsets(n_exposures, size)):
        g = DetectorGeometry(detectors[0], nside=nside)
        dv2 = g.lin[0, 0] * dx + g.lin[0, 1] * dy
        dv3 = g.lin[1, 0] * dx + g.lin[1, 1] * dy
        bra, bdec = v2v3_to_sky(base, BORESIGHT_V2V3[0] + dv2, BORESIGHT_V2V3[1] + dv3)
        nominal = boresight_attitude(float(bra), float(bdec), roll)
        if pointing_error_arcsec > 0 and k > 0:
            e = rng.normal(0, pointing_error_arcsec / 3600.0, 2)
            # Roll error that moves a detector ~2000″ from the boresight by the same amount.
            er = rng.normal(0, math.degrees(pointing_error_arcsec / 2000.0))
            true = boresight_attitude(float(bra) + e[0] / math.cos(math.radians(float(bdec))),
                                      float(bdec) + e[1], roll + er)
        else:
            true = nominal
        pointings.append((nominal, true, (dx, dy)))

    # Sources: drawn in boxes around every detector's footprints (no double counting).
    src_parts = []
    boxes = []
    for det in detectors:
        geometry = DetectorGeometry(det, nside=nside)
        ras, decs = [], []
        for _, true, _ in pointings:
            r_, d_ = footprint(geometry, true)
            ras.append(r_)
            decs.append(d_)
        ras, decs = np.concatenate(ras), np.concatenate(decs)
        c_ra, c_dec = float(np.mean(ras)), float(np.mean(decs))
        xi, eta = _tangent_offsets(ras, decs, c_ra, c_dec)
        half = float(max(np.abs(xi).max(), np.abs(eta).max())) + 5 * PLATE_SCALE / 3600
        s = make_sources(c_ra, c_dec, half, opt, rng, stars_per_arcmin2=stars,
                         galaxies_per_arcmin2=gals)
        for bra, bdec, bh in boxes:
            bx, by = _tangent_offsets(s["ra"], s["dec"], bra, bdec)
            s = s[~((np.abs(bx) < bh) & (np.abs(by) < bh))]
        boxes.append((c_ra, c_dec, half))
        src_parts.append(s)
    sources = np.concatenate(src_parts)
    sources["id"] = np.arange(1, len(sources) + 1)
    Table(sources).write(out / "truth" / "sources.ecsv", overwrite=True)
    stars_only = sources[sources["kind"] == "star"]
    noise = 0.005 / 3600.0
    refcat = Table({"ra": stars_only["ra"] + rng.normal(0, noise, len(stars_only)) /
                    np.cos(np.radians(stars_only["dec"])),
                    "dec": stars_only["dec"] + rng.normal(0, noise, len(stars_only)),
                    "abmag": stars_only["abmag"], "id": stars_only["id"]})
    refcat.meta["note"] = "truth stars with 5 mas Gaussian position noise"
    refcat.write(out / "astrometric_refcat.ecsv", overwrite=True)
    log(f"sources: {len(sources)} ({len(stars_only)} stars) -> {out / 'truth' / 'sources.ecsv'}")

    # References and CRDS cache.
    serial: dict[str, int] = {}
    entries = []
    truths = {}
    for det in detectors:
        truth = make_detector_truth(det, (nfull, nfull), seed, nreads_max=ma.nreads)
        truths[det] = truth
        entries += write_reference_files(truth, opt, refdir, serial)
        log(f"references for {det}/{opt} -> {refdir}")
    entries.append(write_darkdecaysignal(refdir, detectors))
    corners = np.concatenate([np.stack(footprint(DetectorGeometry(d, nside=nside), t), axis=1)
                              for d in detectors for _, t, _ in pointings])
    c_ra, c_dec = (float(v) for v in v2v3_to_sky(base, *BORESIGHT_V2V3))
    xi, eta = _tangent_offsets(corners[:, 0], corners[:, 1], c_ra, c_dec)
    entries.append(write_skycells(refdir, (c_ra, c_dec), float(np.hypot(xi, eta).max()) + 0.05))
    env = cc.write_crds_cache(cache, entries)
    log(f"CRDS cache -> {cache}")

    # Exposures.
    visit = VisitId()
    t0 = Time(start_time, scale="utc")
    uncal, cals = [], []
    for k, (nominal, true, (dx, dy)) in enumerate(pointings):
        start = t0 + k * (ma.exposure_time + 60.0) * u.s
        for det in detectors:
            stem = visit.basename(k + 1, det)
            meta = l1_meta(detector=det, optical_element=opt, ma=ma, start_time=start, visit=visit,
                           exposure=k + 1, nexposures=n_exposures, nominal_attitude=nominal,
                           target_radec=(ra, dec), dither=(dx, dy), nside=nside)
            path, tt, crt = simulate_exposure(out / f"{stem}_uncal.asdf", truth=truths[det],
                                              optical_element=opt, ma=ma, sources=sources,
                                              true_attitude=true, meta=meta, sky_rate=sky_rates[k],
                                              rng=rng, cr_rate=cr_rate, readout_drift=readout_drift)
            tt.meta["pointing_nominal"] = detector_wcsinfo(nominal, det)
            tt.meta["pointing_true"] = detector_wcsinfo(true, det)
            tt.write(out / "truth" / f"{stem}_truth.ecsv", overwrite=True)
            crt.write(out / "truth" / f"{stem}_cosmicrays.ecsv", overwrite=True)
            uncal.append(path.name)
            cals.append(f"{stem}_cal.asdf")
            log(f"L1 {path.name}: {len(tt)} sources, {len(np.unique(crt['hit']))} CR hits, "
                f"sky {sky_rates[k]:.2f} e/s")

    product = f"r{visit.visit_id}_{opt.lower()}"
    from ..associations import asn_from_list, save_asn

    asn = asn_from_list([(out / c, "science") for c in cals], product, with_exptype=True,
                        rule="DMS_ELPP_Base", asn_type="image", asn_id="a3001", target="none",
                        asn_pool="romancore_sim", program=f"{visit.program:05d}")
    asn_path = save_asn(asn, out / f"{product}_asn.json")
    manifest = {"uncal": uncal, "association": asn_path.name, "crds_env": env,
                "references": {e.filename: {"reftype": e.reftype, **e.selectors} for e in entries},
                "truth": "truth/", "refcat": "astrometric_refcat.ecsv", "seed": seed,
                "ma_table": ma.name, "size": size, "readout_drift": bool(readout_drift), "optical_element": opt, "detectors": detectors}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log(f"association -> {asn_path}")
    return manifest
