"""Build the Cython kernels.

Metadata lives in pyproject.toml; this file only declares the extensions
(gmmfast._kernels and gmmfast._kmeans_kernels).

Environment variables:

GMMFAST_OPENMP   "1" forces the compiler's OpenMP flags, "0" builds serially;
                 unset probes the compiler with a tiny OpenMP program and
                 falls back to a serial build (loudly) when it does not
                 compile and run.
GMMFAST_DEBUG    "1" builds with Cython bounds checks, wraparound checks and
                 assertions on, and no optimisation (for the debug test run
                 in CI).
GMMFAST_NATIVE   "1" adds -march=native (faster on the build machine, not
                 portable).
GMMFAST_PORTABLE "1" compiles the plain-C kernels (GM_PORTABLE in
                 gmmfast/_simd.h) instead of the GCC-vector-extension ones
                 and without per-ISA clones: what MSVC gets anyway.

Compilers (as scikit-learn's build finds OpenMP): GCC -fopenmp; clang
-fopenmp (LLVM's libomp, e.g. Debian's libomp-dev); Apple clang
-Xpreprocessor -fopenmp -lomp (Homebrew's libomp, found under
$GMMFAST_LIBOMP_PREFIX, $(brew --prefix libomp), /opt/homebrew/opt/libomp or
/usr/local/opt/libomp);
Intel icx/icc -qopenmp / -fiopenmp; MSVC /openmp. Other flags are probed
(-fno-math-errno, -fno-trapping-math, -Wno-psabi, -fopenmp-simd without
OpenMP) rather than assumed. -fno-trapping-math changes no value: it lets GCC
if-convert the clamps and selects of the kernels' exp() and log-sum-exp
loops, which GCC (12) otherwise leaves scalar ("control flow in loop");
clang vectorises them without it. CC selects the compiler on Unix as usual.
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


KIND_PROBE = textwrap.dedent(
    """
    #if defined(__INTEL_LLVM_COMPILER)
    kind_icx
    #elif defined(__INTEL_COMPILER)
    kind_icc
    #elif defined(__clang__) && defined(__apple_build_version__)
    kind_appleclang
    #elif defined(__clang__)
    kind_clang
    #elif defined(__GNUC__)
    kind_gcc
    #else
    kind_unknown
    #endif
    """
)


def _try(compiler, source, cflags=(), ldflags=(), link=False, run=False):
    """Compile (and link, and run) source with the flags; True on success."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=list(cflags))
            if link or run:
                exe = os.path.join(tmp, "probe")
                compiler.link_executable(objs, exe, extra_postargs=list(ldflags))
                if run:
                    if compiler.compiler_type == "msvc":
                        exe += ".exe"
                    subprocess.run([exe], check=True, capture_output=True, timeout=60)
        except Exception as exc:  # any failure means: no
            _try.last_error = str(exc)
            return False
    return True


_try.last_error = ""


def _compiler_kind(compiler):
    """gcc, clang, appleclang, icx, icc, msvc or unknown."""
    if compiler.compiler_type == "msvc":
        return "msvc"
    for kind in ("icx", "icc", "appleclang", "clang", "gcc"):
        src = KIND_PROBE.replace(f"kind_{kind}", "int probe_ok;") + "int main(void){return 0;}\n"
        if _try(compiler, src):
            return kind
    return "unknown"


def _libomp_prefix():
    """Homebrew's libomp (Apple clang has no OpenMP runtime of its own)."""
    candidates = [os.environ.get("GMMFAST_LIBOMP_PREFIX", "")]
    try:
        out = subprocess.run(["brew", "--prefix", "libomp"], capture_output=True,
                             text=True, timeout=60)
        candidates.append(out.stdout.strip())
    except Exception:
        pass
    candidates += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    for c in candidates:
        if c and os.path.exists(os.path.join(c, "include", "omp.h")):
            return c
    return None


