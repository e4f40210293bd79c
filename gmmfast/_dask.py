"""EM on Dask arrays: the block kernel mapped over the chunks, on a cluster.

``DaskData`` is a data source with the interface of gmmfast/_data.py, so
``run_em``/``fit_em`` and the estimator drive it unchanged. Per EM iteration:

- the kernel parameters (``KernelParams``, K x D x D numbers) enter the task
  graph once, as one node that every chunk task depends on: they travel to
  each worker once per iteration, never once per chunk;
- each row chunk of X (one chunk along the feature axis) runs
  ``_stats.e_step_stats`` on the worker that holds it, with ``n_threads=1``:
  the parallelism comes from Dask (one task per worker thread);
- the per-chunk statistics (R, S1, S2, log-likelihood: K x D x D numbers)
  are summed by a tree reduction (``SPLIT_EVERY`` at a time, in a fixed
  order) and only the total reaches the client, which does the M-step.

The data never leaves the workers. The scheduler is Dask's default: the
active ``dask.distributed.Client`` when there is one, else the local threaded
scheduler.

Initialisation. 'kmeans' (the default) and 'k-means++' run the streamed
k-means of gmmfast/_kmeans.py over the chunks (``DaskBlocks``): each Lloyd
pass maps a chunk task on the worker holding the chunk and tree-sums K x D
numbers; the k-means++ draws walk the chunks in order (a chain of tasks
carrying the running cumulative sum). The start therefore equals the
in-memory one to rounding, and only the chosen seed rows travel. 'random'
and 'random_from_data' run on the client on a uniform random sample of rows
(``init_sample_size``), drawn with the fit's random state; only the sampled
rows travel. Tied covariance: the initial scatter then comes from the
sample, while the per-iteration scatter ``T`` and the shift (the data mean)
come from one pass each over the whole array.

Dask is imported only when a Dask array is actually used.
"""
import contextlib
import math
import numbers
import sys
import uuid

import numpy as np

from . import _covariance, _kmeans, _missing, _stats
from ._data import ArrayData, DataSource
from ._threads import blas_single_thread
from ._validation import check_sample_weight, check_weight_layout, check_weight_values

# per-chunk statistics summed this many at a time in the tree reduction
SPLIT_EVERY = 8

# initialisers that stream over the chunks; the others run on a sample
STREAMED_INITS = ("kmeans", "k-means++")

# initialisation sample: at least this many rows, and at least
# SAMPLE_ROWS_PER_COMPONENT rows per component (all rows when fewer)
SAMPLE_MIN_ROWS = 10_000
SAMPLE_ROWS_PER_COMPONENT = 100


def is_dask_array(X):
    """True for a ``dask.array.Array``; never imports dask.

    A Dask array can exist only once ``dask.array`` has been imported, so
    without it in ``sys.modules`` nothing is a Dask array.
    """
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, getattr(da, "Array", ()))


def init_sample_size(n_samples, n_components):
    """Rows the initialisers see: min(n_samples, max(10_000, 100 * n_components))."""
    return min(n_samples, max(SAMPLE_MIN_ROWS, SAMPLE_ROWS_PER_COMPONENT * n_components))


def sample_indices(n_samples, n_sample, random_state):
    """``n_sample`` distinct row indices drawn uniformly, sorted (int64).

    Memory grows with ``n_sample`` only (no permutation of ``n_samples``):
    uniform draws with replacement, duplicates dropped, topped up until
    ``n_sample`` distinct rows — by symmetry a uniform ``n_sample``-subset.
    """
    if n_sample >= n_samples:
        return np.arange(n_samples, dtype=np.int64)
    if n_samples <= 4 * n_sample:
        return np.sort(random_state.choice(n_samples, n_sample, replace=False)).astype(np.int64)
    idx = np.unique(random_state.randint(0, n_samples, size=n_sample))
    while idx.shape[0] < n_sample:
        more = random_state.randint(0, n_samples, size=n_sample - idx.shape[0])
        idx = np.union1d(idx, more)
    return idx.astype(np.int64)


