"""Threads: how many OpenMP threads the kernels use, and BLAS held to one
thread while they run. Owns every thread-count decision of the package."""
import contextlib
import threading

from threadpoolctl import ThreadpoolController

from . import _kernels


def resolve_n_threads(n_threads):
    """None or -1: every core OpenMP may use (OMP_NUM_THREADS honoured)."""
    if not _kernels.openmp_enabled():
        return 1
    if n_threads is None or n_threads == -1:
        return max(1, int(_kernels.omp_max_threads()))
    return int(n_threads)


_blas_lock = threading.Lock()
_blas_state = {"depth": 0, "limiter": None, "controller": None}


def _release_blas_control():
    """Let any thread set OpenBLAS's thread count next.

    OpenBLAS's pthreads pool is process-wide, and threadpoolctl (>= 3.6)
    lets only one Python thread at a time set its size, silently ignoring
    the others; only its ``with`` blocks hand control back. blas_single_thread
    sets the limit from the first thread to enter and restores it from the
    last to leave, which may be another thread: it releases control around
    both, or the restore would be ignored and BLAS left at one thread (or a
    fit in a worker thread would not be limited at all).
    """
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:  # threadpoolctl < 3.6 has no ownership to release
        return
    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def blas_single_thread():
    """Hold BLAS to one thread during a fit or prediction.

    The kernels call BLAS from inside OpenMP threads, and the M-step's small
    K x D^3 work gains nothing from BLAS threads: worse, BLAS threads spinning
    beside OpenMP threads on the same cores slowed an iteration 3x here.
    Reference counted, so that fits in several Python threads at once restore
    the caller's setting exactly once.
    """
    with _blas_lock:
        if _blas_state["depth"] == 0:
            if _blas_state["controller"] is None:
                _blas_state["controller"] = ThreadpoolController()
            _release_blas_control()
            _blas_state["limiter"] = _blas_state["controller"].limit(
                limits=1, user_api="blas")
            _release_blas_control()
        _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                _release_blas_control()
                _blas_state["limiter"].restore_original_limits()
                _release_blas_control()
                _blas_state["limiter"] = None
