"""FID, KID and pixel metrics against independent computations; the Inception feature path."""

import math
import socket

import numpy as np
import pytest

from tfcyclegan.quality import metrics


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(300, 20))
    assert metrics.fid(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    # Diagonal S1, S2: Tr(S1 + S2 - 2 (S1 S2)^{1/2}) = sum (sqrt(s1) - sqrt(s2))^2.
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_fid_of_two_gaussian_samples_matches_a_general_eigen_computation():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8)) + 0.5
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Independent route: eigenvalues of the non-symmetric product S1 S2 (real, >= 0 in theory).
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross
    assert metrics.fid(a, b) == pytest.approx(expected, rel=1e-8)


def _mmd2_by_loops(x, y):
    d = x.shape[1]

    def k(u, v):
        return (np.dot(u, v) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_of_a_double_loop():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    value, std = metrics.kid(x, y)
    assert value == pytest.approx(_mmd2_by_loops(x, y), rel=1e-10)
    assert std is None


def test_kid_over_subsets_averages_subset_estimates():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(40, 4))
    value, std = metrics.kid(x, y, subsets=5, subset_size=10, seed=7)
    draw = np.random.default_rng(7)
    expected = [
        _mmd2_by_loops(x[draw.choice(30, 10, replace=False)], y[draw.choice(40, 10, replace=False)]) for _ in range(5)
    ]
    assert value == pytest.approx(np.mean(expected), rel=1e-10)
    assert std == pytest.approx(np.std(expected), rel=1e-8)


def test_pixel_metrics_on_the_unit_scale():
    x = np.full((2, 16, 16, 3), -1.0, np.float32)  # black
    y = np.full((2, 16, 16, 3), 0.0, np.float32)  # grey 0.5 on [0, 1]
    m = metrics.pixel_metrics(x, y)
    assert m["l1"] == pytest.approx(0.5)
    assert m["psnr"] == pytest.approx(10 * math.log10(1 / 0.25), rel=1e-5)
    same = metrics.pixel_metrics(x, x)
    assert same["l1"] == 0 and same["psnr"] == math.inf and same["ssim"] == pytest.approx(1.0)


def test_inception_feature_path_with_random_weights():
    features = metrics.InceptionFeatures(weights=None, input_size=metrics.INCEPTION_MIN_SIZE, batch_size=3)
    images = np.random.default_rng(5).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    f = features(images)
    assert f.shape == (4, 2048) and f.dtype == np.float64 and np.all(np.isfinite(f))
    assert metrics.fid(f, f) == pytest.approx(0.0, abs=1e-6)
    assert features.source == "random"


def test_missing_inception_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(metrics.UserError, match="no such file"):
        metrics.InceptionFeatures(weights=tmp_path / "nope.h5")


def test_offline_imagenet_download_is_a_one_line_user_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(metrics.UserError) as caught:
        metrics.InceptionFeatures(cache_dir=tmp_path)  # nothing cached there
    message = str(caught.value)
    assert "network disabled" in message and "--inception-weights" in message and "\n" not in message


def test_a_silent_host_fails_the_download_after_the_timeout_and_the_socket_default_is_kept(tmp_path, monkeypatch):
    calls = []

    def silent_host(address, timeout=None, *args, **kwargs):
        calls.append((address, timeout))
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent_host)
    with pytest.raises(metrics.UserError, match="timed out"):
        metrics.InceptionFeatures(cache_dir=tmp_path, timeout=3)  # nothing cached there
    assert calls == [(("storage.googleapis.com", 443), 3)]
    assert socket.getdefaulttimeout() is None
