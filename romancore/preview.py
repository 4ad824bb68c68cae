"""Static preview images of Roman images: downsampled PNGs with a percentile stretch.

Follows the archive requirements of the reference documentation: 1080×1080 previews and
300×300 thumbnails, PNG, a 90th-percentile linear stretch, the ``afmhot`` colormap and an
optional compass rose showing north and east from the image WCS.  Images are shown with
pixel (0, 0) at the lower left (the astronomical convention).

matplotlib is an optional dependency (``pip install "romancore[preview]"``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import ParameterError, RomancoreError

__all__ = ["downsample", "percentile_stretch", "compass_directions", "make_preview"]


def downsample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Block-average ``image`` to at most ``shape`` (ny, nx), ignoring NaNs.

    The block size is the same along both axes (so the aspect ratio is kept); a block
    without any finite pixel is NaN.  Images already smaller are returned as float32.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ParameterError(f"preview needs a 2-D image, got shape {img.shape}")
    ny, nx = shape
    if ny < 1 or nx < 1:
        raise ParameterError(f"preview shape must be positive, got {shape}")
    block = max(1, math.ceil(max(img.shape[0] / ny, img.shape[1] / nx)))
    if block == 1:
        return img.copy()
    by, bx = math.ceil(img.shape[0] / block), math.ceil(img.shape[1] / block)
    padded = np.full((by * block, bx * block), np.nan, dtype=np.float32)
    padded[: img.shape[0], : img.shape[1]] = img
    blocks = padded.reshape(by, block, bx, block)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / count).astype(np.float32)
    out[count == 0] = np.nan
    return out


def percentile_stretch(image: np.ndarray, percent: float = 90.0) -> np.ndarray:
    """Linear stretch to [0, 1] between the (50∓percent/2) percentiles of the finite pixels.

    NaN pixels stay NaN (they are drawn in the colormap's 'bad' colour).
    """
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.full(image.shape, np.nan, dtype=np.float32)
    lo, hi = np.percentile(finite, [50.0 - percent / 2.0, 50.0 + percent / 2.0])
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    out[~np.isfinite(image)] = np.nan
    return out


def compass_directions(wcs, x: float, y: float, *, step: float = 10.0):
    """Unit vectors (dx, dy) in pixel space pointing north and east at pixel (x, y)."""
    ra, dec = wcs(x, y)
    d = step * 0.11 / 3600.0
    out = []
    for dra, ddec in ((0.0, d), (d / max(math.cos(math.radians(dec)), 1e-6), 0.0)):
        px, py = wcs.invert(ra + dra, dec + ddec)
        v = np.array([px - x, py - y], dtype=float)
        n = np.hypot(*v)
        if not np.isfinite(n) or n == 0:
            raise RomancoreError("the WCS cannot be inverted near the image centre; no compass")
        out.append(v / n)
    return out[0], out[1]


def make_preview(model, output, shape=(1080, 1080), *, compass: bool = True, cmap: str = "afmhot") -> Path:
    """Write a PNG preview of a 2-D image model (or array) and return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RomancoreError('previews need matplotlib: pip install "romancore[preview]"') from exc
    data = np.asarray(model.data if hasattr(model, "data") else model)
    small = downsample(data, shape)
    stretched = percentile_stretch(small)
    ny, nx = shape
    dpi = 100
    fig = plt.figure(figsize=(nx / dpi, ny / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    # pixels without data (NaN) show as black, not as the figure background
    colormap = plt.get_cmap(cmap).with_extremes(bad="black")
    ax.imshow(stretched, origin="lower", cmap=colormap, vmin=0, vmax=1, interpolation="nearest",
              extent=(0, nx, 0, ny), aspect="auto")
    ax.set_xlim(0, nx)
    ax.set_ylim(0, ny)
    wcs = model.meta.get("wcs") if hasattr(model, "meta") else None
    if compass and wcs is not None:
        cy, cx = (data.shape[0] - 1) / 2.0, (data.shape[1] - 1) / 2.0
        north, east = compass_directions(wcs, cx, cy)
        # the displayed image is scaled to the output size: directions scale per axis
        sx, sy = nx / data.shape[1], ny / data.shape[0]
        origin = np.array([0.12 * nx, 0.12 * ny])
        length = 0.08 * min(nx, ny)
        for vec, label in ((north, "N"), (east, "E")):
            v = np.array([vec[0] * sx, vec[1] * sy])
            v = v / np.hypot(*v) * length
            ax.annotate("", xy=origin + v, xytext=origin,
                        arrowprops={"arrowstyle": "->", "color": "cyan", "lw": max(1.0, min(nx, ny) / 300)})
            ax.text(*(origin + 1.3 * v), label, color="cyan", ha="center", va="center",
                    fontsize=max(6, min(nx, ny) / 40))
    out = Path(output)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
