"""romancore: calibration pipeline for the Roman Wide Field Instrument.

Importing romancore configures nothing globally (no logging handlers, no
warnings filters, no environment changes).
"""

__version__ = "0.1.0"
