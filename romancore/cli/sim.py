"""romancore-sim: write a simulated Roman WFI data set that romancore calibrates offline.

    romancore-sim --out DIR [--detectors WFI01,WFI02] [--exposures 4] [--filter F158]
                  [--size full|small] [--ma-table C2A_IMG_HLWAS] [--seed N]

Writes L1 exposures, truth tables, a consistent reference set in a local CRDS cache, an
astrometric reference catalog and an association, then prints the environment to use.
"""

from __future__ import annotations

import sys

from romancore.errors import ParameterError

from . import common

PROG = "romancore-sim"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body(argv):
        from romancore.simulate.instrument import DEFAULT_MA_TABLE, MA_TABLES
        from romancore.simulate.survey import SIZES, make_dataset

        parser = common.make_parser(PROG, "Write a simulated WFI data set (L1, truth, references, CRDS cache, association).")
        parser.add_argument("--out", required=True, help="output directory")
        parser.add_argument("--detectors", default="WFI01", help="comma-separated detectors (default %(default)s)")
        parser.add_argument("--exposures", type=int, default=4, help="number of dithered exposures (default %(default)s)")
        parser.add_argument("--filter", default="F158", help="optical element (default %(default)s)")
        parser.add_argument("--size", default="small", choices=sorted(SIZES),
                            help="full (4096x4096) or small (128x128) detectors (default %(default)s)")
        parser.add_argument("--ma-table", default=DEFAULT_MA_TABLE, choices=sorted(MA_TABLES),
                            help="MA table / read pattern (default %(default)s)")
        parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
        parser.add_argument("--pointing-error", type=float, default=0.3,
                            help="rms pointing error of exposures 2.. in arcsec (default %(default)s)")
        parser.add_argument("--cr-rate", type=float, default=5.0,
                            help="cosmic-ray hits per cm^2 per s (default %(default)s)")
        parser.add_argument("--no-readout-drift", action="store_true",
                            help="leave out per-read readout drifts (for runs that skip refpix)")
        parser.add_argument("--ra", type=float, default=270.0, help="field RA in degrees")
        parser.add_argument("--dec", type=float, default=66.0, help="field Dec in degrees")
        parser.add_argument("--roll", type=float, default=0.0, help="V3 position angle in degrees")
        parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")

        def fail(message):
            raise ParameterError(message)

        parser.error = fail
        args = parser.parse_args(argv)
        detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
        if args.pointing_error < 0:
            raise ParameterError(f"--pointing-error {args.pointing_error}: must be >= 0")
        if args.cr_rate < 0:
            raise ParameterError(f"--cr-rate {args.cr_rate}: must be >= 0")
        if not -90 <= args.dec <= 90:
            raise ParameterError(f"--dec {args.dec}: must be within [-90, 90]")
        manifest = make_dataset(args.out, detectors=detectors, n_exposures=args.exposures,
                                optical_element=args.filter, size=args.size,
                                ma_table=args.ma_table, seed=args.seed, ra=args.ra, dec=args.dec,
                                roll=args.roll, pointing_error_arcsec=args.pointing_error,
                                cr_rate=args.cr_rate, readout_drift=not args.no_readout_drift)
        print("environment for offline CRDS:")
        for k, v in manifest["crds_env"].items():
            print(f"  export {k}={v}")
        return common.EXIT_OK

    return common.guarded(PROG, argv, body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
