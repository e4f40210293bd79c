"""partial_fit: online (stepwise) EM on re-centred sufficient statistics."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone

from gmmfast import GaussianMixture
from gmmfast import _covariance

from conftest import COVARIANCE_TYPES, start_params

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------

def direct_stats(X, w, resp, shift, covariance_type):
    """sum_i w r_ik (x_i - c_k) and its second moment, straight from the rows."""
    R = (w[:, None] * resp).sum(axis=0)
    S1 = np.stack([(w * resp[:, k]) @ (X - shift[k]) for k in range(len(R))])
    if covariance_type == "tied":
        Y = X - shift[0]
        return R, S1, (w[:, None] * Y).T @ Y
    full = np.stack([((w * resp[:, k])[:, None] * (X - shift[k])).T @ (X - shift[k])
                     for k in range(len(R))])
    if covariance_type == "full":
        return R, S1, full
    if covariance_type == "diag":
        return R, S1, np.diagonal(full, axis1=1, axis2=2).copy()
    return R, S1, np.trace(full, axis1=1, axis2=2)


def full_covariances(cov, covariance_type, n_components, n_features):
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(n_features)


def log_joint(X, weights, means, covs):
    """log pi_k + log N(x | mu_k, Sigma_k), (n_samples, K), by Cholesky."""
    out = np.empty((X.shape[0], len(weights)))
    for k, (m, c) in enumerate(zip(means, covs)):
        L = np.linalg.cholesky(c)
        z = np.linalg.solve(L, (X - m).T)
        out[:, k] = (np.log(weights[k]) - 0.5 * (z**2).sum(axis=0)
                     - np.log(np.diag(L)).sum() - 0.5 * X.shape[1] * np.log(2 * np.pi))
    return out


def reference_stream(batches, weights, covariance_type, theta, decay, offset, reg,
                     start=None):
    """Stepwise EM with raw float64 moments (fine for data near the origin).

    s = (sum w r, sum w r x, sum w r x x^T) / sum w, blended with rho = 1
    for the first batch (or from ``start`` moments), then (t + offset)^-decay.
    Returns the parameters after each batch and each batch's mean log-lik.
    """
    pi, mu, cov = theta
    K, D = mu.shape
    s = start
    t = 0 if start is None else 1
    history, lls = [], []
    for X, w in zip(batches, weights):
        w = np.ones(len(X)) if w is None else w
        lj = log_joint(X, pi, mu, full_covariances(cov, covariance_type, K, D))
        logp = np.logaddexp.reduce(lj, axis=1)
        lls.append(float(w @ logp / w.sum()))
        r = np.exp(lj - logp[:, None])
        W = w.sum()
        batch = ((w[:, None] * r).sum(0) / W,
                 (w[:, None] * r).T @ X / W,
                 np.einsum("n,nk,nd,ne->kde", w, r, X, X) / W)
        rho = 1.0 if s is None else (t + offset) ** (-decay)
        s = batch if s is None else tuple((1 - rho) * a + rho * b for a, b in zip(s, batch))
        t += 1
        s0, s1, s2 = s
        pi = s0 / s0.sum()
        mu = s1 / s0[:, None]
        second = s2 / s0[:, None, None] - mu[:, :, None] * mu[:, None, :]
        if covariance_type == "full":
            cov = second + reg * np.eye(D)
        elif covariance_type == "tied":
            cov = (s2.sum(0) - np.einsum("k,kd,ke->de", s0, mu, mu)) / s0.sum() + reg * np.eye(D)
        elif covariance_type == "diag":
            cov = np.diagonal(second, axis1=1, axis2=2) + reg
        else:
            cov = np.diagonal(second, axis1=1, axis2=2).mean(axis=1) + reg
        history.append((pi, mu, cov))
    return history, lls


def mixture_batches(n_batches, batch_size, seed, n_features=3, offset=0.0):
    """Mini-batches from one fixed, fairly separated mixture of 4 components."""
    fixed = np.random.default_rng(5)
    centers = fixed.normal(scale=4.0, size=(4, n_features))
    A = fixed.normal(size=(4, n_features, n_features)) * 0.3 + np.eye(n_features)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        labels = rng.choice(4, size=batch_size, p=p)
        Z = rng.normal(size=(batch_size, n_features))
        out.append(centers[labels] + np.einsum("nd,nde->ne", Z, A[labels]) + offset)
    return out


# ---------------------------------------------------------------------------
# the algebra
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_reshift_stats_matches_direct_computation(covariance_type, offset):
    rng = np.random.default_rng(0)
    n, K, D = 300, 3, 4
    X = rng.normal(size=(n, D)) * 2.0 + offset
    w = rng.uniform(0.1, 2.0, size=n)
    resp = rng.uniform(size=(n, K))
    resp /= resp.sum(axis=1, keepdims=True)
    if covariance_type == "tied":
        old = np.tile(rng.normal(size=D) + offset, (K, 1))
        new = np.tile(rng.normal(size=D) + offset, (K, 1))
    else:
        old = rng.normal(size=(K, D)) + offset
        new = rng.normal(size=(K, D)) + offset
    stats_old = direct_stats(X, w, resp, old, covariance_type)
    before = [a.copy() for a in stats_old]
    got = _covariance.get(covariance_type).reshift(*stats_old, old, new)
    want = direct_stats(X, w, resp, new, covariance_type)
    for g, v, name in zip(got, want, ("R", "S1", "S2")):
        assert g.shape == v.shape, name
        np.testing.assert_allclose(g, v, rtol=1e-9, atol=1e-9 * np.abs(v).max(), err_msg=name)
    for a, b in zip(stats_old, before):  # inputs untouched
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_reshift_there_and_back_is_identity(covariance_type):
    rng = np.random.default_rng(1)
    K, D = 2, 3
    R = rng.uniform(1, 5, K)
    S1 = rng.normal(size=(K, D))
    S2 = {"full": np.einsum("kd,ke->kde", S1, S1) + np.eye(D) * 5,
          "tied": np.eye(D) * 7, "diag": rng.uniform(1, 5, (K, D)),
          "spherical": rng.uniform(1, 5, K)}[covariance_type]
    a = np.tile(rng.normal(size=D), (K, 1)) if covariance_type == "tied" else rng.normal(size=(K, D))
    b = a + (1.5 if covariance_type == "tied" else rng.normal(size=(K, D)))
    there = _covariance.get(covariance_type).reshift(R, S1, S2, a, b)
    back = _covariance.get(covariance_type).reshift(*there, b, a)
    for x, y in zip(back, (R, S1, S2)):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_stats_from_params_inverts_the_m_step(covariance_type):
    rng = np.random.default_rng(2)
    K, D, reg = 3, 4, 1e-3
    weights = np.array([0.2, 0.3, 0.5])
    means = rng.normal(size=(K, D)) * 3
    A = rng.normal(size=(K, D, D))
    cov = {"full": A @ np.swapaxes(A, 1, 2) + np.eye(D),
           "tied": A[0] @ A[0].T + np.eye(D),
           "diag": rng.uniform(0.5, 2.0, (K, D)),
           "spherical": rng.uniform(0.5, 2.0, K)}[covariance_type]
    cov_type = _covariance.get(covariance_type)
    (R, S1, S2), shift = cov_type.stats_from_params(weights, means, cov, reg)
    nk, m, c = cov_type.params_from_stats(R, S1, S2, shift, reg, 0.0)
    np.testing.assert_allclose(nk / nk.sum(), weights, rtol=1e-12)
    np.testing.assert_allclose(m, means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, cov, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# partial_fit against the reference
# ---------------------------------------------------------------------------

def _start(covariance_type, n_features=3, seed=3):
    centers = np.random.default_rng(5).normal(scale=4.0, size=(4, n_features))
    return start_params(covariance_type, centers, seed=seed)


def _theta(start, covariance_type):
    prec = np.asarray(start["precisions_init"], dtype=np.float64)
    cov = np.linalg.inv(prec) if covariance_type in ("full", "tied") else 1.0 / prec
    return start["weights_init"], start["means_init"], cov


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_partial_fit_is_stepwise_em(covariance_type):
    batches = mixture_batches(4, 200, seed=1)
    rng = np.random.default_rng(0)
    weights = [None, rng.uniform(0.2, 3.0, 200), None, rng.uniform(0.0, 1.0, 200)]
    start = _start(covariance_type)
    reg, decay, offset = 1e-4, 0.7, 1.5
    gm = GaussianMixture(4, covariance_type=covariance_type, reg_covar=reg,
                         learning_decay=decay, learning_offset=offset, **start)
    history, lls = reference_stream(batches, weights, covariance_type,
                                    _theta(start, covariance_type), decay, offset, reg)
    for i, (X, w) in enumerate(zip(batches, weights)):
        assert gm.partial_fit(X, sample_weight=w) is gm
        pi, mu, cov = history[i]
        np.testing.assert_allclose(gm.weights_, pi, rtol=1e-9)
        np.testing.assert_allclose(gm.means_, mu, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(gm.covariances_, cov, rtol=1e-8, atol=1e-9)
        assert gm.lower_bound_ == pytest.approx(lls[i], rel=1e-10)
        assert gm.n_iter_ == i + 1 and gm.lower_bounds_ == pytest.approx(lls[:i + 1])
        assert gm.converged_ is False
        if covariance_type in ("full", "tied"):
            # the blended second-order statistics are kept exactly symmetric
            # (re-centring them rounds (i, j) and (j, i) differently)
            S2 = gm._online_state.S2
            assert np.array_equal(S2, np.swapaxes(S2, -1, -2))
    # the fitted attributes agree with each other, and the model predicts
    prec = _covariance.get(covariance_type).precisions(gm.precisions_cholesky_)
    np.testing.assert_allclose(gm.precisions_, prec, rtol=1e-10)
    inv = (np.linalg.inv(gm.covariances_) if covariance_type in ("full", "tied")
           else 1.0 / gm.covariances_)
    np.testing.assert_allclose(gm.precisions_, inv, rtol=1e-8)
    assert gm.predict(batches[0]).shape == (200,)
    assert np.isfinite(gm.score(batches[0]))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_stream_of_batches_reaches_the_batch_fit(covariance_type):
    """The issue's criterion: mean log-likelihood within 1% of the batch fit."""
    X_train = np.vstack(mixture_batches(10, 1000, seed=10, n_features=5))
    X_test = np.vstack(mixture_batches(10, 1000, seed=11, n_features=5))
    batch = GaussianMixture(4, covariance_type=covariance_type, n_init=2,
                            random_state=0).fit(X_train)
    online = GaussianMixture(4, covariance_type=covariance_type, random_state=0)
    stream = mixture_batches(150, 100, seed=12, n_features=5)
    online.partial_fit(stream[0])
    first = online.score(X_test)
    for X in stream[1:]:
        online.partial_fit(X)
    ll_batch, ll_online = batch.score(X_test), online.score(X_test)
    assert abs(ll_online - ll_batch) <= 0.01 * abs(ll_batch), (ll_online, ll_batch)
    # the criterion is not met by the first batch alone: the stream did it
    assert ll_online - first > 0.01 * abs(ll_batch), (first, ll_online)
    assert online.n_iter_ == 150 and len(online.lower_bounds_) == 150


