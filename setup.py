"""Build the Cython kernels in ``ext/`` into ``romancore._ext.<name>``.

Every ``ext/<name>.pyx`` becomes the extension module ``romancore._ext.<name>``.
OpenMP flags are added when the compiler accepts them, so kernels may use
``prange``; without OpenMP the same kernels run on one thread.

``ROMANCORE_EXT_ONLY=name1,name2`` restricts a build to some kernels (handy
while developing one kernel with ``python setup.py build_ext --inplace``).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent.resolve()


def _compiler_accepts(flag):
    """Return True when the C compiler compiles and links a tiny OpenMP program with ``flag``."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return False
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp) / "t.c"
        c_file.write_text(src)
        cmd = [cc, flag, str(c_file), "-o", str(Path(tmp) / "t")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _openmp_flags():
    if os.environ.get("ROMANCORE_NO_OPENMP"):
        return [], []
    if sys.platform == "darwin":
        return [], []
    if _compiler_accepts("-fopenmp"):
        return ["-fopenmp"], ["-fopenmp"]
    return [], []


def _extensions():
    only = {s.strip() for s in os.environ.get("ROMANCORE_EXT_ONLY", "").split(",") if s.strip()}
    compile_omp, link_omp = _openmp_flags()
    exts = []
    for pyx in sorted((HERE / "ext").glob("*.pyx")):
        name = pyx.stem
        if only and name not in only:
            continue
        exts.append(
            Extension(
                f"romancore._ext.{name}",
                [str(pyx.relative_to(HERE))],
                include_dirs=[np.get_include(), "ext"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=["-O3"] + compile_omp,
                extra_link_args=link_omp,
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        quiet=True,
    )


class BuildPyWithSchemas(build_py):
    """Install the top-level ``schemas/`` folder as ``romancore/schemas``."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "romancore" / "schemas"
        target.mkdir(parents=True, exist_ok=True)
        for schema in sorted((HERE / "schemas").glob("*.yaml")):
            shutil.copy2(schema, target / schema.name)


setup(ext_modules=_extensions(), cmdclass={"build_py": BuildPyWithSchemas})
