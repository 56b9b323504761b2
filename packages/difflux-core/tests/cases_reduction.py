"""Sweep cases for the reductions and cumulative operations."""

from __future__ import annotations

import numpy as np

import difflux.core as dx
from sweep_case import Case, uniform


def with_zeros(shape: tuple[int, ...], zeros: int) -> object:
    """An ``args`` drawer of one uniform array with ``zeros`` entries set to exactly 0.

    Products are polynomials in their inputs, so finite differences stay
    accurate at the zeros and check the rules exactly where division fails.
    """

    def draw(rng: np.random.Generator) -> list[np.ndarray]:
        x = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, size=zeros, replace=False)] = 0.0
        return [x]

    return draw


CASES = [
    Case("sum_axis", lambda x: dx.sum(x, axis=1), uniform((2, 3))),
    Case("mean_keepdims", lambda x: dx.mean(x, axis=0, keepdims=True), uniform((2, 3))),
    Case("prod_all", dx.prod, uniform((2, 3), low=0.5, high=1.5)),
    Case("prod_axes", lambda x: dx.prod(x, axis=(0, 2), keepdims=True), uniform((2, 3, 2), low=-1.5, high=1.5)),
    Case("prod_one_zero", lambda x: dx.prod(x, axis=1), with_zeros((2, 4), 1)),
    Case("prod_two_zeros", dx.prod, with_zeros((5,), 2)),
    Case("max_axis", lambda x: dx.max(x, axis=1), uniform((3, 4))),
    Case("min_all", dx.min, uniform((3, 4))),
    Case("var", lambda x: dx.var(x, axis=0), uniform((4, 3))),
    Case("var_correction", lambda x: dx.var(x, correction=1, keepdims=True), uniform((4, 3))),
    Case("std", lambda x: dx.std(x, axis=1, correction=1), uniform((3, 4))),
    Case("cumulative_sum", lambda x: dx.cumulative_sum(x, axis=1), uniform((2, 4))),
    Case("cumulative_sum_initial", lambda x: dx.cumulative_sum(x, axis=0, include_initial=True), uniform((3, 2))),
    Case("cumsum_flat", dx.cumsum, uniform((2, 3))),
    Case("cumulative_prod", lambda x: dx.cumulative_prod(x, axis=1), uniform((2, 6), low=0.5, high=1.5)),
    Case("cumulative_prod_zeros", lambda x: dx.cumulative_prod(x, axis=0), with_zeros((7, 2), 3)),
    Case("cumprod_initial", lambda x: dx.cumulative_prod(x, include_initial=True), with_zeros((5,), 1)),
    Case("logsumexp_all", dx.logsumexp, uniform((3, 4))),
    Case("logsumexp_axis", lambda x: dx.logsumexp(x, axis=1, keepdims=True), uniform((3, 4))),
    Case("logsumexp_b", lambda x, b: dx.logsumexp(x, axis=0, b=b), uniform((3, 4), (1, 4), low=0.5, high=2.0)),
    Case("diff", lambda x: dx.diff(x, axis=0), uniform((4, 3))),
    Case("diff_second", lambda x, p: dx.diff(x, n=2, prepend=p, append=1.5), uniform((3, 4), (3, 1))),
]