# ---------------------------------------------------------------------------
# weights, precision, pickling, fit interplay
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_are_replicated_rows(covariance_type):
    batches = mixture_batches(3, 150, seed=2)
    rng = np.random.default_rng(4)
    counts = [rng.integers(0, 4, 150) for _ in batches]
    start = _start(covariance_type)
    weighted = GaussianMixture(4, covariance_type=covariance_type, **start)
    replicated = GaussianMixture(4, covariance_type=covariance_type, **start)
    for X, c in zip(batches, counts):
        weighted.partial_fit(X, sample_weight=c)
        replicated.partial_fit(np.repeat(X, c, axis=0))
        assert weighted.lower_bound_ == pytest.approx(replicated.lower_bound_, rel=1e-10)
    for name in ATTRS:
        np.testing.assert_allclose(getattr(weighted, name), getattr(replicated, name),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_from_origin_same_as_near(covariance_type):
    """Re-centred statistics, no raw moments: an offset of 1e6 changes only the means."""
    near, far = (mixture_batches(6, 200, seed=3, offset=o) for o in (0.0, 1e6))
    start = _start(covariance_type)
    start_far = dict(start, means_init=start["means_init"] + 1e6)
    a = GaussianMixture(4, covariance_type=covariance_type, **start)
    b = GaussianMixture(4, covariance_type=covariance_type, **start_far)
    for x, y in zip(near, far):
        a.partial_fit(x)
        b.partial_fit(y)
    np.testing.assert_allclose(b.means_ - 1e6, a.means_, atol=1e-7)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-6)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-8)