# ---------------------------------------------------------------------------
# Validation at the public boundary
# ---------------------------------------------------------------------------

def _check_known_chunks(a, name):
    if any(math.isnan(c) for c in a.chunks[0]):
        raise ValueError(
            f"{name} is a Dask array with unknown chunk sizes along axis 0 "
            f"(shape {a.shape}); call {name} = {name}.compute_chunk_sizes() "
            "(or build it with known lengths) before passing it."
        )


def check_dask_array(X, *, estimator, reset, ensure_min_samples=1):
    """Validate a Dask X without computing it; returns the Dask array to use.

    Checks: 2-D, known chunk sizes, real dtype (float32/float64 kept, other
    real dtypes cast to float64 lazily), ``ensure_min_samples`` rows, at
    least one feature, ``n_features_in_`` (set when ``reset``, checked
    otherwise). Rechunked to whole rows (one chunk along axis 1) when needed.
    NaN and infinity are not looked for here (that would be a pass over the
    data): fitting raises on them at the first EM iteration (the
    log-likelihood turns non-finite), predictions propagate them.
    """
    from sklearn.utils.validation import _check_feature_names, _check_n_features

    caller = "GaussianMixture" if estimator is None else type(estimator).__name__
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-dimensional Dask array X of shape (n_samples, "
            f"n_features), got ndim={X.ndim} (shape {X.shape}); reshape it, "
            "e.g. X.reshape(-1, 1) for a single feature."
        )
    _check_known_chunks(X, "X")
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "biuf":
            raise ValueError(
                f"X must hold real numbers, got a Dask array of dtype {X.dtype}; "
                "convert it with X.astype('float64')."
            )
        X = X.astype(np.float64)
    n_samples, n_features = X.shape
    if n_samples < ensure_min_samples:
        raise ValueError(
            "Found array with %d sample(s) (shape=%s) while a minimum of %d is "
            "required by %s." % (n_samples, X.shape, ensure_min_samples, caller)
        )
    if n_features < 1:
        raise ValueError(
            "Found array with 0 feature(s) (shape=%s) while a minimum of 1 is "
            "required by %s." % (X.shape, caller)
        )
    if estimator is not None:
        _check_feature_names(estimator, X, reset=reset)
        _check_n_features(estimator, X, reset=reset)
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return X


def check_dask_sample_weight(sample_weight, X, n_components, rescale=True):
    """Sample weights for a Dask X: (float64 Dask array aligned with X's row
    chunks, total weight), or (None, n_samples).

    Accepts a scalar, an in-memory array (validated here, then persisted:
    sent to the workers once instead of inside every iteration's graph) or a
    Dask array (validated by one pass over the weights, which also gives the
    total weight). Errors are those of the in-memory path; ``rescale`` as
    there (only an in-memory array is ever rescaled).
    """
    import dask
    import dask.array as da

    n_samples = X.shape[0]
    row_chunks = (X.chunks[0],)
    if sample_weight is None:
        return None, float(n_samples)
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        # the same weight for every row: checked as such, never built in memory
        value = check_sample_weight(
            np.full(n_components, sample_weight, dtype=np.float64),
            n_components, n_components, rescale=rescale)[0]
        sw = da.full((n_samples,), value, chunks=row_chunks, dtype=np.float64)
        return sw, float(value) * n_samples
    if not is_dask_array(sample_weight):
        sw = check_sample_weight(sample_weight, n_samples, n_components, rescale=rescale)
        total = float(sw.sum())
        return da.from_array(sw, chunks=row_chunks).persist(), total

    sw = sample_weight
    if sw.ndim == 1:
        _check_known_chunks(sw, "sample_weight")
    check_weight_layout(sw, n_samples)
    sw = sw.astype(np.float64).rechunk(row_chunks)
    all_finite, total = dask.compute(da.isfinite(sw).all(), sw.sum())
    check_weight_values(bool(all_finite), lambda: tuple(
        f(v) for f, v in zip((float, int, float), dask.compute(
            sw.min(), da.count_nonzero(sw), sw.max()))), n_components)
    return sw, float(total)


