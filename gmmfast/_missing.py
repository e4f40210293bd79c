"""Missing values: EM on the observed-data likelihood (data missing at random).

Row i observes the coordinates o_i (NaN marks the others, m_i). Under
component k its observed part is N(x_o | mu_k,o, Sigma_k,oo); the E-step's
responsibilities and the log-likelihood use that marginal, and the M-step
adds the conditional expectations of the missing coordinates,

    x_hat_m = mu_k,m + Sigma_k,mo Sigma_k,oo^-1 (x_o - mu_k,o),
    C_k     = Sigma_k,mm - Sigma_k,mo Sigma_k,oo^-1 Sigma_k,om,

to the sufficient statistics: R_k += w r, S1_k += w r (x_hat - c_k),
S2_k += w r ((x_hat - c_k)(x_hat - c_k)^T + C_k) (Ghahramani & Jordan 1994).
The M-step is then the complete-data M-step of gmmfast/_covariance.py,
unchanged. Diagonal and spherical covariances need no factorisation: the
missing coordinates' conditional mean is mu_k,m and their variance the
component's own.

One pass per iteration, block by block, as for complete data: the complete
rows of a block go through the kernel (gmmfast/_stats.py), gathered into a
block-sized buffer when the block has holes; the rows with holes are grouped
by their missingness pattern and each group is done with numpy in float64.
Per pattern and component, the Cholesky factor of Sigma_k,oo, the regression
Sigma_k,mo Sigma_k,oo^-1 and C_k are computed once per iteration and cached
across blocks. The cost of an iteration therefore grows with the number of
distinct patterns P as P K D^3 (factorisations, full and tied) plus the rows
with holes times K D^2; nothing of size n_samples x n_components is stored.
"""
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from . import _stats
from ._data import ArrayData
from ._maths import LOG_2PI

# rows per block of the passes over X
BLOCK_ROWS = 8192


def _blocks(n_samples, block=BLOCK_ROWS):
    for a in range(0, n_samples, block):
        yield a, min(a + block, n_samples)


def scan_missing(X, block=BLOCK_ROWS):
    """One pass over X: (n_rows_with_nan, n_empty_rows, first_empty_row,
    observed count per feature (D,), number of complete rows)."""
    n_samples, n_features = X.shape
    observed = np.zeros(n_features, dtype=np.int64)
    n_holes = n_empty = n_complete = 0
    first_empty = -1
    for a, b in _blocks(n_samples, block):
        mask = np.isnan(X[a:b])
        per_row = mask.sum(axis=1)
        observed += (b - a) - mask.sum(axis=0)
        n_holes += int(np.count_nonzero(per_row))
        n_complete += int(np.count_nonzero(per_row == 0))
        empty = np.flatnonzero(per_row == n_features)
        if empty.size and first_empty < 0:
            first_empty = a + int(empty[0])
        n_empty += int(empty.size)
    return n_holes, n_empty, first_empty, observed, n_complete


def filled_scatter(X, sample_weight, center, block=BLOCK_ROWS):
    """sum_i w_i (x_i - c)(x_i - c)^T with each NaN replaced by its column's
    centre c_j (the observed mean: its deviation counts as 0), float64 (D, D)."""
    D = X.shape[1]
    T = np.zeros((D, D))
    center = np.asarray(center, dtype=np.float64)
    for a, b in _blocks(X.shape[0], block):
        Y = np.asarray(X[a:b], dtype=np.float64) - center
        Y[np.isnan(Y)] = 0.0
        wY = Y if sample_weight is None else Y * np.asarray(sample_weight[a:b])[:, None]
        T += wY.T @ Y
    return 0.5 * (T + T.T)


def batch_statistics(X, sample_weight, kp, cfg, missing):
    """One E-step over an in-memory batch (online EM): ((R, S1, S2), sum w
    log p); tied: S2 is the scatter about kp.center. ``missing``: X has NaN."""
    if missing:
        data = MissingArrayData(X, sample_weight, cfg, kp.cov, kp.means.shape[0])
        return data.e_step(kp)
    (R, S1, S2), ll = _stats.e_step_stats(X, sample_weight, kp, cfg)
    if kp.cov.uses_scatter:
        S2 = _stats.scatter(X, sample_weight, kp.center, cfg)
    return (R, S1, S2), ll


