"""romancore-mos: Mosaic Level Pipeline on an association or a list of _cal files."""

from __future__ import annotations

import sys

from . import common


def main(argv=None) -> int:
    from romancore.pipeline import MosaicPipeline

    return common.pipeline_main(MosaicPipeline, "romancore-mos", argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
