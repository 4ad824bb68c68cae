"""The mosaic ``flux`` step on a container: every L2 image from DN/s to MJy/sr (idempotent)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def flux(container):
    """Convert every member of ``container`` in place (members already converted are left alone)."""
    for index, image in enumerate(container):
        image.to_surface_brightness()
        container[index] = image
    return container
