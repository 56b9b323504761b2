"""Run the examples in the docstrings of every module of difflux.core."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import difflux.core
from conftest import HAS_JAX

MODULES = sorted(info.name for info in pkgutil.walk_packages(difflux.core.__path__, "difflux.core."))

# Modules whose examples call JAX itself.
NEEDS_JAX = {"difflux.core._jax_bridge"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in NEEDS_JAX and not HAS_JAX:
        pytest.skip("the examples call JAX, which is not installed")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
