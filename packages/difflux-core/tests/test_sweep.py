"""Gradient sweep: every registered case against finite differences.

The cases live in ``cases_*.py`` modules beside this file (see
``sweep_case.py`` for the format); adding an operation means adding a case.
"""

from __future__ import annotations

import importlib
import pathlib

import numpy as np
import pytest

import difflux.core as dx
from difflux.core.testing import check_grads

_HERE = pathlib.Path(__file__).parent


def _collect() -> list:
    cases = []
    for path in sorted(_HERE.glob("cases_*.py")):
        module = importlib.import_module(path.stem)
        cases.extend(module.CASES)
    return cases


CASES = _collect()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gradient_matches_finite_differences(case, backend):
    if backend not in case.backends:
        pytest.skip(f"{case.name} does not run on {backend}")
    rng = np.random.default_rng(0)
    args = [dx.asarray(a, backend=backend) for a in case.args(rng)]
    check_grads(case.fn, args, order=case.order, modes=case.modes, eps=case.eps, rtol=case.rtol, atol=case.atol)


def test_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
