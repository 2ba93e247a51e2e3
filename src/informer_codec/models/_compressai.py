"""Import compressai's layers without running its package ``__init__``.

``import compressai`` pulls in torchvision, torch_geometric, pandas and every
model in its zoo: about 5 s here on top of torch's own 2 s, paid by every
``informer decode`` in a shell loop. Our models need only four classes, which
live in modules that import nothing but torch, numpy and scipy. When compressai
is not imported yet, we register an empty package object for it so that its
submodules load on their own; a later ``import compressai.<sub>`` still works.

Its entropy models import ``scipy.stats`` (about 0.6-1.3 s here) for one
``norm.ppf`` call that only training's ``update()`` makes, so ``scipy.stats``
is registered as a stand-in that imports it on first attribute access, never
on the decode path.

Its two compiled extensions (``_CXX``: CDF tables for ``update()``; ``ans``: the
rANS coder its entropy models construct) are never used by our models, which
code with constriction and build their own tables. Where they cannot load (a
GPU machine with another Python, where only compressai's Python sources are
carried), stand-ins take their place that fail only if actually used.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _register_bare_package() -> None:
    if "compressai" in sys.modules:
        return
    spec = importlib.util.find_spec("compressai")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("compressai is not installed")
    package = types.ModuleType("compressai")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    # The two functions its entropy models ask the package for at construction;
    # they attach an rANS coder object that we never use (constriction codes).
    package.get_entropy_coder = lambda: "ans"
    package.available_entropy_coders = lambda: ["ans"]
    sys.modules["compressai"] = package


class _DeferredModule(types.ModuleType):
    """Stands in for a module until one of its attributes is first read."""

    def __getattr__(self, attribute: str):
        parent, _, child = self.__name__.rpartition(".")
        del sys.modules[self.__name__]
        if getattr(sys.modules.get(parent), child, None) is self:
            delattr(sys.modules[parent], child)
        real = importlib.import_module(self.__name__)  # bound by `import importlib.util`
        return getattr(real, attribute)


class _MissingExtension(types.ModuleType):
    """A compressai extension that does not load here: its functions raise when called and its
    coder classes construct (compressai's entropy models build one) but raise when used."""

    def __init__(self, name: str, reason: str):
        super().__init__(name)
        self.reason = f"compressai's compiled {name} does not load here ({reason}); our codec never needs it"

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        reason = self.reason

        def unavailable(*args, **kwargs):
            raise ImportError(reason)

        if not attribute[:1].isupper():
            return unavailable  # a function (pmf_to_quantized_cdf): calling it is using it

        class UnavailableCoder:  # RansEncoder/RansDecoder: built by every entropy model, never used by ours
            def __getattr__(self, method: str):
                return unavailable

        return UnavailableCoder


def _stand_in_for_missing_extensions() -> None:
    for name in ("compressai._CXX", "compressai.ans"):
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            sys.modules[name] = _MissingExtension(name, str(exc))


def _defer_scipy_stats() -> None:
    if "scipy.stats" in sys.modules:
        return
    import scipy

    stand_in = _DeferredModule("scipy.stats")
    sys.modules["scipy.stats"] = stand_in
    scipy.stats = stand_in


_register_bare_package()
_stand_in_for_missing_extensions()
_defer_scipy_stats()

from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402
from compressai.layers import GDN, MaskedConv2d  # noqa: E402
from compressai.ops import quantize_ste  # noqa: E402

__all__ = ["GDN", "EntropyBottleneck", "GaussianConditional", "MaskedConv2d", "quantize_ste"]
