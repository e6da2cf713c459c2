"""Package attributes imported from their submodule on first use (stdlib only).

So that importing a package (as the command line does for its option lists) loads no
TensorFlow until one of its heavier names is asked for; the pattern of SPEC 1's
`lazy_loader.attach`.
"""

import importlib


def attach(package, namespace, lazy):
    """The module-level `__getattr__` and `__dir__` of `package` (its `__name__`; `namespace`
    is its `globals()`), for the names in `lazy` ({name: submodule})."""

    def __getattr__(name):
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{lazy[name]}"), name)
        namespace[name] = value  # once imported, an ordinary attribute (monkeypatch sets and restores it)
        return value

    def __dir__():
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
