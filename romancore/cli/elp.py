"""romancore-elp: Exposure Level Pipeline on one or more _uncal files or an association."""

from __future__ import annotations

import sys

from . import common


def main(argv=None) -> int:
    from romancore.pipeline import ExposurePipeline

    return common.pipeline_main(ExposurePipeline, "romancore-elp", argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
