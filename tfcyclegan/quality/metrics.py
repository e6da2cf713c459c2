"""Image quality numbers: pixel metrics, FID and KID.

Pixel metrics take float images in the model's [-1, 1] range and measure them on the
[0, 1] scale, p = (x + 1) / 2: L1 is mean |p - q| (x 255 gives grey levels), PSNR and
SSIM use max_val = 1. Each is computed per image and averaged over the set.
"""

import os
import socket
import urllib.parse
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcyclegan.util import report
from tfcyclegan.util.errors import UserError, first_line

# Keras' own ImageNet InceptionV3 weights without the classifier head, as
# keras.applications.InceptionV3(include_top=False) downloads them, with Keras' MD5.
INCEPTION_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_SIZE = 299
INCEPTION_MIN_SIZE = 75  # the smallest input keras.applications.InceptionV3 accepts
# Seconds the weights' host may take to accept a connection before the download is
# given up: an offline machine whose firewall drops packets must not hang the evaluation.
CONNECT_TIMEOUT = 15


def _unit(x):
    return (tf.convert_to_tensor(x, tf.float32) + 1.0) / 2.0


def l1_per_image(x, y):
    """mean |p - q| over pixels and channels of each image, on the [0, 1] scale."""
    return tf.reduce_mean(tf.abs(_unit(x) - _unit(y)), axis=[1, 2, 3]).numpy()


def psnr_per_image(x, y):
    """tf.image.psnr on the [0, 1] scale: 10 log10(1 / MSE); +inf for identical images."""
    return tf.image.psnr(_unit(x), _unit(y), max_val=1.0).numpy()


def ssim_per_image(x, y):
    """tf.image.ssim on the [0, 1] scale (11x11 Gaussian window, sigma 1.5, k1 0.01, k2 0.03)."""
    return tf.image.ssim(_unit(x), _unit(y), max_val=1.0).numpy()


def pixel_metrics(x, y, ssim=True):
    """Mean L1, PSNR (and SSIM) of image batches x against y, both float in [-1, 1].

    PSNR is the mean of per-image PSNRs, so a single exactly reproduced image makes it
    +inf: an exact translator scores PSNR = inf and L1 = 0.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if x.shape != y.shape or x.ndim != 4 or not len(x):
        raise ValueError(f"need two equal, non-empty (N, H, W, 3) batches, got {x.shape} and {y.shape}")
    result = {"l1": float(np.mean(l1_per_image(x, y))), "psnr": float(np.mean(psnr_per_image(x, y)))}
    if ssim:
        result["ssim"] = float(np.mean(ssim_per_image(x, y)))
    return result


def cycle_metrics(originals, reconstructions):
    """L1, PSNR and SSIM of F(G(a)) against a (or G(F(b)) against b): see pixel_metrics."""
    return pixel_metrics(reconstructions, originals)


def ground_truth_metrics(sources, translations, truths):
    """L1 and PSNR of G(a) against the true counterpart b*, beside the identity baseline a against b*.

    An identity translator scores the baseline exactly; an exact one scores L1 0 and PSNR +inf.
    """
    got, base = pixel_metrics(translations, truths, ssim=False), pixel_metrics(sources, truths, ssim=False)
    return {
        "l1": got["l1"],
        "psnr": got["psnr"],
        "baseline_l1": base["l1"],
        "baseline_psnr": base["psnr"],
        "l1_ratio": base["l1"] / got["l1"] if got["l1"] > 0 else float("inf"),
    }


def _statistics(features):
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need a (N >= 2, D) feature matrix, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) for Gaussians N(mu1, S1), N(mu2, S2).

    Tr (S1 S2)^{1/2} is the sum of the square roots of the eigenvalues of S1 S2, which
    equal those of the symmetric PSD matrix S1^{1/2} S2 S1^{1/2}: computing them with a
    symmetric eigensolver avoids the complex round-off of a general matrix square root.
    """
    root1 = _psd_sqrt(sigma1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * cross, 0.0))


def fid(features1, features2):
    """Fréchet Inception Distance (Heusel et al. 2017) between two (N, D) feature sets.

    Means and unbiased covariances (divisor N - 1) of each set go into frechet_distance.
    With N below D the covariances are rank-deficient and FID is biased upwards; compare
    only numbers computed on equally many images.
    """
    return frechet_distance(*_statistics(features1), *_statistics(features2))


