"""Streamed k-means: scikit-learn's k-means++ seeding and Lloyd iterations
over the blocks of any data source, in extra memory that does not grow with
n_samples (beyond one value per row when X is in memory anyway).

Layer: beside gmmfast/_stats.py (it uses the statistics kernels for the
one-hot start of a mixture); the initialisers (gmmfast/_init.py) call it, the
data sources (gmmfast/_data.py, gmmfast/_dask.py) provide its block walkers.

The result equals scikit-learn's ``KMeans(n_clusters=K, n_init=1,
random_state=...)`` and ``kmeans_plusplus`` to rounding: the same random
draws in the same order, the same distance formulas, the same tie-breaking,
the same stopping rule. What it never builds is an n_samples-sized array
beyond one value per row for in-memory data:

- k-means++ keeps each row's closest squared distance (in the data's dtype,
  as scikit-learn does) when X is in memory anyway; for a memmap or a Dask
  array it keeps none, and each pass recomputes every row's squared
  distance to the centres chosen so far (the minimum of exactly the numbers
  scikit-learn's running ``np.minimum`` keeps). The inverse-CDF draw walks
  the cumulative weighted D^2 block after block, carrying the running sum
  (``np.cumsum`` is sequential, so a block's cumsum started from the carry
  is bitwise the whole array's);
- Lloyd keeps no labels (see ``lloyd``): a pass returns per-cluster weighted
  sums and weights, and the final labels are the argmin to the final centres,
  computed again block by block where they are used.

A Lloyd pass is one fused kernel (gmmfast/_kmeans_kernels.pyx: distances in
scikit-learn's ``||c||^2 - 2 x.c`` form, argmin, per-thread sums, one read
of X, OpenMP threads, GIL released); so is a k-means++ pass (the rows in
gmmfast/_kmeans_simd.h, vectorised) and the mean and variance. The rare
relocation pass and the labels of the final statistics are numpy on row
blocks (BLAS gemm for the distances, exactly scikit-learn's formulas); those
blocks run on ``n_threads`` Python threads (numpy releases the GIL) and are
combined in block order.

A walker offers: ``n_samples``, ``n_features``, ``dtype``, ``weighted``,
``map_reduce(func, args, combine, kernel=False)`` (``func(x, w, start,
args)`` per block, combined in block order; ``w`` None when unweighted;
with ``kernel``, ``func(x, w, start, args, n_threads)`` on larger blocks, the
function running its own OpenMP threads),
``chain(func, args, carry, kernel=False)`` (``carry = func(x, w, start,
args, carry)``, block after block; with ``kernel``, ``func(x, w, start,
args, carry, n_threads)`` on larger blocks), ``store_closest`` (whether
k-means++ may keep one value per row, indexed by ``start``), ``rows(indices)`` (rows of X, in the data's dtype) and
``weights(indices)``.
"""
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from . import _covariance, _kmeans_kernels, _stats
from ._threads import blas_single_thread

# scikit-learn's KMeans defaults (GaussianMixture builds KMeans with them)
KMEANS_TOL = 1e-4
KMEANS_MAX_ITER = 300
# rows per block: about this many bytes of float64 distances or rows per block
BLOCK_BYTES = 1 << 18
MIN_BLOCK, MAX_BLOCK = 256, 16384
# the Lloyd kernel: rows per call (Ctrl-C and the memmap check between
# calls) and rows per OpenMP block (scikit-learn's CHUNK_SIZE)
KERNEL_CALL_ROWS = 1 << 16
KERNEL_CHUNK = 256
# a chained kernel pass (k-means++'s draws): rows per call, each call's
# buffer of one value per row
CHAIN_CALL_ROWS = 1 << 14


