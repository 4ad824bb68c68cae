"""``romancore-demo``: simulate a small dithered survey, run both pipelines, compare with truth.

    romancore-demo [--out DIR] [--size full|small] [--exposures N] [--seed N]

Works offline on a fresh machine: the simulator writes the reference files and a local
CRDS cache, and the pipelines select references from it with the real crds library.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..errors import RomancoreError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="romancore-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="romancore_demo", help="output folder (default %(default)s)")
    parser.add_argument("--size", choices=("full", "small"), default="full",
                        help="full: 4096x4096 detectors; small: 128x128 for a quick run (default %(default)s)")
    parser.add_argument("--exposures", type=int, default=4, help="dithered exposures (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    args = parser.parse_args(argv)
    if args.exposures < 1:
        parser.error(f"--exposures must be >= 1, got {args.exposures}")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    # without --verbose: warnings, plus the progress lines of the exposure loop
    handler.addFilter(lambda r: args.verbose or r.levelno >= logging.WARNING or r.name == "romancore.progress")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("romancore.progress").setLevel(logging.INFO)
    if not args.verbose:
        logging.getLogger("tweakwcs").setLevel(logging.WARNING)
    from ..demo import format_summary, run_demo

    try:
        summary = run_demo(args.out, size=args.size, n_exposures=args.exposures, seed=args.seed)
    except (RomancoreError, OSError) as exc:
        if args.debug:
            raise
        print(f"romancore-demo: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
