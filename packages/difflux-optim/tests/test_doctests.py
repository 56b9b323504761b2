"""Run the examples in the docstrings of every module of difflux.optim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import difflux.optim

MODULES = sorted(info.name for info in pkgutil.walk_packages(difflux.optim.__path__, "difflux.optim."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
