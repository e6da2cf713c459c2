"""pyproject.toml's warning filters: `make test` ended with 397 warnings, ours and others' mixed,
so a new one went unseen. Named third-party ones are hidden; ours fail their test."""

import warnings

import pytest


def _warn_from(module, message, category):
    warnings.warn_explicit(message, category, filename=f"{module.replace('.', '/')}.py", lineno=1, module=module)


def test_a_warning_raised_in_our_modules_fails_the_test():
    for module in ("tfcyclegan.training.train", "tfcyclegan_cli.fit"):
        with pytest.raises(UserWarning):
            _warn_from(module, "something we should fix", UserWarning)
    # NumPy's copy-keyword warning too, when it comes from a call of ours.
    with pytest.raises(DeprecationWarning):
        _warn_from("tfcyclegan.quality.metrics", "__array__ implementation doesn't accept a copy keyword", DeprecationWarning)  # fmt: skip


def test_named_third_party_warnings_are_hidden_and_others_still_show():
    with warnings.catch_warnings(record=True) as caught:
        _warn_from(
            "keras.src.backend.tensorflow.core",
            "__array__ implementation doesn't accept a copy keyword, so passing copy=False failed.",
            DeprecationWarning,
        )
        _warn_from("somelib", "a new warning", UserWarning)
    assert [str(w.message) for w in caught] == ["a new warning"]
    with pytest.raises(UserWarning):  # fit() on a tf.data.Dataset must say shuffle=False
        _warn_from("keras.src.trainers.data_adapters", "`shuffle=True` was passed, but will be ignored since", UserWarning)  # fmt: skip
