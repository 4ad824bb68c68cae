"""Pure functions on numpy arrays and plain values, one module per step algorithm.

They validate shapes and dtypes, then call the compiled kernels in
``romancore._ext``.  No models, no files, no CRDS here.
"""