def test_float32_batches_stay_float32():
    batches = [b.astype(np.float32) for b in mixture_batches(5, 300, seed=4)]
    gm32 = GaussianMixture(4, random_state=0)
    gm64 = GaussianMixture(4, random_state=0)
    for X in batches:
        gm32.partial_fit(X)
        gm64.partial_fit(X.astype(np.float64))
    for name in ATTRS:
        assert getattr(gm32, name).dtype == np.float32, name
    np.testing.assert_allclose(gm32.means_, gm64.means_, rtol=1e-3, atol=1e-3)
    # later float64 batches are computed in the model's dtype
    gm32.partial_fit(batches[0].astype(np.float64))
    assert gm32.means_.dtype == np.float32


def test_pickle_mid_stream_continues_identically():
    batches = mixture_batches(6, 200, seed=5)
    gm = GaussianMixture(4, covariance_type="tied", random_state=0)
    for X in batches[:3]:
        gm.partial_fit(X)
    copy = pickle.loads(pickle.dumps(gm))
    assert copy._online_state.n_steps == gm._online_state.n_steps == 3
    for X in batches[3:]:
        gm.partial_fit(X)
        copy.partial_fit(X)
    for name in ATTRS:
        np.testing.assert_array_equal(getattr(gm, name), getattr(copy, name))
    assert gm.lower_bounds_ == copy.lower_bounds_