# ---------------------------------------------------------------------------
# Per-chunk work (runs on the workers) and the tree reduction
# ---------------------------------------------------------------------------

def _rows(x, dtype):
    """A chunk as the kernels take it: C-contiguous, in the fit's dtype
    (a copy only when the chunk is not already so)."""
    return np.ascontiguousarray(x, dtype=dtype)


def _weights(w):
    return None if w is None else np.ascontiguousarray(w, dtype=np.float64)


def _blas_for(cfg):
    """BLAS held to one thread around a chunk's kernel call when the path
    calls BLAS (the worker's thread pool runs several chunks at once)."""
    return blas_single_thread() if cfg.uses_blas else contextlib.nullcontext()


def _chunk_e_step(x, w, kernel):
    """(R, S1, S2, sum w log p) of one chunk; ``kernel`` = (KernelParams, KernelConfig)."""
    kp, cfg = kernel
    x = _rows(x, kp.means.dtype)
    with _blas_for(cfg):
        (R, S1, S2), ll = _stats.e_step_stats(x, _weights(w), kp, cfg)
    return R, S1, S2, float(ll)


def _chunk_e_step_missing(x, w, kernel):
    """_chunk_e_step for a chunk that may hold NaN (nan_policy='marginalize'):
    (R, S1, S2, ll) and then the chunk's MissingTerms fields (tied: S2 is
    the scatter itself). A chunk without NaN takes the complete-data path."""
    kp, cfg = kernel
    x = _rows(x, kp.means.dtype)
    if not _missing.has_nan(x):
        R, S1, S2, ll = _chunk_e_step(x, w, kernel)
        if kp.cov.uses_scatter:
            (S2,) = _chunk_scatter(x, w, (kp.center, cfg))
        return R, S1, S2, ll, R, S1, S2, ll, 0.0, 0.0
    data = _missing.MissingArrayData(x, _weights(w), cfg, kp.cov, kp.means.shape[0])
    with _blas_for(cfg):
        (R, S1, S2), ll = data.e_step(kp)
    t = data.missing_terms
    return (R, S1, S2, float(ll), *t.complete_stats, t.complete_ll, t.hole_rlogr,
            t.hole_entropy)


def _chunk_filled_scatter(x, w, center_cfg):
    """_chunk_scatter with each NaN's deviation counted as 0 (missing values)."""
    center, _ = center_cfg
    return (_missing.filled_scatter(x, _weights(w), center),)


