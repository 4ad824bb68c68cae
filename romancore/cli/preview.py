"""``romancore-preview``: PNG previews (1080×1080) and thumbnails (300×300) of Roman images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import RomancoreError

DEFAULTS = {"preview": ((1080, 1080), True, ""), "thumbnail": ((300, 300), False, "_thumb")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="romancore-preview", description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode, ((w, h), compass, _) in DEFAULTS.items():
        p = sub.add_parser(mode, help=f"{w}x{h} PNG{' with a compass rose' if compass else ''}")
        p.add_argument("input", help="ASDF file holding a 2-D image (L2 _cal or L3 _coadd)")
        p.add_argument("output", nargs="?", help="output PNG (default: input name with .png)")
        p.add_argument("shape", nargs="*", type=int, metavar="W H", help=f"output size in pixels (default {w} {h})")
        p.add_argument("--compass", dest="compass", action="store_true", default=compass,
                       help=f"draw north/east arrows from the WCS (default: {'on' if compass else 'off'})")
        p.add_argument("--no-compass", dest="compass", action="store_false")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    (w, h), _, suffix = DEFAULTS[args.mode]
    if args.shape:
        if len(args.shape) != 2 or min(args.shape) < 1:
            print(f"romancore-preview: error: SHAPE must be two positive integers W H, got {args.shape}", file=sys.stderr)
            return 1
        w, h = args.shape
    output = Path(args.output) if args.output else Path(args.input).with_suffix("").with_name(
        Path(args.input).with_suffix("").name + suffix + ".png")
    try:
        from .. import open as rc_open
        from ..preview import make_preview

        model = rc_open(args.input)
        path = make_preview(model, output, (h, w), compass=args.compass)
    except (RomancoreError, OSError) as exc:
        print(f"romancore-preview: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
