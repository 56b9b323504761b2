"""The velocity Verlet (leapfrog) integrator and the Euclidean kinetic energy.

Hamiltonian Monte Carlo simulates the dynamics of
``H(z, r) = U(z) + K(r)`` with potential ``U`` (the negative log density) and
kinetic energy ``K(r) = r^T M^{-1} r / 2`` for a mass matrix ``M``. The
leapfrog step (Neal, "MCMC using Hamiltonian dynamics", 2011, eq. 5.18-5.20)
is a half step in momentum, a full step in position and a half step in
momentum. It is time-reversible and volume-preserving, and its energy error
is ``O(step_size^2)`` over a fixed trajectory length.

Positions and momenta are pytrees of arrays. The inverse mass matrix acts on
one flat vector: the samplers ravel their parameters with
:func:`ravel_pytree` first, so a diagonal matrix is a vector and a dense one
a matrix of the flat size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx
from difflux.core._batching import BatchTrace, BatchTracer
from difflux.core._record import record


class IntegratorState(NamedTuple):
    """A point of phase space with the potential energy and its gradient at ``z``."""

    z: Any
    r: Any
    potential_energy: Any
    z_grad: Any


def ravel_pytree(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Flatten a pytree of arrays into one 1-D vector.

    Returns:
        The vector (the leaves raveled and concatenated in tree order) and a
        function that maps such a vector back to the tree's structure and
        leaf shapes.
    """
    leaves, treedef = dx.tree_flatten(tree)
    if not leaves:
        raise ValueError("ravel_pytree: the tree has no array leaves, so there is nothing to sample")
    shapes = [tuple(dx.asarray(leaf).shape) for leaf in leaves]
    sizes = [math.prod(shape) for shape in shapes]
    flat = dx.concat([dx.reshape(dx.asarray(leaf), (-1,)) for leaf in leaves])

    def unravel(vector: Any) -> Any:
        parts = []
        start = 0
        for shape, size in zip(shapes, sizes):
            parts.append(dx.reshape(vector[start : start + size], shape))
            start += size
        return dx.tree_unflatten(treedef, parts)

    return flat, unravel


def velocity(r: Any, inverse_mass_matrix: Any) -> Any:
    """Return ``M^{-1} r`` for a diagonal (0-D or 1-D) or dense (2-D) inverse mass matrix."""
    if inverse_mass_matrix.ndim < 2:
        return inverse_mass_matrix * r
    return dx.matmul(inverse_mass_matrix, r)


def kinetic_energy(r: Any, inverse_mass_matrix: Any) -> Any:
    """Return ``r^T M^{-1} r / 2``."""
    return 0.5 * dx.sum(r * velocity(r, inverse_mass_matrix))


def sample_momentum(key: Any, mass_matrix_sqrt: Any, like: Any) -> Any:
    """Draw ``r ~ Normal(0, M)`` given a square root of the mass matrix.

    For a diagonal matrix ``mass_matrix_sqrt`` is the vector ``sqrt(M)``;
    for a dense one it is a lower-triangular ``L`` with ``L L^T = M``.
    """
    return scale_momentum(dx.random.normal(key, like.shape, dtype=like.dtype), mass_matrix_sqrt)


def scale_momentum(noise: Any, mass_matrix_sqrt: Any) -> Any:
    """Turn standard normal ``noise`` into a momentum ``r ~ Normal(0, M)`` with the square root of ``M``."""
    if mass_matrix_sqrt.ndim < 2:
        return mass_matrix_sqrt * noise
    return dx.matmul(mass_matrix_sqrt, noise)


def leapfrog(
    state: IntegratorState,
    step_size: Any,
    inverse_mass_matrix: Any,
    potential_and_grad: Callable[[Any], tuple[Any, Any]],
) -> IntegratorState:
    """Advance ``state`` by one velocity Verlet step of ``step_size`` (negative runs backwards in time).

    ``z`` and ``r`` may be pytrees of the same structure. The inverse mass
    matrix must then be diagonal and broadcast against every leaf, unless
    the leaves are single vectors.
    """
    half = 0.5 * step_size
    r_half = dx.tree_map(lambda r, g: r - half * g, state.r, state.z_grad)
    z_new = dx.tree_map(lambda z, r: z + step_size * velocity(r, inverse_mass_matrix), state.z, r_half)
    potential_energy, z_grad = potential_and_grad(z_new)
    r_new = dx.tree_map(lambda r, g: r - half * g, r_half, z_grad)
    return IntegratorState(z_new, r_new, potential_energy, z_grad)


def make_potential_and_grad(potential_fn: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
    """Return a function of ``z`` giving ``(potential_fn(z), grad potential_fn(z))``.

    On NumPy it is replayed from a recording (see :class:`RecordedOnNumpy`).
    """
    return RecordedOnNumpy(dx.value_and_grad(potential_fn))


class RecordedOnNumpy:
    """A function of ``z`` that runs, on NumPy, as a recorded program of NumPy calls.

    Eager NumPy pays Python's dispatch for every operation of the model,
    its transforms and its reverse-mode gradient, at every leapfrog step.
    The first call with NumPy values of a shape (one chain's vector, or
    the chains' batch under ``dx.vmap``) records ``function``, batched over
    the chains when they are, with ``difflux.core._record.record``. Later
    calls replay the program, which gives the same bits. An ODE solve inside
    the model stays one call of the program (``difflux.ode``'s NumPy loop).
    A function that cannot be recorded, because it reads values to choose
    its operations, runs as it is, and so does every call on JAX or on
    tracers of a derivative.
    """

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        # (batched, shape, dtype) -> the program, or None when recording failed.
        self.programs: dict[tuple[bool, tuple[int, ...], Any], Any] = {}

    def __call__(self, z: Any) -> Any:
        if type(z) is BatchTracer and type(z.value) is np.ndarray:
            program = self._program(z.value, batched=True)
            if program is not None:
                trace = z._trace
                assert isinstance(trace, BatchTrace)
                return dx.tree_map(trace.wrap, program(z.value))
        elif type(z) is np.ndarray:
            program = self._program(z, batched=False)
            if program is not None:
                return program(z)
        return self.function(z)

    def _program(self, value: np.ndarray, *, batched: bool) -> Any:
        key = (batched, value.shape, value.dtype)
        if key not in self.programs:
            function = dx.vmap(self.function) if batched else self.function
            try:
                self.programs[key] = record(function, [value])
            except Exception:
                # RecordingError, or an error that only recorded arrays
                # cause (a NumPy function applied to one, say). The function
                # itself reports any error of its own when it runs eagerly.
                self.programs[key] = None
        return self.programs[key]