def _openmp_candidates(kind):
    """(compile flags, link flags) to try in order, per compiler."""
    if kind == "msvc":
        return [(["/openmp"], [])]
    if kind == "appleclang":
        prefix = _libomp_prefix()
        inc = [f"-I{prefix}/include"] if prefix else []
        lib = [f"-L{prefix}/lib", f"-Wl,-rpath,{prefix}/lib"] if prefix else []
        return [(["-Xpreprocessor", "-fopenmp"] + inc, lib + ["-lomp"])]
    if kind == "icc":
        return [(["-qopenmp"], ["-qopenmp"])]
    if kind == "icx":
        return [(["-fiopenmp"], ["-fiopenmp"]), (["-qopenmp"], ["-qopenmp"])]
    if kind == "clang":
        return [(["-fopenmp"], ["-fopenmp"]), (["-fopenmp=libomp"], ["-fopenmp=libomp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def _probe_openmp(compiler, kind):
    """The first OpenMP flags that compile, link and run the probe, or None."""
    for cflags, ldflags in _openmp_candidates(kind):
        if _try(compiler, OPENMP_PROBE, cflags, ldflags, run=True):
            return (cflags, ldflags), ""
    lines = _try.last_error.strip().splitlines()
    return None, (lines[-1] if lines else "the OpenMP probe failed")


def _accepts(compiler, kind, flags):
    """True when the compiler takes flags without a warning (unknown
    options are often only warnings, hence -Werror)."""
    werror = [] if kind == "msvc" else ["-Werror"]
    return _try(compiler, "int main(void) { return 0; }\n", werror + list(flags))


class BuildExt(build_ext):
    def build_extensions(self):
        kind = _compiler_kind(self.compiler)
        msvc = kind == "msvc"
        env = os.environ.get("GMMFAST_OPENMP", "").strip()
        if env == "0":
            omp, why = None, "GMMFAST_OPENMP=0"
        elif env == "1":
            omp, why = _openmp_candidates(kind)[0], ""
        else:
            omp, why = _probe_openmp(self.compiler, kind)
        debug = os.environ.get("GMMFAST_DEBUG", "") == "1"
        if msvc:
            opt = ["/Od", "/Zi"] if debug else ["/O2"]
        else:
            opt = ["-O0", "-g"] if debug else ["-O3"]
        extra = []
        if omp is None:
            simd = [] if msvc else ["-fopenmp-simd"]
            simd = simd if simd and _accepts(self.compiler, kind, simd) else []
            bar = "!" * 78
            sys.stderr.write(
                f"\n{bar}\n gmmfast: building WITHOUT OpenMP ({why}; compiler: {kind}).\n"
                " The kernels will run on one thread; gmmfast.openmp_enabled() "
                "returns False.\n"
                + (f" `omp simd` loops still vectorised ({' '.join(simd)}).\n" if simd
                   else " `omp simd` loops left to the auto-vectoriser.\n")
                + " Install an OpenMP-capable compiler (gcc, or clang with libomp)"
                " for parallel EM.\n"
                f"{bar}\n\n"
            )
            cflags, ldflags = simd, []
        else:
            cflags, ldflags = omp
        if not msvc:
            for flag in ("-fno-math-errno", "-fno-trapping-math", "-Wno-psabi"):
                if _accepts(self.compiler, kind, [flag]):
                    extra.append(flag)
        if os.environ.get("GMMFAST_NATIVE", "") == "1":
            for flag in (["/arch:AVX2"] if msvc else ["-march=native", "-mcpu=native"]):
                if _accepts(self.compiler, kind, [flag]):
                    extra.append(flag)
                    break
        sys.stderr.write(f"gmmfast: compiler {kind}; flags {' '.join(opt + cflags + extra)};"
                         f" link {' '.join(ldflags)}\n")
        for ext in self.extensions:
            ext.extra_compile_args = opt + cflags + extra
            ext.extra_link_args = ldflags
        if _CONFIG_CHANGED:
            self.force = True
        super().build_extensions()


CONFIG_VARS = ("CC", "CFLAGS", "GMMFAST_OPENMP", "GMMFAST_DEBUG", "GMMFAST_NATIVE",
               "GMMFAST_PORTABLE")
_CONFIG_CHANGED = True


def _extensions():
    debug = os.environ.get("GMMFAST_DEBUG", "") == "1"
    portable = os.environ.get("GMMFAST_PORTABLE", "") == "1"
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
        depends=["gmmfast/_simd.h", "gmmfast/_simd_compat.h", "gmmfast/_simd_dtypes.h",
                 "gmmfast/_simd_impl.h",
                 "gmmfast/_simd_full.h", "gmmfast/_simd_sizes.h", "gmmfast/_simd.pxd"],
        include_dirs=[numpy.get_include(), "gmmfast"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
        + ([("CYTHON_DEBUG_BUILD", "1")] if debug else [])
        + ([("GM_PORTABLE", "1")] if portable else []),
    )
    # the streamed k-means: the Lloyd pass in plain C loops, the k-means++
    # rows vectorised (gmmfast/_kmeans_simd.h, the same ISA dispatch)
    kmeans_ext = Extension(
        "gmmfast._kmeans_kernels",
        ["gmmfast/_kmeans_kernels.pyx"],
        depends=["gmmfast/_kmeans_simd.h", "gmmfast/_simd_compat.h"],
        include_dirs=[numpy.get_include(), "gmmfast"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
        + ([("CYTHON_DEBUG_BUILD", "1")] if debug else []),
    )
    # Regenerate the C code when the build mode changes (debug <-> release),
    # and recompile it when anything else about the build does.
    mode = "debug" if debug else "release"
    config = " ".join(f"{k}={os.environ.get(k, '')}" for k in CONFIG_VARS)
    marker = os.path.join("gmmfast", ".build_mode")
    previous = open(marker).read().split("\n") if os.path.exists(marker) else ["", ""]
    extensions = cythonize(
        [ext, kmeans_ext],
        compiler_directives=directives,
        compile_time_env={"GMMFAST_DEBUG": debug},
        force=previous[0].strip() != mode,
    )
    global _CONFIG_CHANGED
    _CONFIG_CHANGED = previous[1:2] != [config]
    with open(marker, "w") as f:
        f.write(mode + "\n" + config)
    return extensions


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