def has_nan(X, block=BLOCK_ROWS):
    """Whether X (in memory or memmapped) holds a NaN, block by block."""
    for a, b in _blocks(X.shape[0], block):
        if np.isnan(X[a:b].sum()):
            # a sum is NaN for a NaN entry (inf was refused before)
            if np.isnan(X[a:b]).any():
                return True
    return False


def check_scan(scan, feature_names=None):
    """The errors of a fit with nan_policy='marginalize': features and rows
    with no observed entry; ``scan`` is what scan_missing returns."""
    n_holes, n_empty, first_empty, observed, n_complete = scan
    missing_features = np.flatnonzero(observed == 0)
    if missing_features.size:
        j = int(missing_features[0])
        name = (f"feature {j}" if feature_names is None
                else f"feature {j} ({feature_names[j]!r})")
        raise ValueError(
            f"X has no observed value of {name}: it is NaN in every row, so "
            "nothing can be learnt about it. Drop that column.")
    if n_empty:
        raise ValueError(
            f"X has {n_empty} row{'s' if n_empty > 1 else ''} whose entries are all "
            f"NaN (the first is row {first_empty}): such a row carries no "
            "information for the fit. Drop those rows (e.g. "
            "X[~np.isnan(X).all(axis=1)]).")


class Marginals:
    """Per missingness pattern, each component's observed marginal and its
    conditional distribution of the missing coordinates, for the kernel
    parameters ``kp`` (gmmfast/_stats.KernelParams: the covariances are those
    of its precision Cholesky factors, as the kernel's; float64, cached per
    pattern)."""

    def __init__(self, kp, cov):
        self.cov = cov
        self.means = np.asarray(kp.means, dtype=np.float64)
        n_components, n_features = self.means.shape
        prec = kp.prec.reshape(cov.shape(n_components, n_features))
        # the kernels' lognorm_k is log pi_k + log det U_k - D/2 log(2 pi) (a
        # GaussianMixture), plus the variational terms of a Bayesian mixture:
        # what is not the Gaussian's own normaliser applies to every pattern
        self.offset = (np.asarray(kp.lognorm, dtype=np.float64)
                       - cov.log_det(prec, n_components, n_features)
                       + 0.5 * n_features * LOG_2PI)
        covariances = cov.covariances_from_precision_cholesky(prec)
        if cov.matrix:
            self.sigma = cov.per_component(covariances, n_components, n_features)
        else:
            # diag, spherical: per-feature variances (K, D)
            var = np.asarray(covariances, dtype=np.float64)
            self.var = var if var.ndim == 2 else np.repeat(var[:, None], n_features, axis=1)
        self._cache = {}

    def pattern(self, missing):
        """The cached factors of a missingness pattern (bool (D,))."""
        key = missing.tobytes()
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = self._factor(missing)
        return entry

    def _factor(self, missing):
        o = np.flatnonzero(~missing)
        m = np.flatnonzero(missing)
        K = self.means.shape[0]
        if not self.cov.matrix:
            var_o = self.var[:, o]
            logc = -0.5 * (o.size * LOG_2PI + np.log(var_o).sum(axis=1))
            cond_var = self.var[:, m]
            return dict(o=o, m=m, logc=logc, inv_var_o=1.0 / var_o, cond_var=cond_var,
                        entropy=_entropy(m.size, np.log(cond_var).sum(axis=1)))
        linv = np.empty((K, o.size, o.size))
        reg = np.empty((K, o.size, m.size))
        cond = np.empty((K, m.size, m.size))
        logc = np.empty(K)
        for k in range(K):
            S = self.sigma[k]
            S_oo = S[np.ix_(o, o)]
            L = linalg.cholesky(S_oo, lower=True)
            li = linalg.solve_triangular(L, np.eye(o.size), lower=True)
            linv[k] = li
            logc[k] = -0.5 * o.size * LOG_2PI - np.log(np.diag(L)).sum()
            # B^T = Sigma_oo^-1 Sigma_om = L^-T L^-1 Sigma_om
            S_om = S[np.ix_(o, m)]
            bt = li.T @ (li @ S_om)
            reg[k] = bt
            c = S[np.ix_(m, m)] - S_om.T @ bt
            cond[k] = 0.5 * (c + c.T)
        log_det_cond = (np.array([np.linalg.slogdet(c)[1] for c in cond]) if m.size
                        else np.zeros(K))
        return dict(o=o, m=m, logc=logc, linv=linv, reg=reg, cond=cond,
                    entropy=_entropy(m.size, log_det_cond))

    def log_prob(self, Xp, f):
        """log pi_k + log N(x_o | k) of the rows Xp (float64, one pattern)
        and their observed-coordinate residuals, ((n, K), (K, n, |o|))."""
        o = f["o"]
        diff = Xp[:, o][None, :, :] - self.means[:, o][:, None, :]
        if self.cov.matrix:
            z = np.matmul(diff, np.swapaxes(f["linv"], 1, 2))
            maha = np.einsum("knd,knd->nk", z, z)
        else:
            maha = np.einsum("knd,knd,kd->nk", diff, diff, f["inv_var_o"])
        return self.offset + f["logc"] - 0.5 * maha, diff

    def conditional_means(self, Xp, f, diff):
        """x_hat (K, n, D): x_o where observed, each component's conditional
        mean of the missing coordinates elsewhere."""
        K = self.means.shape[0]
        xh = np.broadcast_to(Xp, (K,) + Xp.shape).copy()
        m = f["m"]
        if m.size:
            if self.cov.matrix:
                xh[:, :, m] = self.means[:, None, m] + np.matmul(diff, f["reg"])
            else:
                xh[:, :, m] = self.means[:, None, m]
        return xh

    def conditional_cov(self, f):
        """Each component's conditional covariance of the missing coordinates,
        (K, |m|, |m|) (matrix types) or its diagonal (K, |m|)."""
        return f["cond"] if self.cov.matrix else f["cond_var"]


