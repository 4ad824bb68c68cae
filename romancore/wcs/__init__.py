"""World coordinate systems of Roman WFI data: detector WCS, output grids, simulated distortion.

* :mod:`romancore.wcs.wfi` builds the detector → v2v3 → v2v3vacorr → world gwcs pipeline of an
  exposure (ALGORITHMS.md §10), its footprint and ``s_region``, the L1 variant, and the
  post-tweakreg v2/v3 tangent-plane correction.
* :mod:`romancore.wcs.grid` builds TAN output grids (ALGORITHMS.md §6.6) and the L3
  ``wcsinfo`` record of such a grid.
* :mod:`romancore.wcs.distortion` makes a smooth, realistic detector → v2v3 distortion model
  for every WFI detector, shared by the simulator and the tests.

Everything here works on astropy models, gwcs objects, plain dicts and numpy arrays; nothing
opens files or touches datamodels.
"""

from .distortion import WFI_DETECTORS, make_wfi_distortion, wfi_detector_geometry
from .grid import (
    compute_scale,
    l3_wcsinfo,
    local_orientation,
    make_output_wcs,
    make_tan_wcs,
    output_rotation_matrix,
    tan_wcs_parameters,
    wcs_from_l3_wcsinfo,
)
from .wfi import (
    DETECTOR_SHAPE,
    add_v2v3_correction,
    build_wfi_wcs,
    compute_s_region,
    footprint,
    l1_wcs_from_l2,
    v23tosky,
    velocity_aberration_model,
)

__all__ = [
    "DETECTOR_SHAPE",
    "WFI_DETECTORS",
    "add_v2v3_correction",
    "build_wfi_wcs",
    "compute_s_region",
    "compute_scale",
    "footprint",
    "l1_wcs_from_l2",
    "l3_wcsinfo",
    "local_orientation",
    "make_output_wcs",
    "make_tan_wcs",
    "make_wfi_distortion",
    "output_rotation_matrix",
    "tan_wcs_parameters",
    "v23tosky",
    "velocity_aberration_model",
    "wcs_from_l3_wcsinfo",
    "wfi_detector_geometry",
]
