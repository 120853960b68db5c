"""Per-image and cohort maths against numpy (and scikit-learn's PCA), to 1e-9 relative."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from dicomsql.stats import images, pca

RELATIVE = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture
def image():
    rng = np.random.default_rng(4)
    return rng.normal(size=(60, 24)) @ rng.normal(size=(24, 24)) + 100  # correlated columns


def test_covariance_and_eigen_against_numpy(image):
    np.testing.assert_allclose(images.covariance(image), np.cov(image, rowvar=False), **RELATIVE)
    result = images.eigen(image)
    values, vectors = np.linalg.eigh(np.cov(image, rowvar=False))
    np.testing.assert_allclose(result["eigenvalues"], values[::-1], **RELATIVE)
    # a deterministic sign: the largest entry of each eigenvector is positive
    vectors = vectors[:, ::-1].T
    np.testing.assert_allclose(
        np.abs(result["eigenvectors"]), np.abs(vectors), rtol=1e-7, atol=1e-9
    )
    largest = result["eigenvectors"][
        np.arange(24), np.argmax(np.abs(result["eigenvectors"]), axis=1)
    ]
    assert (largest > 0).all()
    with pytest.raises(ValueError, match="single-sample"):
        images.covariance(np.zeros((4, 4, 3)))


def test_pca_against_svd_and_scikit_learn(image):
    result = images.pca(image, 5)
    reference = PCA(5, svd_solver="full").fit(image)
    np.testing.assert_allclose(
        result["explained_variance"], reference.explained_variance_, **RELATIVE
    )
    np.testing.assert_allclose(
        result["explained_variance_ratio"], reference.explained_variance_ratio_, **RELATIVE
    )
    np.testing.assert_allclose(
        np.abs(result["components"]), np.abs(reference.components_), rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(
        result["scores"], (image - image.mean(0)) @ result["components"].T, **RELATIVE
    )
    eigen = images.eigen(image)
    np.testing.assert_allclose(
        result["components"], eigen["eigenvectors"][:5], rtol=1e-7, atol=1e-9
    )  # same signs
    with pytest.raises(ValueError, match="k must be between 1 and 24"):
        images.pca(image, 25)


def test_summary_and_resize():
    values = np.arange(1000, dtype=float)
    stats = images.summary(values, bins=10)
    assert (stats["n"], stats["min"], stats["max"], stats["mean"]) == (1000, 0.0, 999.0, 499.5)
    assert stats["std"] == pytest.approx(values.std())
    np.testing.assert_allclose(
        stats["percentiles"], np.percentile(values, [1, 5, 25, 50, 75, 95, 99])
    )
    assert stats["histogram"].tolist() == [100] * 10 and stats["bin_edges"][0] == 0.0
    flat = np.full((8, 6), 7.0, dtype=np.float32)
    assert images.resize(flat, 4, 3).shape == (4, 3) and np.allclose(images.resize(flat, 4, 3), 7.0)
    assert images.resize(np.zeros((8, 6, 3), np.float32), 2, 2).shape == (2, 2, 3)


def test_streamed_moments_equal_numpy_in_any_batching(image):
    rng = np.random.default_rng(2)
    vectors = (
        rng.normal(size=(500, 30)) * rng.uniform(1, 100, 30) + 1e4
    )  # large mean: cancellation risk
    whole = pca.Moments().add(vectors)
    batched = pca.Moments()
    for chunk in np.array_split(vectors, 13):
        batched.add(chunk)
    merged = pca.Moments().add(vectors[:123]).merge(pca.Moments().add(vectors[123:]))
    for moments in (whole, batched, merged):
        np.testing.assert_allclose(
            moments.covariance(), np.cov(vectors, rowvar=False), rtol=1e-9, atol=1e-6
        )
        np.testing.assert_allclose(moments.mean, vectors.mean(0), rtol=1e-12)
    with pytest.raises(ValueError, match="different lengths"):
        pca.Moments().add(vectors).merge(pca.Moments().add(vectors[:, :3]))


def test_pca_methods_against_svd():
    rng = np.random.default_rng(6)
    basis = rng.normal(size=(4, 50))
    vectors = (
        rng.normal(size=(400, 4)) * [50, 20, 10, 5] @ basis + rng.normal(size=(400, 50)) * 0.01 + 3
    )
    _, singular, rows = np.linalg.svd(vectors - vectors.mean(0), full_matrices=False)
    reference = images.orient(rows[:3])
    variances = singular[:3] ** 2 / (len(vectors) - 1)

    streamed = pca.PcaAccumulator.create(3, None)
    for chunk in np.array_split(vectors, 7):
        streamed.add(chunk)
    model = streamed.model()
    assert model["method"] == "covariance" and model["n"] == 400
    np.testing.assert_allclose(model["components"], reference, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(model["eigenvalues"], variances, **RELATIVE)
    np.testing.assert_allclose(
        model["explained_variance_ratio"], variances / (singular**2 / 399).sum(), **RELATIVE
    )

    few = pca.PcaAccumulator.create(3, {"max_dimension": "10"})  # d = 50 > 10, n = 30 <= d: Gram
    few.add(vectors[:30])
    gram = few.model()
    _, s30, r30 = np.linalg.svd(vectors[:30] - vectors[:30].mean(0), full_matrices=False)
    assert gram["method"] == "gram"
    np.testing.assert_allclose(gram["components"], images.orient(r30[:3]), rtol=1e-7, atol=1e-8)

    many = pca.PcaAccumulator.create(3, {"max_dimension": "10"})  # n > d: randomized (approximate)
    many.add(vectors)
    randomized = many.model()
    assert randomized["method"] == "randomized"
    np.testing.assert_allclose(
        randomized["components"], reference, atol=1e-4
    )  # a clear spectrum: close

    scores = pca.project(model, vectors[:5])
    np.testing.assert_allclose(
        scores, (vectors[:5] - vectors.mean(0)) @ model["components"].T, **RELATIVE
    )
    full = pca.PcaAccumulator.create(50, None)
    full.add(vectors)
    everything = full.model()
    np.testing.assert_allclose(
        pca.reconstruct(everything, pca.project(everything, vectors[:5])), vectors[:5], rtol=1e-9
    )