def polynomial_kernel(x, y):
    """k(x, y) = (x . y / d + 1)^3 for all rows of x against all rows of y; d the feature size."""
    return (np.asarray(x, np.float64) @ np.asarray(y, np.float64).T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
    """Unbiased MMD^2 with the cubic polynomial kernel (Bińkowski et al. 2018, eq. 2):

    sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
    - 2 sum_{i, j} k(x_i, y_j) / (m n).
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 samples per set, got {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def kid(features1, features2, subsets=100, subset_size=1000, seed=0):
    """Kernel Inception Distance: (mean, std) of mmd2_unbiased over random subsets.

    As in Bińkowski et al.: `subsets` draws of `subset_size` rows of each set, without
    replacement within a draw. Sets no larger than `subset_size` are compared whole,
    once, and the std is None.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if min(len(x), len(y)) <= subset_size:
        return mmd2_unbiased(x, y), None
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            x[rng.choice(len(x), subset_size, replace=False)], y[rng.choice(len(y), subset_size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _imagenet_weights(cache_dir, timeout):
    """Local path of Keras' ImageNet InceptionV3 weights in `cache_dir`/models (None: Keras'
    cache, $KERAS_HOME or ~/.keras), downloading them once if needed.

    keras.utils.get_file has no time-out, so before a download the weights' host must
    accept a connection within `timeout` seconds; the process's default socket time-out
    is left as it is.
    """
    import keras

    cache_dir = Path(cache_dir or os.environ.get("KERAS_HOME") or "~/.keras").expanduser()
    url = urllib.parse.urlsplit(INCEPTION_URL)
    if url.hostname and not (cache_dir / "models" / INCEPTION_FILE).is_file():
        port = url.port or (80 if url.scheme == "http" else 443)
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    with report.stdout_as_notes():
        return keras.utils.get_file(
            INCEPTION_FILE, INCEPTION_URL, cache_subdir="models", file_hash=INCEPTION_MD5, cache_dir=str(cache_dir)
        )


class InceptionFeatures:
    """2048-d InceptionV3 pool features: keras.applications.InceptionV3(include_top=False, pooling="avg").

    `weights` is "imagenet" (Keras' download, cached in `cache_dir`, see _imagenet_weights;
    a host silent for `timeout` seconds fails it), a local .h5 weights file, or None for
    random weights (only to test the plumbing). Images, float in [-1, 1] as the model
    makes them and as InceptionV3's own preprocessing expects, are resized bilinearly to
    `input_size` (299 for ImageNet weights). Loading raises UserError with a one-line reason.
    """

    def __init__(
        self, weights="imagenet", input_size=INCEPTION_SIZE, batch_size=32, cache_dir=None, timeout=CONNECT_TIMEOUT
    ):
        import keras

        if input_size < INCEPTION_MIN_SIZE:
            raise ValueError(f"InceptionV3 needs inputs of at least {INCEPTION_MIN_SIZE}px, got {input_size}")
        if weights == "imagenet":
            try:
                weights = _imagenet_weights(cache_dir, timeout)
            except Exception as error:
                cause = error.__context__ or error
                reason = getattr(cause, "reason", None) or first_line(cause)
                raise UserError(
                    f"cannot download the ImageNet InceptionV3 weights ({reason}); fetch {INCEPTION_URL} "
                    "elsewhere and pass it with --inception-weights FILE"
                ) from None
            self.source = "imagenet"
        elif weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise UserError(
                    f"inception weights {weights}: no such file; give the notop .h5 file ({INCEPTION_FILE})"
                )
            weights = str(path)
            self.source = weights
        else:
            self.source = "random"
        try:
            self.model = keras.applications.InceptionV3(
                include_top=False, pooling="avg", weights=weights, input_shape=(input_size, input_size, 3)
            )
        except Exception as error:
            raise UserError(
                f"cannot load inception weights {weights}: {first_line(error)}; give Keras' {INCEPTION_FILE}"
            ) from None
        self.input_size = input_size
        self.batch_size = batch_size
        self._forward = tf.function(
            lambda x: self.model(tf.image.resize(x, (input_size, input_size), method="bilinear"), training=False),
            input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
        )

    def __call__(self, images):
        """(N, 2048) float64 features of an (N, H, W, 3) batch in [-1, 1]."""
        images = np.asarray(images, np.float32)
        chunks = [
            self._forward(images[i : i + self.batch_size]).numpy() for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks).astype(np.float64)