def test_schedule_parameters_do_not_change_fit():
    X = np.vstack(mixture_batches(2, 300, seed=6))
    a = GaussianMixture(4, random_state=0).fit(X)
    b = GaussianMixture(4, random_state=0, learning_decay=1.0, learning_offset=50.0).fit(X)
    for name in ATTRS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_fit_ends_the_stream_and_warm_start_continues_the_fit():
    batches = mixture_batches(3, 300, seed=7)
    X = np.vstack(mixture_batches(2, 500, seed=8))
    gm = GaussianMixture(4, covariance_type="full", random_state=0, reg_covar=1e-4)
    gm.partial_fit(batches[0])
    gm.partial_fit(batches[1])
    gm.fit(X)
    assert not hasattr(gm, "_online_state")
    fitted = (gm.weights_.copy(), gm.means_.copy(), gm.covariances_.copy())

    # warm_start=False: the next partial_fit starts a new stream from its batch
    fresh = clone(gm).partial_fit(batches[2])
    gm.partial_fit(batches[2])
    assert gm.n_iter_ == 1
    np.testing.assert_array_equal(gm.means_, fresh.means_)

    # warm_start=True: the fit is the stream's first step, the batch is blended with rho_1
    warm = clone(gm).set_params(warm_start=True).fit(X)
    np.testing.assert_allclose(warm.means_, fitted[1])
    warm.partial_fit(batches[2])
    assert warm.n_iter_ == 1 and warm._online_state.n_steps == 2
    start = (fitted[0],
             fitted[0][:, None] * fitted[1],
             fitted[0][:, None, None] * (fitted[2] - 1e-4 * np.eye(3)
                                         + np.einsum("kd,ke->kde", fitted[1], fitted[1])))
    history, lls = reference_stream([batches[2]], [None], "full", fitted, 0.6, 2.0, 1e-4,
                                    start=start)
    pi, mu, cov = history[0]
    np.testing.assert_allclose(warm.weights_, pi, rtol=1e-8)
    np.testing.assert_allclose(warm.means_, mu, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(warm.covariances_, cov, rtol=1e-7, atol=1e-9)
    assert warm.lower_bound_ == pytest.approx(lls[0], rel=1e-10)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def test_feature_count_change_between_batches_raises():
    gm = GaussianMixture(2, random_state=0).partial_fit(np.random.default_rng(0).normal(size=(50, 3)))
    before = gm.means_.copy()
    with pytest.raises(ValueError, match="X has 4 features, but GaussianMixture is expecting 3"):
        gm.partial_fit(np.zeros((10, 4)))
    np.testing.assert_array_equal(gm.means_, before)  # the stream is intact
    assert gm.n_iter_ == 1


def test_first_batch_needs_n_components_rows():
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).partial_fit(np.zeros((3, 2)) + np.arange(3)[:, None])
    # later batches may be small, even one row
    gm = GaussianMixture(2, random_state=0).partial_fit(
        np.random.default_rng(0).normal(size=(20, 2)))
    gm.partial_fit(np.ones((1, 2)))
    assert gm.n_iter_ == 2