def _chunk_observed_sums(x, w):
    """(sum_i w_i x_ij over observed entries (D,), their weight (D,)) of one chunk."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones(x.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    obs = ~np.isnan(x)
    return w @ np.where(obs, x, 0.0), w @ obs


def _chunk_scan(x, w, offset):
    """scan_missing of one chunk, its first empty row as an index into X."""
    n_holes, n_empty, first, observed, n_complete = _missing.scan_missing(np.asarray(x))
    return (n_holes, n_empty, (first + offset) if first >= 0 else -1, observed,
            n_complete)


def _chunk_sums(x, w):
    """(sum_i w_i x_i in float64 (D,), sum_i w_i) of one chunk."""
    w = _weights(w)
    weight = float(x.shape[0]) if w is None else float(w.sum())
    if weight == 0.0:
        return np.zeros(x.shape[1]), 0.0
    # the in-memory path's blocked mean, times its weight
    return _stats.weighted_mean(x, w) * weight, weight


def _chunk_scatter(x, w, center_cfg):
    """sum_i w_i (x_i - c)(x_i - c)^T of one chunk, float64 (D, D)."""
    center, cfg = center_cfg
    x = _rows(x, center.dtype)
    with _blas_for(cfg):
        return (_stats.scatter(x, _weights(w), center, cfg),)


def _sum_parts(*parts):
    """Element-wise sum of equal-length tuples, in order (None stays None)."""
    out = []
    for items in zip(*parts):
        if items[0] is None:
            out.append(None)
            continue
        total = items[0]
        for item in items[1:]:
            total = total + item
        out.append(total)
    return tuple(out)


def _tree_sum(parts, split_every=SPLIT_EVERY):
    """Delayed tree reduction of per-chunk tuples with ``_sum_parts``."""
    from dask import delayed

    combine = delayed(_sum_parts, pure=True)
    while len(parts) > 1:
        parts = [combine(*parts[i:i + split_every])
                 for i in range(0, len(parts), split_every)]
    return parts[0]


def _one_node(obj, label):
    """``obj`` as a single graph node that tasks depend on (sent once)."""
    from dask import delayed

    return delayed(obj, name=f"gmmfast-{label}-{uuid.uuid4().hex}", traverse=False)


# ---------------------------------------------------------------------------
# The data source
# ---------------------------------------------------------------------------

class DaskData(DataSource):
    """A Dask array as EM data: ArrayData's interface, computed by Dask.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        float32 or float64, known chunk sizes, one chunk along axis 1
        (``check_dask_array`` makes it so).
    sample_weight : dask.array.Array of shape (n_samples,) or None
        float64, row chunks equal to X's (``check_dask_sample_weight``).
    covariance_type : str
    n_components : int
        Sets the size of the initialisation sample (``init_sample_size``).
    random_state : numpy.random.RandomState
        Draws the initialisation sample (pass the instance the fit uses).
    total_weight : float, optional
        sum of the weights when already known (validation computes it);
        else computed by one pass over the weights when first needed.
    n_threads : int or None
        OpenMP threads of the client-side kernels (initialisation on the
        sample). Chunk tasks on the workers always use one thread.

    Members as every source (gmmfast/_data.py); ``mean`` and ``T`` cost one
    pass each over X, at most once per fit.
    """

    def __init__(self, X, sample_weight, covariance_type, n_components, random_state,
                 total_weight=None, n_threads=None, missing=False):
        super().__init__(X.dtype, X.shape[0], X.shape[1])
        # NaN entries are missing values (nan_policy='marginalize')
        self.missing = missing
        self.X = X
        self.sample_weight = sample_weight
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.random_state = random_state
        # one thread per chunk task: Dask runs one task per worker thread
        self.worker_cfg = _stats.kernel_config(self.n_features, covariance_type, 1,
                                               n_components, self.dtype)
        self.client_cfg = _stats.kernel_config(self.n_features, covariance_type, n_threads,
                                               n_components, self.dtype)
        self._total_weight = (
            float(self.n_samples) if sample_weight is None else total_weight)
        self._x_blocks = list(X.to_delayed().ravel())
        self._w_blocks = (
            [None] * len(self._x_blocks) if sample_weight is None
            else list(sample_weight.to_delayed().ravel()))
        self._sample = None

    @property
    def algebra_threads(self):
        # the M-step runs on the client
        return self.client_cfg.n_threads

    # -- one pass each -----------------------------------------------------

    def _map_reduce(self, func, node):
        """Delayed: ``func(x_chunk, w_chunk[, node])`` on every chunk, tree-summed."""
        from dask import delayed

        chunk_task = delayed(func, pure=True)
        extra = () if node is None else (node,)
        return _tree_sum([chunk_task(x, w, *extra)
                          for x, w in zip(self._x_blocks, self._w_blocks)])

    def e_step_graph(self, kp):
        """The delayed (R, S1, S2, ll) of one E-step: the parameters are one
        node of the graph, the chunk tasks depend on it."""
        func = _chunk_e_step_missing if self.missing else _chunk_e_step
        return self._map_reduce(func, _one_node((kp, self.worker_cfg), "params"))

    def e_step(self, kp):
        if not self.missing:
            return super().e_step(kp)
        # with missing values the tied scatter depends on the responsibilities:
        # the chunks return it, and the parts a Bayesian lower bound needs
        import dask

        R, S1, S2, ll, Rc, S1c, S2c, llc, rlogr, ent = dask.compute(
            self.e_step_graph(kp))[0]
        self._check_finite_ll(ll)
        self.missing_terms = _missing.MissingTerms((Rc, S1c, S2c), llc, rlogr, ent)
        return (R, S1, S2), ll

    def scan_missing(self):
        """The fit's missing-value checks (gmmfast/_missing.py) in one pass."""
        import dask
        from dask import delayed

        offsets = np.concatenate([[0], np.cumsum(self.X.chunks[0])[:-1]])
        parts = dask.compute([delayed(_chunk_scan, pure=True)(x, None, int(o))
                              for x, o in zip(self._x_blocks, offsets)])[0]
        firsts = [p[2] for p in parts if p[2] >= 0]
        return (sum(p[0] for p in parts), sum(p[1] for p in parts),
                min(firsts) if firsts else -1, sum(p[3] for p in parts),
                sum(p[4] for p in parts))

    def _e_step_pass(self, kp):
        """One pass over X on the workers; ((R, S1, S2), sum_i w_i log p(x_i))."""
        import dask

        R, S1, S2, ll = dask.compute(self.e_step_graph(kp))[0]
        self._check_finite_ll(ll)
        return (R, S1, S2), ll

    @staticmethod
    def _check_finite_ll(ll):
        if not np.isfinite(ll):
            raise ValueError(
                "Input X contains NaN or infinity (the log-likelihood of the Dask "
                f"array is {ll}); remove or impute those rows, e.g. "
                "X = X[da.isfinite(X).all(axis=1)].compute_chunk_sizes(), or fit "
                "with nan_policy='marginalize' (NaN as missing values)."
            )

    @property
    def total_weight(self):
        if self._total_weight is None:
            self._total_weight = float(self.sample_weight.sum().compute())
        return self._total_weight

    def _compute_mean(self):
        """Weighted mean of X, float64 (n_features,): one pass (with missing
        values, each feature's over the rows that observe it)."""
        import dask

        if self.missing:
            total, weight = dask.compute(self._map_reduce(_chunk_observed_sums, None))[0]
            return total / weight
        total, weight = dask.compute(self._map_reduce(_chunk_sums, None))[0]
        return total / weight

    def _compute_scatter(self):
        """Tied scatter about ``center``, float64 (n_features, n_features): one pass."""
        import dask

        node = _one_node((self.center, self.worker_cfg), "center")
        chunk_scatter = _chunk_filled_scatter if self.missing else _chunk_scatter
        (T,) = dask.compute(self._map_reduce(chunk_scatter, node))[0]
        return T

    def predict(self, kp, logp=False, resp=False, labels=False):
        """Dask arrays (lazy, one task per row chunk, one kernel thread per
        task); one output at a time."""
        (what,) = [name for name, asked in
                   (("logp", logp), ("resp", resp), ("labels", labels)) if asked]
        out = predict_lazy(self.X, kp, self.n_components, what, self.missing)
        return tuple(out if asked else None for asked in (logp, resp, labels))

    def mean_log_likelihood(self, kp):
        logp = self.predict(kp, logp=True)[0]
        if self.sample_weight is None:
            return float(logp.sum(dtype=np.float64).compute()) / self.total_weight
        return float((logp.astype(np.float64) * self.sample_weight).sum().compute()) \
            / self.total_weight

    # -- initialisation -----------------------------------------------------

    def kmeans_walker(self):
        """The chunks as a block walker of the streamed k-means."""
        return DaskBlocks(self)

    def init_data(self, init_params=None):
        """The source itself for the streamed initialisers ('kmeans',
        'k-means++'); else an in-memory ArrayData of a random sample of rows.

        The sample (``init_sample_size`` rows, uniform without replacement,
        drawn with ``random_state``; their weights come along) is drawn when
        an initialiser first reads the data, and reused by every ``n_init``
        run: with weights_init, means_init and precisions_init all given,
        nothing is drawn.
        """
        if init_params in STREAMED_INITS and not self.missing:
            return self
        return _LazySample(self)

    def draw_sample(self):
        """The initialisation sample as an in-memory ArrayData (drawn once)."""
        if self._sample is None:
            import dask

            n_sample = init_sample_size(self.n_samples, self.n_components)
            idx = sample_indices(self.n_samples, n_sample, self.random_state)
            rows = self.X if n_sample == self.n_samples else self.X[idx]
            weights = self.sample_weight
            if weights is not None and n_sample < self.n_samples:
                weights = weights[idx]
            X_sample, w_sample = dask.compute(rows, weights)
            X_sample = np.ascontiguousarray(X_sample, dtype=self.dtype)
            if self.missing and _missing.has_nan(X_sample):
                if w_sample is not None:
                    w_sample = np.ascontiguousarray(w_sample, dtype=np.float64)
                self._sample = _missing.MissingArrayData(
                    X_sample, w_sample, self.client_cfg,
                    _covariance.get(self.covariance_type), self.n_components).init_data()
                return self._sample
            if not np.isfinite(X_sample.sum(dtype=np.float64)) and \
                    not np.all(np.isfinite(X_sample)):
                raise ValueError(
                    "Input X contains NaN or infinity (found in the initialisation "
                    "sample); remove or impute those rows, e.g. "
                    "X = X[da.isfinite(X).all(axis=1)].compute_chunk_sizes()."
                )
            if w_sample is not None:
                w_sample = np.ascontiguousarray(w_sample, dtype=np.float64)
                n_positive = int(np.count_nonzero(w_sample))
                if n_positive < self.n_components:
                    raise ValueError(
                        f"The initialisation sample of {n_sample} rows has "
                        f"{n_positive} rows of positive sample_weight, fewer than "
                        f"n_components={self.n_components}; pass weights_init, "
                        "means_init and precisions_init, or drop the zero-weight rows."
                    )
            self._sample = ArrayData(X_sample, w_sample, self.client_cfg)
        return self._sample