def _entropy(n_missing, log_det_cond):
    """Entropy of each component's conditional Gaussian of the missing
    coordinates, (K,): |m|/2 (1 + log 2 pi) + 1/2 log det C_k."""
    return 0.5 * n_missing * (1.0 + LOG_2PI) + 0.5 * log_det_cond


def _softmax(lp):
    top = lp.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(lp - top)
    s = e.sum(axis=1, keepdims=True)
    return e / s, (np.log(s) + top)[:, 0]


@dataclass
class MissingTerms:
    """What one missing-value E-step adds to the totals it returns."""

    complete_stats: tuple   # (R, S1, S2) of the complete rows (tied: S2 = T)
    complete_ll: float      # sum_i w_i log p(x_i) over the complete rows
    hole_rlogr: float       # sum over rows with holes of w r log r
    hole_entropy: float     # sum over rows with holes of w r H[x_m | x_o, k]


def _pattern_groups(mask):
    """(patterns (P, D) bool, inverse (n,)) of the rows of a block's mask."""
    patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
    return patterns, inverse.reshape(-1)


class MissingArrayData(ArrayData):
    """An in-memory or memmapped X with NaN entries (nan_policy='marginalize').

    The same interface as ArrayData (gmmfast/_data.py). Rows without NaN use
    the kernels; rows with NaN the per-pattern marginals above.
    ``init_data()`` is what the initialisers start from: the complete rows
    when there are at least ``10 * n_components`` of them, otherwise every
    row with each NaN replaced by its column's (weighted) observed mean.
    """

    def __init__(self, X, sample_weight, cfg, cov, n_components, scan=None):
        super().__init__(X, sample_weight, cfg)
        self.cov = cov
        self.n_components = n_components
        self.scan = scan_missing(X) if scan is None else scan
        self._T_complete = None

    # -- block iteration ---------------------------------------------------

    def _split_blocks(self):
        """(a, b, X complete rows, their weights, complete index, hole index,
        hole rows float64, hole weights) per block."""
        X, w = self.X, self.sample_weight
        for a, b in _blocks(self.n_samples):
            Xb = X[a:b]
            wb = None if w is None else w[a:b]
            mask = np.isnan(Xb)
            holes = mask.any(axis=1)
            if not holes.any():
                yield a, b, Xb, wb, None, None, None, None, None
                continue
            ci = np.flatnonzero(~holes)
            hi = np.flatnonzero(holes)
            Xc = np.ascontiguousarray(Xb[ci])
            wc = None if wb is None else np.ascontiguousarray(wb[ci])
            Xh = Xb[hi].astype(np.float64)
            wh = np.ones(hi.size) if wb is None else wb[hi].astype(np.float64)
            yield a, b, Xc, wc, ci, hi, Xh, wh, mask[hi]

    # -- the E-step ----------------------------------------------------------

    def e_step(self, kp):
        """One pass: ((R, S1, S2), sum_i w_i log p(x_i,o)); tied: S2 is the
        scatter of the complete rows plus the holes' expected scatter.

        Also sets ``missing_terms`` (what a Bayesian mixture's lower bound
        needs besides the totals): the complete rows' statistics and
        log-likelihood, and over the rows with holes sum w r log r and
        sum w r H[x_m | x_o, k] (the conditional Gaussians' entropies).
        """
        self._check_files()
        cov = self.cov
        K, D = kp.means.shape
        s2_shape = None if cov.uses_scatter else cov.s2_from_slab(
            np.zeros(cov.s2_size(K, D)), K, D).shape
        # complete rows (kernel) and rows with holes (per pattern), apart
        Rc, S1c = np.zeros(K), np.zeros((K, D))
        S2c = None if cov.uses_scatter else np.zeros(s2_shape)
        Rh, S1h = np.zeros(K), np.zeros((K, D))
        S2h = np.zeros((D, D)) if cov.uses_scatter else np.zeros(s2_shape)
        ll_c = ll_h = hole_rlogr = hole_entropy = 0.0
        marg = Marginals(kp, cov)
        shift = kp.shift
        for a, b, Xc, wc, ci, hi, Xh, wh, mh in self._split_blocks():
            if Xc.shape[0]:
                (r, s1, s2), l = _stats.e_step_stats(Xc, wc, kp, self.cfg,
                                                      keep=self._slabs)
                Rc += r
                S1c += s1
                if S2c is not None:
                    S2c += s2
                ll_c += l
            if hi is None:
                continue
            patterns, inverse = _pattern_groups(mh)
            for p in range(patterns.shape[0]):
                rows = np.flatnonzero(inverse == p)
                Xp, wp = Xh[rows], wh[rows]
                f = marg.pattern(patterns[p])
                lp, diff = marg.log_prob(Xp, f)
                resp, lse = _softmax(lp)
                ll_h += float(wp @ lse)
                wr = resp * wp[:, None]          # (n, K)
                rk = wr.sum(axis=0)
                with np.errstate(invalid="ignore"):
                    hole_rlogr += float(np.where(wr > 0, wr * (lp - lse[:, None]), 0.0).sum())
                hole_entropy += float(rk @ f["entropy"])
                xh = marg.conditional_means(Xp, f, diff)   # (K, n, D)
                y = xh - shift[:, None, :]
                Rh += rk
                S1h += np.einsum("nk,knd->kd", wr, y)
                ccov = marg.conditional_cov(f)
                m = f["m"]
                if cov.uses_scatter:
                    S2h += np.einsum("nk,kni,knj->ij", wr, y, y)
                    if m.size:
                        S2h[np.ix_(m, m)] += np.einsum("k,kij->ij", rk, ccov)
                elif cov.name == "full":
                    S2h += np.einsum("nk,kni,knj->kij", wr, y, y)
                    if m.size:
                        S2h[np.ix_(np.arange(K), m, m)] += rk[:, None, None] * ccov
                elif cov.name == "diag":
                    S2h += np.einsum("nk,knd->kd", wr, y * y)
                    if m.size:
                        S2h[:, m] += rk[:, None] * ccov
                else:  # spherical
                    S2h += np.einsum("nk,knd->k", wr, y * y)
                    if m.size:
                        S2h += rk * ccov.sum(axis=1)
        if cov.uses_scatter:
            S2c = self._scatter_complete(kp.center)
        self.missing_terms = MissingTerms((Rc, S1c, S2c), ll_c, hole_rlogr, hole_entropy)
        return (Rc + Rh, S1c + S1h, S2c + S2h), ll_c + ll_h

    def _scatter_complete(self, center):
        """Scatter of the complete rows about ``center``: computed once per
        centre (a fit keeps one, the data mean)."""
        key = np.asarray(center).tobytes()
        if self._T_complete is None or self._T_complete[0] != key:
            D = self.n_features
            T = np.zeros((D, D))
            for a, b, Xc, wc, *_ in self._split_blocks():
                if Xc.shape[0]:
                    T += _stats.scatter(Xc, wc, center, self.cfg)
            self._T_complete = (key, T)
        return self._T_complete[1]

    def _compute_scatter(self):
        """The scatter with each NaN's deviation counted as 0
        (``filled_scatter``): what a default covariance prior is taken from."""
        self._check_files()
        return filled_scatter(self.X, self.sample_weight, self.center)

    def _compute_mean(self):
        """Each feature's weighted mean over the rows that observe it."""
        self._check_files()
        D = self.n_features
        total = np.zeros(D)
        weight = np.zeros(D)
        for a, b in _blocks(self.n_samples):
            Xb = self.X[a:b].astype(np.float64)
            wb = np.ones(b - a) if self.sample_weight is None else self.sample_weight[a:b]
            obs = ~np.isnan(Xb)
            total += wb @ np.where(obs, Xb, 0.0)
            weight += wb @ obs
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / weight

    # -- the start -------------------------------------------------------------

    def init_data(self, init_params=None):
        """The complete rows (at least 10 per component), or every row with
        its NaN replaced by the column's observed mean: an in-memory copy
        (of those rows) that any initialiser runs on."""
        n_complete = self.scan[4]
        if n_complete >= 10 * self.n_components:
            parts = [(Xc, wc) for _, _, Xc, wc, *_ in self._split_blocks()]
            X = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
            w = None if self.sample_weight is None else np.concatenate(
                [p[1] for p in parts])
        else:
            X = np.array(self.X, dtype=self.dtype, order="C", copy=True)
            fill = self.mean.astype(self.dtype)
            rows, cols = np.nonzero(np.isnan(X))
            X[rows, cols] = fill[cols]
            w = self.sample_weight
        return ArrayData(X, w, self.cfg)

    # -- predictions -------------------------------------------------------------

    def predict(self, kp, logp=False, resp=False, labels=False):
        self._check_files()
        n, K = self.n_samples, kp.means.shape[0]
        out_logp = np.empty(n, dtype=self.dtype) if logp else None
        out_resp = np.empty((n, K), dtype=self.dtype) if resp else None
        out_labels = np.empty(n, dtype=np.int64) if labels else None
        marg = Marginals(kp, self.cov)
        for a, b, Xc, wc, ci, hi, Xh, wh, mh in self._split_blocks():
            if Xc.shape[0]:
                lp_c, r_c, l_c = _stats.predict_arrays(Xc, kp, self.cfg, logp=logp,
                                                       resp=resp, labels=labels)
                rows_c = slice(a, b) if ci is None else a + ci
                for out, val in ((out_logp, lp_c), (out_resp, r_c), (out_labels, l_c)):
                    if out is not None:
                        out[rows_c] = val
            if hi is None:
                continue
            patterns, inverse = _pattern_groups(mh)
            for p in range(patterns.shape[0]):
                rows = np.flatnonzero(inverse == p)
                lp, _ = marg.log_prob(Xh[rows], marg.pattern(patterns[p]))
                r, lse = _softmax(lp)
                at = a + hi[rows]
                if out_logp is not None:
                    out_logp[at] = lse
                if out_resp is not None:
                    out_resp[at] = r
                if out_labels is not None:
                    out_labels[at] = np.argmax(lp, axis=1)
        return out_logp, out_resp, out_labels

    def impute(self, kp):
        """A copy of X with each NaN replaced by sum_k r_k(x_o) E[x_m | x_o, k]."""
        self._check_files()
        out = np.array(self.X, dtype=self.dtype, order="C", copy=True)
        marg = Marginals(kp, self.cov)
        for a, b, Xc, wc, ci, hi, Xh, wh, mh in self._split_blocks():
            if hi is None:
                continue
            patterns, inverse = _pattern_groups(mh)
            for p in range(patterns.shape[0]):
                rows = np.flatnonzero(inverse == p)
                Xp = Xh[rows]
                f = marg.pattern(patterns[p])
                lp, diff = marg.log_prob(Xp, f)
                r, _ = _softmax(lp)
                m = f["m"]
                xh = marg.conditional_means(Xp, f, diff)[:, :, m]
                # only the missing entries: the observed ones stay as given
                out[np.ix_(a + hi[rows], m)] = np.einsum("nk,knd->nd", r, xh)
        return out
