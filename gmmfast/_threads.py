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


# A thread earns its start-up when it gets at least this much of one pass's
# work, in the kernels' measure (multiply-adds, K (D^2 + 8) + 8 per row; the
# block loop in gmmfast/_kernels.pyx sizes its regions by the same measure):
# about 0.1 ms of one core's work. Waking a sleeping OpenMP thread costs tens
# of microseconds, and far more when another thread pool (scikit-learn's
# KMeans has its own OpenMP runtime) still spins on the other cores; a pass
# over 200 rows is a few microseconds of work. One thread is no OpenMP region
# at all (the kernels run the blocks on the calling thread).
MIN_WORK_PER_THREAD = 1 << 18


def threads_for_work(n_threads, n_samples, n_features, n_components):
    """The threads worth starting for a pass over ``n_samples`` rows: at most
    ``n_threads`` (resolved), one per MIN_WORK_PER_THREAD of work, at least 1.

    Results depend on the thread count only through the order of the
    per-thread sums, so a fit is still bitwise reproducible for given data
    and ``n_threads``; a small fit gives the one-thread result."""
    work = int(n_samples) * (int(n_components) * (int(n_features) ** 2 + 8) + 8)
    return int(max(1, min(int(n_threads), work // MIN_WORK_PER_THREAD)))


# The threads the M-step's per-component algebra (LAPACK's factorisations
# beyond the compiled small shapes) may use: one outside a fit, the data
# source's kernel threads inside one (``m_step_threads``); per Python thread,
# so that fits in several threads at once each keep their own count.
_algebra = threading.local()


@contextlib.contextmanager
def m_step_threads(n_threads):
    """Let the M-step's per-component algebra use ``n_threads`` OpenMP
    threads (one component per thread, each LAPACK call single-threaded: the
    caller holds BLAS to one thread) until the block ends."""
    previous = algebra_threads()
    _algebra.n = max(1, int(n_threads))
    try:
        yield
    finally:
        _algebra.n = previous


def algebra_threads():
    """The threads ``m_step_threads`` set for this Python thread (1 if none)."""
    return getattr(_algebra, "n", 1)


_blas_lock = threading.Lock()
# depth: fits holding the limit; libs: the BLAS libraries' threadpoolctl
# controllers, looked up once (threadpoolctl's introspection of every loaded
# library is the slow part of a limit); saved: (controller, its thread count)
# of those this process set to one thread
_blas_state = {"depth": 0, "libs": None, "saved": []}


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


def _blas_libraries():
    if _blas_state["libs"] is None:
        _blas_state["libs"] = [lib for lib in ThreadpoolController().lib_controllers
                               if lib.user_api == "blas"]
    return _blas_state["libs"]


@contextlib.contextmanager
def blas_single_thread():
    """Hold BLAS to one thread during a fit or prediction.

    The kernels call BLAS from inside OpenMP threads, and the M-step's small
    K x D^3 work gains nothing from BLAS threads: worse, BLAS threads spinning
    beside OpenMP threads on the same cores slowed an iteration 3x here.
    Reference counted, so that fits in several Python threads at once restore
    the caller's setting exactly once. What threadpoolctl's
    ``limit(limits=1, user_api="blas")`` does, with its library lookup done
    once per process, and nothing set (or restored) for a library already on
    one thread.
    """
    with _blas_lock:
        if _blas_state["depth"] == 0:
            saved = [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
            saved = [(lib, n) for lib, n in saved if n != 1]
            if saved:
                _release_blas_control()
                for lib, _ in saved:
                    lib.set_num_threads(1)
                _release_blas_control()
            _blas_state["saved"] = saved
        _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                saved, _blas_state["saved"] = _blas_state["saved"], []
                if saved:
                    _release_blas_control()
                    for lib, n_threads in saved:
                        lib.set_num_threads(n_threads)
                    _release_blas_control()
