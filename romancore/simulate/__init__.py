"""Embedded simulator: synthetic WFI exposures with known truth and a matching reference set.

* :mod:`.instrument` — detectors, filters, MA tables, geometry (pixels ↔ V2/V3 ↔ sky);
* :mod:`.scene` — stars/galaxies on the sky, rendered to rate images (e/s);
* :mod:`.ramps` — read-by-read ramp generation streamed into resultants, cosmic rays;
* :mod:`.references` — the simulated detector's true properties and the reference arrays;
* :mod:`.crds_cache` — a local CRDS cache the real ``crds`` library reads offline;
* :mod:`.survey` — dithered data sets written as L1 files, truth tables, association.

Submodules import only numpy/scipy/astropy until a file is written.
"""

from .instrument import MA_TABLES, DetectorGeometry, MATable, resultant_times
from .ramps import cosmic_ray_hits, simulate_resultants
from .references import DetectorTruth, make_detector_truth, reference_arrays
from .survey import make_dataset

__all__ = ["MA_TABLES", "MATable", "DetectorGeometry", "resultant_times", "simulate_resultants",
           "cosmic_ray_hits", "DetectorTruth", "make_detector_truth", "reference_arrays",
           "make_dataset"]