def _chunk_walker(x, w, start, dtype):
    return _kmeans.ArrayBlocks(_rows(x, dtype), _weights(w), 1, base=start)


def _chunk_map(x, w, start, dtype, task):
    """One chunk's part of a k-means pass: its row blocks, combined in order."""
    func, args, combine, width, kernel = task
    with blas_single_thread():  # the worker runs several chunk tasks at once
        return _chunk_walker(x, w, start, dtype).map_reduce(func, args, combine, width,
                                                            kernel)


def _chunk_chain(x, w, start, dtype, task, carry):
    func, args, width, kernel = task
    with blas_single_thread():
        return _chunk_walker(x, w, start, dtype).chain(func, args, carry, width, kernel)


def _combine_in_order(combine, *parts):
    """Parts combined in chunk order; None (a chunk without rows) skipped."""
    total = None
    for part in parts:
        if part is not None:
            total = part if total is None else combine(total, part)
    return total


class DaskBlocks:
    """The row chunks of a DaskData as a walker of gmmfast/_kmeans.py.

    ``map_reduce`` runs one task per chunk (on the worker holding it, its
    rows in blocks), combined by a tree reduction in chunk order;
    ``chain`` runs the chunks one after another, each task taking the
    previous one's carry (the running cumulative sums of the k-means++
    draws). The arguments of a pass are one graph node.
    """

    def __init__(self, source):
        self.source = source
        self.n_samples = source.n_samples
        self.n_features = source.n_features
        self.dtype = source.dtype
        self.weighted = source.sample_weight is not None
        self._starts = np.concatenate([[0], np.cumsum(source.X.chunks[0])[:-1]]).astype(int)

    def _parts(self):
        return zip(self.source._x_blocks, self.source._w_blocks,
                   (int(a) for a in self._starts))

    def map_reduce(self, func, args, combine=_kmeans.sum_parts, width=None, kernel=False):
        import dask
        from dask import delayed

        node = _one_node((func, args, combine, width, kernel), "kmeans")
        task = delayed(_chunk_map, pure=True)
        parts = [task(x, w, a, self.dtype, node) for x, w, a in self._parts()]
        reduce = delayed(_combine_in_order, pure=True)
        while len(parts) > 1:
            parts = [reduce(combine, *parts[i:i + SPLIT_EVERY])
                     for i in range(0, len(parts), SPLIT_EVERY)]
        return dask.compute(parts[0])[0]

    def chain(self, func, args, carry, width=None, kernel=False):
        import dask
        from dask import delayed

        node = _one_node((func, args, width, kernel), "kmeans")
        task = delayed(_chunk_chain, pure=True)
        for x, w, a in self._parts():
            carry = task(x, w, a, self.dtype, node, carry)
        return dask.compute(carry)[0]

    def rows(self, indices):
        import dask

        unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        rows = dask.compute(self.source.X[unique])[0]
        return np.ascontiguousarray(np.asarray(rows)[inverse], dtype=self.dtype)

    def weights(self, indices):
        import dask

        if self.source.sample_weight is None:
            return None
        unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        w = dask.compute(self.source.sample_weight[unique])[0]
        return np.asarray(w, dtype=np.float64)[inverse]