def test_changed_n_components_mid_stream_raises():
    gm = GaussianMixture(2, random_state=0).partial_fit(
        np.random.default_rng(0).normal(size=(40, 2)))
    gm.set_params(n_components=3)
    with pytest.raises(ValueError, match="partial_fit continues a stream.*n_components=2"):
        gm.partial_fit(np.zeros((10, 2)))


@pytest.mark.parametrize("name, value", [("learning_decay", 0.5), ("learning_decay", 1.2),
                                         ("learning_offset", -1.0)])
def test_bad_schedule_parameters_raise(name, value):
    with pytest.raises(ValueError, match=name):
        GaussianMixture(2, **{name: value}).partial_fit(np.zeros((10, 2)) + np.arange(10)[:, None])


def test_bad_sample_weight_in_later_batch_raises_and_keeps_the_stream():
    rng = np.random.default_rng(0)
    gm = GaussianMixture(2, random_state=0).partial_fit(rng.normal(size=(40, 2)))
    state = gm._online_state
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        gm.partial_fit(rng.normal(size=(5, 2)), sample_weight=[1, 1, -1, 1, 1])
    with pytest.raises(ValueError, match="sample_weight is zero everywhere"):
        gm.partial_fit(rng.normal(size=(5, 2)), sample_weight=np.zeros(5))
    assert gm._online_state is state and gm.n_iter_ == 1


@pytest.mark.parametrize("make_copy", ["copy", "deepcopy", "pickle", "load"])
def test_fitted_attributes_never_alias_across_copies(make_copy, tmp_path):
    """A copy keeps its own record: one more partial_fit on the original
    leaves the copy's lower_bounds_ (and every other attribute) as it was."""
    import copy
    import pickle

    import gmmfast

    X = np.random.default_rng(0).normal(size=(300, 2))
    gm = GaussianMixture(2, random_state=0)
    gm.partial_fit(X[:100]).partial_fit(X[100:200])
    twin = {"copy": copy.copy, "deepcopy": copy.deepcopy,
            "pickle": lambda m: pickle.loads(pickle.dumps(m)),
            "load": lambda m: gmmfast.load(m.save(tmp_path / "m.npz"))}[make_copy](gm)
    before = {k: (list(v) if isinstance(v, list) else np.copy(v))
              for k, v in vars(twin).items() if k.endswith("_") and not k.startswith("_")}
    gm.partial_fit(X[200:])
    assert gm.n_iter_ == 3 and len(gm.lower_bounds_) == 3
    assert twin.n_iter_ == 2 and len(twin.lower_bounds_) == 2
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(twin, k), v, err_msg=k)