def block_rows(n_features, n_centres):
    """Rows per block: the block's distances and its copy of the rows stay
    near BLOCK_BYTES whatever n_samples."""
    width = max(1, n_features, n_centres)
    return int(min(MAX_BLOCK, max(MIN_BLOCK, BLOCK_BYTES // (8 * width))))


def sum_parts(a, b):
    """Element-wise sum of two equal-length tuples (block order kept by the
    caller); None stays None (tied statistics have no S2)."""
    return tuple(None if x is None else x + y for x, y in zip(a, b))


# ---------------------------------------------------------------------------
# The in-memory / memmap walker
# ---------------------------------------------------------------------------

def _file_backed(a):
    """Whether a numpy memmap lies behind the array (views included)."""
    while a is not None and not isinstance(a, np.memmap):
        a = getattr(a, "base", None)
    return a is not None


class ArrayBlocks:
    """Row blocks of an in-memory array or a numpy memmap (read in place).

    X : C-contiguous float32/float64 (n_samples, n_features)
    sample_weight : float64 (n_samples,) or None
    n_threads : int, Python threads over blocks
    check : callable or None, called before every pass (a memmap's file check)
    block : rows per block, or None for ``block_rows``
    base : the row index of X's first row (a chunk of a larger array)
    """

    def __init__(self, X, sample_weight, n_threads=1, check=None, block=None, base=0):
        self.X = X
        self.base = base
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = X.shape
        self.dtype = X.dtype
        self.weighted = sample_weight is not None
        self.n_threads = max(1, int(n_threads))
        self.check = check
        self.block = block
        # k-means++ may keep each row's closest squared distance and its
        # candidates' distances ((1 + n_local_trials) values per row, as
        # scikit-learn keeps) when X is in memory anyway; a memmap
        # recomputes them instead (extra memory that does not grow with n)
        self.store_closest = base == 0 and not _file_backed(X)

    def _starts(self, block):
        return range(0, self.n_samples, block)

    def _block(self, a, block):
        b = min(a + block, self.n_samples)
        w = None if self.sample_weight is None else self.sample_weight[a:b]
        return self.X[a:b], w

    def map_reduce(self, func, args, combine=sum_parts, width=None, kernel=False):
        if self.check is not None:
            self.check()
        if kernel:
            # a kernel with its own OpenMP threads: calls of KERNEL_CALL_ROWS
            # rows (or ``block``), one after another
            total = None
            step = self.block or KERNEL_CALL_ROWS
            for a in self._starts(step):
                x, w = self._block(a, step)
                part = func(x, w, self.base + a, args, self.n_threads)
                total = part if total is None else combine(total, part)
            return total
        block = self.block or block_rows(self.n_features, width or 1)
        starts = list(self._starts(block))

        def one(a):
            x, w = self._block(a, block)
            return func(x, w, self.base + a, args)

        total = None
        if self.n_threads == 1 or len(starts) == 1:
            for a in starts:
                part = one(a)
                total = part if total is None else combine(total, part)
            return total
        # waves of n_threads blocks: memory bounded, combined in block order
        with ThreadPoolExecutor(self.n_threads) as pool:
            for i in range(0, len(starts), self.n_threads):
                for part in pool.map(one, starts[i:i + self.n_threads]):
                    total = part if total is None else combine(total, part)
        return total

    def chain(self, func, args, carry, width=None, kernel=False):
        if self.check is not None:
            self.check()
        if kernel:
            step = self.block or CHAIN_CALL_ROWS
            for a in self._starts(step):
                x, w = self._block(a, step)
                carry = func(x, w, self.base + a, args, carry, self.n_threads)
            return carry
        block = self.block or block_rows(self.n_features, width or 1)
        for a in self._starts(block):
            x, w = self._block(a, block)
            carry = func(x, w, self.base + a, args, carry)
        return carry

    def rows(self, indices):
        return np.ascontiguousarray(self.X[np.asarray(indices)], dtype=self.dtype)

    def weights(self, indices):
        if self.sample_weight is None:
            return None
        return np.asarray(self.sample_weight[np.asarray(indices)], dtype=np.float64)


# ---------------------------------------------------------------------------
# Distances, exactly as scikit-learn forms them
# ---------------------------------------------------------------------------

def row_norms_sq(X):
    """scikit-learn's ``row_norms(X, squared=True)`` (einsum, X's dtype)."""
    return np.einsum("ij,ij->i", X, X)


def _centred(x, offset):
    return x if offset is None else x - offset


def _weights_dtype(w, n, dtype):
    """scikit-learn casts sample_weight to X's dtype (ones when None)."""
    return np.ones(n, dtype=dtype) if w is None else w.astype(dtype)


# ---------------------------------------------------------------------------
# k-means++ seeding (scikit-learn's _kmeans_plusplus, streamed)
# ---------------------------------------------------------------------------

def _cdf_total(x, w, a, args, carry):
    # sequential float64 cumsum of p = w / sum(w), carried over blocks
    dtype, total = args
    p = (_weights_dtype(w, x.shape[0], dtype) / total).astype(np.float64)
    p[0] += carry
    return float(np.cumsum(p)[-1])


def _cdf_search(x, w, a, args, carry):
    # the first row with cdf_i / cdf[-1] > u (numpy's choice: side='right')
    dtype, total, last, u = args
    running, found = carry
    if found >= 0:
        return carry
    p = (_weights_dtype(w, x.shape[0], dtype) / total).astype(np.float64)
    p[0] += running
    cdf = np.cumsum(p)
    running = float(cdf[-1])
    cdf /= last
    i = int(np.searchsorted(cdf, u, side="right"))
    return running, (a + i if i < cdf.shape[0] else -1)


def _first_centre(walker, random_state):
    """``random_state.choice(n_samples, p=w / w.sum())``, streamed: the
    same single uniform draw, searched in the same float64 cdf."""
    dtype = walker.dtype
    n = walker.n_samples
    if walker.weighted:
        total = walker.map_reduce(_weight_sum, dtype)[0]
        total = np.asarray(total, dtype=dtype)
    else:
        total = np.asarray(n, dtype=dtype)
    if getattr(walker, "store_closest", False):  # the weights in memory: one loop
        u = random_state.random_sample()
        found = _kmeans_kernels.choice_index(
            walker.sample_weight, n, float(total), dtype == np.float32, u)
        return n - 1 if found < 0 else found
    last = walker.chain(_cdf_total, (dtype, total), 0.0)
    u = random_state.random_sample()
    _, found = walker.chain(_cdf_search, (dtype, total, last, u), (0.0, -1))
    return n - 1 if found < 0 else found


def _weight_sum(x, w, a, dtype):
    return (float(np.sum(w.astype(dtype), dtype=np.float64)),)


@dataclass
class _Seeding:
    """One k-means++ pass's arguments (gmmfast/_kmeans_kernels.pyx,
    ``seed_pass``): centres C upcast to float64 with their squared norms,
    the first ``n_chosen`` of them chosen centres, the rest candidates;
    ``closest`` the stored running minimum (n_samples,) or None."""

    offset: np.ndarray
    C: np.ndarray
    n_chosen: int
    closest: object
    first: bool = False
    dists: object = None

    @classmethod
    def of(cls, offset, centres, n_chosen, closest, first=False, dists=None):
        C = np.ascontiguousarray(centres, dtype=np.float64).reshape(-1, offset.shape[0])
        return cls(offset, C, n_chosen, closest, first, dists)

    def run(self, x, w, start, vals, n_threads):
        """The kernel on one block: its candidates' potentials (float64)."""
        M, D = self.C.shape
        n_cand = M - self.n_chosen
        pots = _stats.thread_slabs(n_threads, max(1, n_cand))
        scratch = _stats.scratch_rows(n_threads, _kmeans_kernels.seed_scratch(KERNEL_CHUNK, D, M))
        closest = None if self.closest is None else self.closest[start:start + x.shape[0]]
        _kmeans_kernels.seed_pass(
            np.ascontiguousarray(x), w, self.offset, self.C, row_norms_sq(self.C),
            self.n_chosen, closest, self.first, vals, pots, scratch, KERNEL_CHUNK,
            n_threads, self.dists, start)
        return _stats.thread_sum(pots, 0, n_cand)


def _pots_block(x, w, start, seeding, n_threads=1):
    # per candidate: sum_i w_i min(closest_i, d(x_i, cand))
    return (seeding.run(x, w, start, None, n_threads),)


def _scan_block(x, w, start, args, carry, n_threads=1):
    # w * closest (lowering closest first), summed (targets None: the
    # potential) or searched: the candidate ids np.searchsorted(np.cumsum(
    # w * closest), targets), the cumsum in the data's dtype carried over
    # blocks
    seeding, targets = args
    running, j, found = carry
    if seeding.closest is None and targets is not None and j == targets.shape[0]:
        return carry  # nothing to update, nothing left to find
    vals = np.empty(x.shape[0], dtype=x.dtype)
    seeding.run(x, w, start, vals, n_threads)
    if targets is None:
        return running + float(np.sum(vals, dtype=np.float64)), j, found
    if j < targets.shape[0]:
        running, j = _kmeans_kernels.seed_scan(vals, running, targets, j, found, start)
    return running, j, found


def _draw(walker, seeding, rand_vals):
    """Candidate ids for ``rand_vals``: scikit-learn's searchsorted over the
    cumulative weighted D^2, values beyond the total (rounding) clipped to
    the last row."""
    order = np.argsort(rand_vals, kind="stable")
    targets = np.ascontiguousarray(rand_vals[order], dtype=np.float64)
    found = np.full(targets.shape[0], walker.n_samples - 1, dtype=np.int64)
    # the carry's array, not ``found`` itself: a chain on a cluster copies it
    _, _, found = walker.chain(_scan_block, (seeding, targets), (0.0, 0, found),
                               kernel=True)
    ids = np.empty_like(found)
    ids[order] = found
    return ids


def _draw_kept(walker, closest, lower, rand_vals):
    """``_draw`` from the kept numbers alone (no pass over X): closest
    lowered by ``lower`` (the previous step's chosen candidate's distances,
    or None) on the way."""
    order = np.argsort(rand_vals, kind="stable")
    targets = np.ascontiguousarray(rand_vals[order], dtype=np.float64)
    found = np.full(targets.shape[0], walker.n_samples - 1, dtype=np.int64)
    _kmeans_kernels.seed_lower_scan(closest, lower, walker.sample_weight, targets, found)
    ids = np.empty_like(found)
    ids[order] = found
    return ids


def kmeans_plusplus(walker, n_clusters, random_state, offset=None, n_local_trials=None):
    """scikit-learn's ``_kmeans_plusplus`` on a walker.

    offset : (n_features,) in the data's dtype, subtracted from every row
        (KMeans seeds the data centred on its mean), or None.
    Returns (centres (n_clusters, n_features) in the data's dtype, in the
    offset coordinates; indices int64 (n_clusters,)).

    Where the walker allows it (an array in memory), each row's closest
    squared distance is kept, and so are the current candidates' distances
    (n_local_trials values per row, as scikit-learn's
    ``distance_to_candidates``): a step is then one pass over X (the
    candidates' potentials, their distances kept) and a scan of the kept
    numbers (the next draw, lowering closest by the chosen candidate on
    the way). Otherwise (a memmap, a chunk of a cluster's array) nothing
    grows with the data: closest is recomputed from the centres chosen so
    far in every pass (the minimum of exactly the numbers scikit-learn's
    running ``np.minimum`` keeps), and a step is two passes, the draw (the
    cumulative sum walked block after block) and the potentials. BLAS is
    held to one thread here (the kernel calls it inside OpenMP threads).
    """
    dtype = walker.dtype
    if offset is None:
        offset = np.zeros(walker.n_features, dtype=dtype)
    offset = np.ascontiguousarray(offset, dtype=dtype)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    with blas_single_thread():
        indices = np.full(n_clusters, -1, dtype=np.int64)
        indices[0] = _first_centre(walker, random_state)
        centres = walker.rows(indices[:1]) - offset
        closest = (np.empty(walker.n_samples, dtype=dtype)
                   if getattr(walker, "store_closest", False) else None)
        first = _Seeding.of(offset, centres, 1, closest, first=True)
        if closest is None:
            pot, _, _ = walker.chain(_scan_block, (first, None), (0.0, 0, None),
                                     kernel=True)
            current_pot = np.asarray(pot, dtype=dtype)  # scikit-learn's dot is in dtype
        else:  # closest in one parallel pass, then scikit-learn's own dot
            walker.map_reduce(_pots_block, first, kernel=True)
            w = (np.ones(walker.n_samples, dtype=dtype) if walker.sample_weight is None
                 else walker.sample_weight.astype(dtype))
            current_pot = (closest[None, :] @ w)[0]  # (1, n) @ (n,) as scikit-learn
            del w
        # the candidates' kept distances lower closest for the next draw: not
        # needed for the last centre (K = 2: none at all, n_local_trials
        # rows of n_samples values neither written nor faulted in)
        dists = (None if closest is None or n_clusters < 3 else
                 np.empty((n_local_trials, walker.n_samples), dtype=dtype))
        if closest is not None and _one_kernel_call(walker) and n_clusters > 1:
            # every step in the kernel, the same numbers (seed_steps)
            out = np.empty((n_clusters, walker.n_features), dtype=dtype)
            out[0] = centres[0]
            uniforms = random_state.uniform(size=(n_clusters - 1, n_local_trials))
            _kmeans_kernels.seed_steps(
                walker.X, walker.sample_weight, offset, out, indices, closest, dists,
                uniforms, float(current_pot), _stats.thread_slabs(walker.n_threads,
                                                                  n_local_trials),
                _stats.scratch_rows(walker.n_threads, _kmeans_kernels.seed_scratch(
                    KERNEL_CHUNK, walker.n_features, n_local_trials)),
                KERNEL_CHUNK, walker.n_threads)
            return out, indices
        lower = None  # the chosen candidate's kept distances
        for c in range(1, n_clusters):
            rand_vals = random_state.uniform(size=n_local_trials) * current_pot
            if closest is None:
                scan = _Seeding.of(offset, centres, c, None)
                candidate_ids = _draw(walker, scan, rand_vals)
            else:
                candidate_ids = _draw_kept(walker, closest, lower, rand_vals)
            candidates = walker.rows(candidate_ids) - offset
            if closest is None:
                both = np.concatenate([centres, candidates])
                seeding = _Seeding.of(offset, both, c, None)
            else:
                seeding = _Seeding.of(offset, candidates, 0, closest,
                                      dists=dists if c < n_clusters - 1 else None)
            pots = walker.map_reduce(_pots_block, seeding, kernel=True)[0]
            pots = np.asarray(pots, dtype=dtype)
            j = int(np.argmin(pots))
            current_pot = pots[j]
            indices[c] = candidate_ids[j]
            lower = None if dists is None else dists[j]
            centres = np.concatenate([centres, candidates[j:j + 1]])
    return np.ascontiguousarray(centres, dtype=dtype), indices


# ---------------------------------------------------------------------------
# Lloyd (scikit-learn's _kmeans_single_lloyd, streamed)
# ---------------------------------------------------------------------------

def block_labels(xc, centres, centre_norms):
    """argmin_k ||c_k||^2 - 2 x.c_k, the first minimum on ties (scikit-learn's
    gemm form and strict '<' scan); xc in the centres' coordinates."""
    d = xc @ centres.T
    d *= -2
    d += centre_norms
    return np.argmin(d, axis=1)


class _LloydBuffers:
    """The Lloyd kernel's per-thread sums and scratch for one block shape,
    zeroed and reused by every pass over it: a small fit's k-means runs
    tens of passes over a few hundred rows, where allocating and summing
    four per-thread arrays a pass cost more than the kernel itself."""

    def __init__(self, n_threads, K, D, dtype):
        self.K, self.D = K, D
        self.sizes = (K * D, K, 1 + K)  # S, W and (inertia, counts)
        self.slabs = [_stats.thread_slabs(n_threads, n) for n in self.sizes]
        self.scratch = _stats.scratch_rows(
            n_threads, _kmeans_kernels.lloyd_scratch(KERNEL_CHUNK, D, K), dtype)
        self.n_threads = n_threads

    def sums(self):
        S, W, E = self.slabs
        K, D = self.K, self.D
        sum_ = _stats.thread_sum
        return (sum_(S, 0, K * D).reshape(K, D), sum_(W, 0, K), sum_(E, 0, 1)[0],
                sum_(E, 1, 1 + K))

    def run(self, x, w, offset, centres, want):
        S, W, E = self.slabs
        for slab in self.slabs:
            slab.fill(0.0)
        _kmeans_kernels.lloyd_pass(
            x, w, offset, centres, row_norms_sq(centres), self.scratch, S, W, E, want,
            KERNEL_CHUNK, self.n_threads)
        return self.sums()

    def loop(self, x, w, offset, centres, tol, max_iter):
        """Up to max_iter Lloyd iterations in one kernel call (``lloyd``'s,
        value for value): (centres, n_iter, status, S, W), S and W the sums
        of the last pass when it left a cluster empty (status EMPTY)."""
        centres = np.array(centres, dtype=self.scratch.dtype, order="C")
        new = np.empty_like(centres)
        norms = np.empty(self.K, dtype=centres.dtype)
        S, W, E = self.slabs
        n_iter, status = _kmeans_kernels.lloyd_loop(
            x, w, offset, centres, new, norms, self.scratch, S, W, E, tol, _TOL_IN_DTYPE,
            max_iter, KERNEL_CHUNK, self.n_threads)
        # row 0 holds the threads' sums after the loop
        return (centres, n_iter, status, S[0, :self.K * self.D].reshape(self.K, self.D),
                W[0, :self.K])


# numpy's comparison of a float32 scalar with a Python float: in float32
# since NEP 50 (numpy 2), in float64 before; the Lloyd loop's shift test
# follows whichever numpy runs (the Python iteration's rule)
_TOL_IN_DTYPE = bool(np.float32(0.1) <= 0.1)
_EMPTY = 2  # lloyd_loop's status when a pass left a cluster without weight


def lloyd_kernel_block(x, w, a, args, n_threads=1):
    """One Lloyd pass over a block by the fused kernel (one read of x):
    (S (K, D) float64 sums of w (x - offset) per label, W (K,) weights,
    inertia, counts (K,)); ``args`` = (offset, centres, want_inertia)."""
    offset, centres, want = args
    K, D = centres.shape
    buffers = _LloydBuffers(n_threads, K, D, x.dtype)
    S, W, inertia, counts = buffers.run(np.ascontiguousarray(x), w, offset,
                                        np.ascontiguousarray(centres), bool(want))
    return S, W, inertia, counts


def lloyd_numpy_block(x, w, a, args):
    """The numpy reference of ``lloyd_kernel_block`` (gemm distances, a
    one-hot product for the sums); the tests compare the two."""
    offset, centres, want = args
    xc = _centred(x, offset)
    labels = block_labels(xc, centres, row_norms_sq(centres))
    K = centres.shape[0]
    onehot = np.zeros((x.shape[0], K))
    onehot[np.arange(x.shape[0]), labels] = 1.0 if w is None else w
    S = onehot.T @ xc.astype(np.float64, copy=False)
    inertia = 0.0
    if want:
        diff = xc - centres[labels]
        d = (diff * diff).sum(axis=1).astype(np.float64)
        inertia = float(d.sum() if w is None else d @ w)
    return S, onehot.sum(axis=0), inertia, np.bincount(labels, minlength=K).astype(float)


def lloyd_pass(walker, offset, centres, want_inertia=False):
    """(S, W, inertia, counts) of one pass, by the kernel."""
    return walker.map_reduce(lloyd_kernel_block, (offset, centres, want_inertia),
                             kernel=True)


def _one_kernel_call(walker):
    """Whether the passes over ``walker`` are one kernel call over an
    in-memory array (no file to check between passes): the loops of
    k-means++ and Lloyd then run in the kernel."""
    return (type(walker) is ArrayBlocks and walker.check is None
            and 0 < walker.n_samples <= (walker.block or KERNEL_CALL_ROWS)
            and walker.X.flags.c_contiguous)


def _lloyd_passer(walker, K):
    """(``lloyd_pass(walker, offset, ., want)``, loop) for the passes of one
    k-means. An in-memory array of one kernel call (n_samples <=
    KERNEL_CALL_ROWS) reuses one set of buffers, the sums returned as views
    of them (read before the next pass), and ``loop(offset, centres, tol,
    max_iter)`` runs whole Lloyd iterations in the kernel
    (``_LloydBuffers.loop``); anything else goes block by block, loop None
    (a memmap's file check runs before every pass)."""
    if (type(walker) is not ArrayBlocks or walker.n_samples == 0
            or walker.n_samples > (walker.block or KERNEL_CALL_ROWS)):
        return (lambda offset, centres, want=False: lloyd_pass(walker, offset, centres, want),
                None)
    buffers = _LloydBuffers(walker.n_threads, K, walker.n_features, walker.dtype)
    x, w = walker._block(0, walker.n_samples)
    x = np.ascontiguousarray(x)

    def run(offset, centres, want=False):
        if walker.check is not None:
            walker.check()
        return buffers.run(x, w, offset, np.ascontiguousarray(centres), bool(want))

    def loop(offset, centres, tol, max_iter):
        return buffers.loop(x, w, offset, centres, tol, max_iter)
    return run, (loop if walker.check is None else None)


def _far_block(x, w, a, args):
    # the rows farthest from their assigned centre, (x - c_label)^2 summed
    # in the data's dtype as scikit-learn's relocation computes it
    offset, centres, norms, n_far = args
    xc = _centred(x, offset)
    labels = block_labels(xc, centres, norms)
    d = ((xc - centres[labels]) ** 2).sum(axis=1)
    m = min(n_far, d.shape[0])
    top = np.argpartition(d, -m)[-m:]
    return d[top].astype(np.float64), a + top, labels[top]


def _far_merge(p, q):
    d, idx, lab = (np.concatenate([u, v]) for u, v in zip(p, q))
    n_far = max(p[0].shape[0], q[0].shape[0])
    order = np.lexsort((idx, -d))[:n_far]  # largest first, then lowest row
    return d[order], idx[order], lab[order]


def _relocate(walker, offset, centres, norms, S, W, empty):
    """scikit-learn's ``_relocate_empty_clusters_dense``: each empty cluster
    takes one of the rows farthest from their centres, that row's weighted
    value moving out of its own cluster's sums. One extra pass; rare."""
    n_empty = empty.shape[0]
    d, idx, lab = walker.map_reduce(_far_block, (offset, centres, norms, n_empty),
                                    combine=_far_merge, width=centres.shape[0])
    if d.shape[0] == 0 or d[0] == 0:
        # more clusters than distinct rows: relocating is pointless
        return
    rows = _centred(walker.rows(idx), offset).astype(np.float64)
    ws = walker.weights(idx)
    for j, new in enumerate(empty[:d.shape[0]]):
        weight = 1.0 if ws is None else float(ws[j])
        S[lab[j]] -= rows[j] * weight
        S[new] = rows[j] * weight
        W[new] = weight
        W[lab[j]] -= weight


def _average(S, W, dtype):
    """scikit-learn's ``_average_centers``, including its order: an empty
    cluster copies row argmax(W) as it stands at that moment of the loop
    (still a sum when that row comes later)."""
    if (W > 0).all():  # the usual case: every cluster has weight
        return (S * (1.0 / W)[:, None]).astype(dtype, copy=False)
    centres = S.copy()
    big = int(np.argmax(W))
    for j in range(S.shape[0]):
        if W[j] > 0:
            centres[j] = S[j] * (1.0 / W[j])
        else:
            centres[j] = centres[big]
    return centres.astype(dtype)


def lloyd(walker, centres, offset, tol, max_iter=KMEANS_MAX_ITER):
    """Lloyd iterations from ``centres`` (offset coordinates, data dtype).

    Stopping rule. scikit-learn stops at iteration i when the labels equal
    the previous iteration's (strict convergence) or when the squared centre
    shift summed over clusters is <= tol. Labels are a function of the
    centres (argmin), and the new centres a function of the labels; so equal
    labels give bitwise equal new centres, a shift of exactly 0, which
    passes ``<= tol`` for every tol >= 0 at the same iteration. And when the
    labels differ but the centres do not move, scikit-learn stops by the
    shift rule too. Testing the shift alone therefore stops at the same
    iteration, without storing labels. The final labels are the argmin to
    the final centres in both cases (scikit-learn reruns the assignment when
    not strictly converged; when strictly converged the final centres equal
    the ones the labels came from).

    The shift is scikit-learn's (``centre_shift_total``). For an in-memory
    array of one kernel call the iterations run in the kernel until one
    leaves a cluster empty, which is relocated here.

    Returns (centres, n_iter).
    """
    dtype = walker.dtype
    n_iter = 0
    one_pass, loop = _lloyd_passer(walker, centres.shape[0])
    while n_iter < max_iter:
        if loop is not None:
            centres, done, status, S, W = loop(offset, centres, tol, max_iter - n_iter)
            n_iter += done
            if status != _EMPTY:
                break
        else:
            n_iter += 1
            S, W, _, _ = one_pass(offset, centres)
        if not W.all():  # an empty cluster (rare)
            _relocate(walker, offset, centres, row_norms_sq(centres), S, W,
                      np.flatnonzero(W == 0))
        new = _average(S, W, dtype)
        # a numpy scalar of the data's dtype, compared with tol by numpy's rule
        shift = new.dtype.type(_kmeans_kernels.centre_shift_total(
            new, np.ascontiguousarray(centres)))
        centres = new
        if shift <= tol:
            break
    return centres, n_iter


# ---------------------------------------------------------------------------
# The whole k-means, and its final pass
# ---------------------------------------------------------------------------

def _moments_block(x, w, a, center, n_threads=1):
    # (sum w, sum w (x - c), sum w (x - c)^2), float64, by the kernel
    D = x.shape[1]
    out = _stats.thread_slabs(n_threads, 1 + 2 * D)
    _kmeans_kernels.moments_pass(np.ascontiguousarray(x), w, center, out,
                                 KERNEL_CHUNK, n_threads)
    total = _stats.thread_sum(out, 0, 1 + 2 * D)
    return float(total[0]), total[1:1 + D], total[1 + D:]


def mean_and_variance(walker):
    """Weighted mean and per-feature variance (float64 (D,) each), two
    streamed passes: the mean, then the squares about it (never raw
    moments). Unweighted: ``np.var(X, axis=0)``'s definition."""
    zero = np.zeros(walker.n_features)
    weight, s1, _ = walker.map_reduce(_moments_block, zero, kernel=True)
    mean = s1 / weight
    weight, s1, s2 = walker.map_reduce(_moments_block, mean, kernel=True)
    # the residual first moment about the computed mean corrects its rounding
    return mean + s1 / weight, s2 / weight - (s1 / weight) ** 2


@dataclass
class KMeansResult:
    """A streamed k-means.

    centres : (K, D) data dtype, the data's coordinates (cluster_centers_)
    centred : (K, D) data dtype, centres - offset: what labels are taken in
    offset : (D,) data dtype, the mean the data was centred on
    n_iter, inertia, counts : as scikit-learn (counts: rows per label)
    """

    centres: np.ndarray
    centred: np.ndarray
    offset: np.ndarray
    n_iter: int
    inertia: float
    counts: np.ndarray

    def labels(self, x):
        """Labels of rows x (data coordinates), as KMeans.labels_."""
        return block_labels(x - self.offset, self.centred, row_norms_sq(self.centred))


def kmeans(walker, n_clusters, random_state, tol=KMEANS_TOL, max_iter=KMEANS_MAX_ITER,
           final_pass=True):
    """scikit-learn's ``KMeans(n_clusters, n_init=1, random_state).fit`` on a
    walker; ``random_state`` a RandomState, consumed as KMeans does.

    KMeans centres the data on its mean and seeds and iterates there; so
    does this, the centring done block by block on the fly (the mean is the
    weighted mean with sample weights). The tolerance is
    ``tol * mean(variance per feature)``, the variance weighted with sample
    weights (scikit-learn's is unweighted; weighted, integer weights are
    repetitions exactly).

    ``final_pass=False`` leaves out KMeans' last pass (the labels of the
    final centres, for inertia and counts, and its warning when fewer
    distinct clusters are found): the mixture's start takes the labels in
    its one-hot statistics pass instead (``one_hot_stats``), one pass over
    the data fewer. inertia and counts are then None.
    """
    with blas_single_thread():
        mean, variance = mean_and_variance(walker)
        offset = mean.astype(walker.dtype)
        tol_abs = 0.0 if tol == 0 else float(np.mean(variance) * tol)
        seeds, _ = kmeans_plusplus(walker, n_clusters, random_state, offset=offset)
        centred, n_iter = lloyd(walker, seeds, offset, tol_abs, max_iter)
        inertia = counts = None
        if final_pass:
            _, _, inertia, counts = lloyd_pass(walker, offset, centred, want_inertia=True)
    if final_pass:
        warn_distinct(counts, n_clusters, stacklevel=3)
    centres = centred + offset
    return KMeansResult(centres.astype(walker.dtype), centred, offset, n_iter,
                        inertia, counts)


def warn_distinct(counts, n_clusters, stacklevel=2):
    """KMeans' warning when the final labels use fewer than n_clusters
    (counts: rows per label)."""
    distinct = int(np.count_nonzero(counts))
    if distinct < n_clusters:
        warnings.warn(
            "Number of distinct clusters ({}) found smaller than "
            "n_clusters ({}). Possibly due to duplicate points "
            "in X.".format(distinct, n_clusters),
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )


# ---------------------------------------------------------------------------
# One-hot statistics of the final labels (the mixture's k-means start)
# ---------------------------------------------------------------------------

def one_hot_stats_block(x, w, a, args, n_threads=1):
    """(R, S1, S2, counts) of one block with one-hot responsibilities of the
    final labels (the argmin to the final centres, as the Lloyd pass assigns
    them; counts the rows per label), by one fused kernel pass; ``args`` =
    (KMeansResult, shift, covariance_type)."""
    km, shift, covariance_type = args
    cov = _covariance.get(covariance_type)
    K, D = km.centres.shape
    R = _stats.thread_slabs(n_threads, K)
    S1 = _stats.thread_slabs(n_threads, K * D)
    size = cov.s2_size(K, D)
    S2 = _stats.thread_slabs(n_threads, size)
    counts = _stats.thread_slabs(n_threads, K)
    centred = np.ascontiguousarray(km.centred)
    scratch = _stats.scratch_rows(n_threads, _kmeans_kernels.lloyd_scratch(KERNEL_CHUNK, D, K),
                                  x.dtype)
    _kmeans_kernels.onehot_pass(
        np.ascontiguousarray(x), w, km.offset, centred, row_norms_sq(centred),
        np.ascontiguousarray(shift, dtype=np.float64), cov.code, scratch,
        # each thread's row buffer a cache line apart from the next's
        _stats.thread_slabs(n_threads, max(1, D)), R, S1, S2, counts,
        KERNEL_CHUNK, n_threads)
    sum_ = _stats.thread_sum
    return (sum_(R, 0, K), sum_(S1, 0, K * D).reshape(K, D), sum_(S2, 0, size),
            sum_(counts, 0, K))


def one_hot_stats(walker, km, shift, covariance_type):
    """The one-hot statistics of the final labels over the walker's blocks,
    S2 as the M-step takes it, and the rows per label:
    ((R, S1, S2), counts)."""
    cov = _covariance.get(covariance_type)
    K, D = km.centres.shape
    R, S1, S2, counts = walker.map_reduce(
        one_hot_stats_block, (km, shift, covariance_type), kernel=True)
    if cov.matrix and S2.shape[0] == K * D * D:
        # full: the kernel's row j starts at j rounded down to a multiple of
        # 4 (aligned with the row buffer's vector stores); the few products
        # below the diagonal are dropped here
        S2 = np.triu(S2.reshape(K, D, D)).reshape(-1)
    return (R, S1, cov.s2_from_slab(S2, K, D)), counts