class _LazySample:
    """Stands for the initialisation sample; draws it on first use.

    ``dtype`` is known without drawing (all that ``initial_params`` reads
    when weights_init, means_init and precisions_init are all given); any
    other member draws the sample and is read from it.
    """

    def __init__(self, source):
        self._source = source
        self.dtype = source.dtype
        self.n_features = source.n_features

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._source.draw_sample(), name)


# ---------------------------------------------------------------------------
# Lazy predictions
# ---------------------------------------------------------------------------

def _chunk_predict(x, kernel, what):
    kp, cfg = kernel
    x = _rows(x, kp.means.dtype)
    flags = dict(logp=what == "logp", resp=what == "resp", labels=what == "labels")
    index = ("logp", "resp", "labels").index(what)
    with _blas_for(cfg):
        return _stats.predict_arrays(x, kp, cfg, **flags)[index]


def _chunk_predict_missing(x, kernel, what):
    kp, cfg = kernel
    x = _rows(x, kp.means.dtype)
    if not _missing.has_nan(x):
        return _chunk_predict(x, kernel, what)
    flags = dict(logp=what == "logp", resp=what == "resp", labels=what == "labels")
    index = ("logp", "resp", "labels").index(what)
    data = _missing.MissingArrayData(x, None, cfg, kp.cov, kp.means.shape[0])
    with _blas_for(cfg):
        return data.predict(kp, **flags)[index]


def predict_lazy(X, kp, n_components, what, missing=False):
    """Dask array of one prediction output, one task per row chunk of X.

    what : 'logp' -> (n_samples,) X.dtype; 'resp' -> (n_samples, n_components)
    X.dtype; 'labels' -> (n_samples,) int64. The parameters are one graph
    node; each chunk's kernel call uses one thread.
    """
    n_features = X.shape[1]
    cfg = _stats.kernel_config(n_features, kp.covariance_type, 1,
                               n_components=kp.means.shape[0], dtype=X.dtype)
    node = _one_node((kp, cfg), "params")
    dtype = np.dtype(np.int64) if what == "labels" else np.dtype(X.dtype)
    chunk_predict = _chunk_predict_missing if missing else _chunk_predict
    if what == "resp":
        return X.map_blocks(chunk_predict, node, what, dtype=dtype,
                            chunks=(X.chunks[0], (n_components,)),
                            meta=np.empty((0, 0), dtype=dtype),
                            token="gmmfast-predict_proba")
    return X.map_blocks(chunk_predict, node, what, dtype=dtype, drop_axis=1,
                        meta=np.empty((0,), dtype=dtype),
                        token=f"gmmfast-{what}")
