"""Build the Cython kernels.

Metadata lives in pyproject.toml; this file only declares the extension.

Environment variables:

GMMFAST_OPENMP   "1" forces OpenMP flags, "0" builds serially; unset probes the
                 compiler with a tiny OpenMP program and falls back to a serial
                 build (loudly) when it does not compile and run.
GMMFAST_DEBUG    "1" builds with Cython bounds checks, wraparound checks and
                 assertions on, and -O0 -g (for the debug test run in CI).
GMMFAST_NATIVE   "1" adds -march=native (faster on the build machine, not portable).
"""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n);
        return n > 0 ? 0 : 1;
    }
    """
)


def _probe_openmp(compiler):
    """Compile, link and run a tiny OpenMP program; return the flags or None."""
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            exe = os.path.join(tmp, "probe")
            compiler.link_executable(objs, exe, extra_postargs=flags)
            subprocess.run([exe], check=True, capture_output=True, timeout=60)
        except Exception as exc:  # any failure means: no usable OpenMP
            return None, str(exc)
    return flags, ""


class BuildExt(build_ext):
    def build_extensions(self):
        env = os.environ.get("GMMFAST_OPENMP", "").strip()
        if env == "0":
            omp_flags, why = None, "GMMFAST_OPENMP=0"
        elif env == "1":
            omp_flags, why = ["-fopenmp"], ""
        else:
            omp_flags, why = _probe_openmp(self.compiler)
        if omp_flags is None:
            bar = "!" * 78
            sys.stderr.write(
                f"\n{bar}\n gmmfast: building WITHOUT OpenMP ({why}).\n"
                " The kernels will run on one thread; gmmfast.openmp_enabled() "
                "returns False.\n Install an OpenMP-capable compiler (gcc, or clang "
                "with libomp) for parallel EM.\n"
                f"{bar}\n\n"
            )
            omp_flags = []
        debug = os.environ.get("GMMFAST_DEBUG", "") == "1"
        opt = ["-O0", "-g"] if debug else ["-O3"]
        if os.environ.get("GMMFAST_NATIVE", "") == "1":
            opt.append("-march=native")
        for ext in self.extensions:
            ext.extra_compile_args = opt + omp_flags + ["-fno-math-errno", "-Wno-psabi"]
            ext.extra_link_args = omp_flags
        super().build_extensions()


def _extensions():
    debug = os.environ.get("GMMFAST_DEBUG", "") == "1"
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": not debug,
        "embedsignature": True,
    }
    ext = Extension(
        "gmmfast._kernels",
        ["gmmfast/_kernels.pyx"],
        depends=["gmmfast/_simd.h", "gmmfast/_simd_impl.h", "gmmfast/_simd_full.h",
                 "gmmfast/_simd_sizes.h", "gmmfast/_simd.pxd"],
        include_dirs=[numpy.get_include(), "gmmfast"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
        + ([("CYTHON_DEBUG_BUILD", "1")] if debug else []),
    )
    # Regenerate the C code when the build mode changes (debug <-> release).
    mode = "debug" if debug else "release"
    marker = os.path.join("gmmfast", ".build_mode")
    previous = open(marker).read().strip() if os.path.exists(marker) else None
    extensions = cythonize(
        [ext],
        compiler_directives=directives,
        compile_time_env={"GMMFAST_DEBUG": debug},
        force=previous != mode,
    )
    with open(marker, "w") as f:
        f.write(mode)
    return extensions


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
