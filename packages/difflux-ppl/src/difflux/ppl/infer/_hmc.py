"""Hamiltonian Monte Carlo with a fixed trajectory length, and the kernel machinery NUTS shares.

A kernel works on one flat vector ``z`` of unconstrained parameters (see
:func:`ravel_pytree`). ``init_state`` and ``sample_at`` are pure functions
of arrays, so :class:`MCMC` can ``dx.jit`` and ``dx.vmap`` them: one
compilation serves every chain and every iteration.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx

from ._adaptation import AdaptState, WarmupAdapter, backend_name, to_backend
from ._integrator import (
    IntegratorState,
    kinetic_energy,
    leapfrog,
    make_potential_and_grad,
    ravel_pytree,
    scale_momentum,
)


class HMCState(NamedTuple):
    """The state of an HMC or NUTS chain after ``i`` iterations.

    ``z`` is the flat vector of unconstrained parameters; the kernel's
    ``unravel`` maps it back to the parameter pytree.
    """

    i: Any
    z: Any
    z_grad: Any
    potential_energy: Any
    energy: Any
    num_steps: Any
    accept_prob: Any
    mean_accept_prob: Any
    diverging: Any
    adapt_state: AdaptState
    rng_key: Any


class Transition(NamedTuple):
    """The result of one kernel transition, before adaptation."""

    state: IntegratorState
    energy: Any
    num_steps: Any
    accept_prob: Any
    diverging: Any


def _to_numpy(leaf: Any) -> Any:
    return np.asarray(leaf) if backend_name(leaf) == "jax" and hasattr(leaf, "shape") else leaf


def _compose(potential_fn: Callable[[Any], Any], unravel: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Return the potential as a function of the flat parameter vector."""
    return lambda z: potential_fn(unravel(z))


def _nan_to_inf(x: Any) -> Any:
    return dx.where(dx.isnan(x), dx.inf, x)


def uniform_from_bits(words: Any, dtype: Any) -> Any:
    """Map two uniformly random ``uint32`` words to a uniform value on ``[0, 1]``.

    A key from ``dx.random.split`` is such a pair of words: threefry output
    on JAX and SeedSequence output on NumPy. So the samplers turn a split
    key into a uniform, where ``dx.random.uniform`` would hash it again.
    Rounding gives exactly 1 with probability about ``2^-54`` in float64.
    The callers' test ``log(u) < x`` with ``x <= 0`` then rejects, as it
    should at the top of the range.
    """
    high = dx.astype(words[0], dtype)
    low = dx.astype(words[1], dtype)
    return (high + low * 2.0**-32) * 2.0**-32


class HMC:
    """Hamiltonian Monte Carlo with a fixed trajectory length (Neal 2011).

    Each iteration draws a momentum ``r ~ Normal(0, M)``, takes
    ``ceil(trajectory_length / step_size)`` leapfrog steps and accepts the
    end point with probability ``min(1, exp(H(z, r) - H(z', r')))``. Warm-up
    tunes the step size and the mass matrix (see :class:`WarmupAdapter`).

    Give either a model (a function calling ``ppl.sample``) or a
    ``potential_fn``, the negative log density of a pytree of unconstrained
    arrays. With ``potential_fn``, :meth:`MCMC.run` needs ``init_params``.

    Args:
        model: a model function; its latent sites are sampled in unconstrained space.
        potential_fn: the potential energy ``U(params)``, a scalar function of a pytree.
        step_size: the initial leapfrog step size.
        trajectory_length: the integration time ``step_size * num_steps``.
        adapt_step_size: tune the step size during warm-up by dual averaging.
        adapt_mass_matrix: estimate the mass matrix during warm-up.
        dense_mass: a dense mass matrix instead of a diagonal one.
        target_accept_prob: the mean acceptance statistic step-size adaptation aims at.
        inverse_mass_matrix: the starting inverse mass matrix (a vector for
            diagonal, a matrix for dense; default the identity).
        init_strategy: how the model layer chooses initial values (model only).
        max_delta_energy: an energy error above this marks the transition divergent.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ppl
        >>> kernel = ppl.HMC(potential_fn=lambda z: 0.5 * dx.sum(z["x"] ** 2), trajectory_length=1.0)
        >>> mcmc = ppl.MCMC(kernel, num_warmup=100, num_samples=100, progress_bar=False)
        >>> mcmc.run(dx.random.key(0, backend="numpy"), init_params={"x": dx.zeros(2, backend="numpy")})
        >>> mcmc.get_samples()["x"].shape
        (100, 2)
    """

    sample_field = "z"

    def __init__(
        self,
        model: Callable[..., Any] | None = None,
        potential_fn: Callable[[Any], Any] | None = None,
        *,
        step_size: float = 1.0,
        trajectory_length: float = 2 * math.pi,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        dense_mass: bool = False,
        target_accept_prob: float = 0.8,
        inverse_mass_matrix: Any = None,
        init_strategy: Any = None,
        max_delta_energy: float = 1000.0,
    ) -> None:
        if (model is None) == (potential_fn is None):
            raise ValueError(
                f"{type(self).__name__} needs exactly one of model= or potential_fn=, "
                f"got {'both' if model is not None else 'neither'}"
            )
        if not step_size > 0:
            raise ValueError(f"{type(self).__name__}: step_size must be positive, got {step_size}")
        if not 0.0 < target_accept_prob < 1.0:
            raise ValueError(f"{type(self).__name__}: target_accept_prob must lie in (0, 1), got {target_accept_prob}")
        if not trajectory_length > 0:
            raise ValueError(f"{type(self).__name__}: trajectory_length must be positive, got {trajectory_length}")
        self.model = model
        self.potential_fn = potential_fn
        self.step_size = float(step_size)
        self.trajectory_length = float(trajectory_length)
        self.adapt_step_size = adapt_step_size
        self.adapt_mass_matrix = adapt_mass_matrix
        self.dense_mass = dense_mass
        self.target_accept_prob = float(target_accept_prob)
        self.inverse_mass_matrix = inverse_mass_matrix
        self.init_strategy = init_strategy
        self.max_delta_energy = float(max_delta_energy)
        self._potential_and_grad: Callable[[Any], tuple[Any, Any]] | None = None
        self.unravel: Callable[[Any], Any] | None = None
        self._postprocess: Callable[[Any], Any] | None = None
        self._adapter: WarmupAdapter | None = None
        # The backend of the run's arrays, set by setup.
        self._backend = "numpy"

    # ----------------------------------------------------------------------
    # Set-up (Python side, once per run)
    # ----------------------------------------------------------------------

    def setup(
        self,
        key: Any,
        num_warmup: int,
        num_chains: int,
        init_params: Any,
        model_args: tuple[Any, ...],
        model_kwargs: dict[str, Any],
    ) -> Any:
        """Prepare the potential and warm-up for a run; return initial flat positions of shape ``(num_chains, dim)``.

        The positions are on the backend of ``key`` (with a model) or of
        ``init_params``.
        """
        if self.model is not None:
            per_chain, flat_potential = self._initialize_model(
                self.model, key, num_chains, init_params, model_args, model_kwargs
            )
        else:
            if init_params is None:
                raise ValueError(
                    f"{type(self).__name__}(potential_fn=...) needs init_params: pass "
                    "MCMC.run(key, init_params=...), a pytree of unconstrained arrays "
                    "(with a leading axis of num_chains when num_chains > 1)"
                )
            per_chain = self._split_chains(init_params, num_chains)
            potential_fn = self.potential_fn
            assert potential_fn is not None
            _, unravel = ravel_pytree(per_chain[0])
            self.unravel = unravel
            self._postprocess = None

            flat_potential = _compose(potential_fn, unravel)

        self._potential_and_grad = make_potential_and_grad(flat_potential)
        self._adapter = WarmupAdapter(
            num_warmup,
            adapt_step_size=self.adapt_step_size,
            adapt_mass_matrix=self.adapt_mass_matrix,
            dense_mass=self.dense_mass,
            target_accept_prob=self.target_accept_prob,
        )
        flat = np.stack([ravel_pytree(params)[0] for params in per_chain])
        return to_backend(flat, self._backend)

    def _initialize_model(
        self,
        model: Callable[..., Any],
        key: Any,
        num_chains: int,
        init_params: Any,
        model_args: tuple[Any, ...],
        model_kwargs: dict[str, Any],
    ) -> tuple[list[Any], Callable[[Any], Any]]:
        from ._util import constrain_fn, potential_energy

        if init_params is not None:
            per_chain = self._split_chains(init_params, num_chains)
        else:
            self._backend = backend_name(key)
            per_chain = self._find_initial_params(model, key, num_chains, model_args, model_kwargs)
        _, unravel = ravel_pytree(per_chain[0])
        self.unravel = unravel
        self._postprocess = functools.partial(constrain_fn, model, model_args, model_kwargs, return_deterministic=True)
        return per_chain, _compose(functools.partial(potential_energy, model, model_args, model_kwargs), unravel)

    def _find_initial_params(
        self,
        model: Callable[..., Any],
        key: Any,
        num_chains: int,
        model_args: tuple[Any, ...],
        model_kwargs: dict[str, Any],
    ) -> list[Any]:
        """Return one dict of unconstrained initial values per chain (NumPy arrays), found by ``initialize_model``.

        On JAX, ``initialize_model`` would run the model eagerly, and eager
        JAX compiles every new operation, which takes seconds. So the search
        first runs on NumPy copies of the model's arguments, in milliseconds.
        A model that does not run on NumPy (one that makes JAX arrays itself,
        say) is searched with each try compiled as one program, and a model
        that ``dx.jit`` cannot trace is searched eagerly on JAX.
        """
        from ._util import find_initial_params_compiled, initialize_model

        options = {} if self.init_strategy is None else {"init_strategy": self.init_strategy}
        keys = dx.random.split(key, num_chains)
        if backend_name(keys) != "jax":
            return [
                initialize_model(keys[c], model, model_args, model_kwargs, **options).params for c in range(num_chains)
            ]

        host_keys = np.asarray(keys)
        numpy_args, numpy_kwargs = dx.tree_map(_to_numpy, (model_args, model_kwargs))
        try:
            return [
                initialize_model(host_keys[c], model, numpy_args, numpy_kwargs, **options).params
                for c in range(num_chains)
            ]
        except (TypeError, ValueError, AttributeError, RuntimeError):
            pass  # the model needs JAX (or fails on NumPy): search on JAX, which reports any error itself

        jax_keys = [to_backend(host_key, "jax") for host_key in host_keys]
        found: list[dict[str, Any] | None]
        try:
            found = find_initial_params_compiled(jax_keys, model, model_args, model_kwargs, **options)
        except (TypeError, ValueError, AttributeError, RuntimeError, NotImplementedError, KeyError):
            found = [None] * num_chains  # dx.jit cannot trace the model: the eager search runs it as it is
        per_chain = []
        for c, params in enumerate(found):
            if params is None:
                # No finite starting point, or no compiled search: search eagerly, which raises the diagnosis.
                params = initialize_model(jax_keys[c], model, model_args, model_kwargs, **options).params
            per_chain.append(dx.tree_map(_to_numpy, params))
        return per_chain

    def _split_chains(self, init_params: Any, num_chains: int) -> list[Any]:
        """Return one parameter pytree per chain, as NumPy arrays, and record the backend of ``init_params``."""
        leaves = dx.tree_leaves(init_params)
        backends = [backend_name(leaf) for leaf in leaves if dx.is_array(leaf)]
        self._backend = backends[0] if backends else dx.default_backend()
        # NumPy copies: indexing and raveling JAX arrays eagerly would compile each operation.
        init_params = dx.tree_map(np.asarray, init_params)
        if num_chains == 1:
            return [init_params]
        for leaf in dx.tree_leaves(init_params):
            shape = tuple(leaf.shape)
            if not shape or shape[0] != num_chains:
                raise ValueError(
                    f"init_params for {num_chains} chains must have a leading axis of size {num_chains} "
                    f"on every leaf, got a leaf of shape {shape}"
                )
        return [dx.tree_map(lambda leaf, c=c: leaf[c], init_params) for c in range(num_chains)]

    def postprocess(self, z: Any) -> Any:
        """Map one flat position to the values reported as samples (constrained sites and deterministics)."""
        assert self.unravel is not None
        params = self.unravel(z)
        return params if self._postprocess is None else self._postprocess(params)

    # ----------------------------------------------------------------------
    # Pure array functions: jit and vmap apply to these
    # ----------------------------------------------------------------------

    def init_state(self, key: Any, z: Any) -> HMCState:
        """Return the chain state at ``z`` before the first iteration.

        The state contains zeros in place of the potential energy and its
        gradient. The first iteration evaluates them inside the compiled loop,
        and with ``adapt_step_size`` it also searches the initial step size.
        """
        _, adapter = self._prepared()
        inverse_mass = self._initial_inverse_mass_matrix(z)
        zero = dx.zeros_like(z[0])
        backend = backend_name(z)
        return HMCState(
            i=dx.asarray(0, dtype=dx.int32, backend=backend),
            z=z,
            z_grad=dx.zeros_like(z),
            potential_energy=zero,
            energy=zero,
            num_steps=dx.asarray(0, dtype=dx.int32, backend=backend),
            accept_prob=zero,
            mean_accept_prob=zero,
            diverging=dx.asarray(False, backend=backend),
            adapt_state=adapter.init(z, zero + self.step_size, inverse_mass),
            rng_key=key,
        )

    def _prepared(self) -> tuple[Callable[[Any], tuple[Any, Any]], WarmupAdapter]:
        if self._potential_and_grad is None or self._adapter is None:
            raise RuntimeError(
                f"{type(self).__name__} is not set up: run it through MCMC.run, or call init() before sample()"
            )
        return self._potential_and_grad, self._adapter

    def _initial_inverse_mass_matrix(self, z: Any) -> Any:
        size = z.shape[0]
        if self.inverse_mass_matrix is not None:
            given = dx.asarray(self.inverse_mass_matrix, dtype=z.dtype, backend=backend_name(z))
            expected = (size, size) if self.dense_mass else (size,)
            if tuple(given.shape) != expected:
                raise ValueError(
                    f"{type(self).__name__}: inverse_mass_matrix has shape {tuple(given.shape)}, but "
                    f"{'a dense' if self.dense_mass else 'a diagonal'} metric over {size} unconstrained "
                    f"values needs shape {expected}"
                )
            return given
        if self.dense_mass:
            return dx.eye(size, dtype=z.dtype, backend=backend_name(z))
        return dx.ones_like(z)

    def sample_at(self, state: HMCState, i: Any) -> HMCState:
        """Run iteration ``i`` (warm-up while ``i < num_warmup``) from ``state``."""
        potential_and_grad, adapter = self._prepared()
        # Each random function is a threefry program in compiled code, which costs compile
        # time and run time per call. So an iteration makes two: one split and one normal
        # draw. Its rows are the momenta of the step-size search (when it runs) and of the
        # transition.
        key, key_momentum, key_transition, bits = dx.random.split(state.rng_key, 4)
        noise = dx.random.normal(key_momentum, (2, *state.z.shape), dtype=state.z.dtype)
        start = IntegratorState(state.z, state.z, state.potential_energy, state.z_grad)
        adapt, start = adapter.refresh(i, state.adapt_state, noise[0], start, potential_and_grad)
        start = start._replace(r=scale_momentum(noise[1], adapt.mass_matrix_sqrt))
        move = self.transition(key_transition, bits, start, adapt.step_size, adapt.inverse_mass_matrix)
        adapt = adapter.update(i, adapt, move.state.z, move.accept_prob)

        num_warmup = adapter.num_warmup
        count = dx.where(i < num_warmup, i + 1, i - num_warmup + 1)
        mean_accept = state.mean_accept_prob + (move.accept_prob - state.mean_accept_prob) / count
        mean_accept = dx.where(i == num_warmup, move.accept_prob, mean_accept)
        return HMCState(
            i=dx.asarray(i, dtype=dx.int32, backend=backend_name(state.z)) + dx.ones_like(state.i),
            z=move.state.z,
            z_grad=move.state.z_grad,
            potential_energy=move.state.potential_energy,
            energy=move.energy,
            num_steps=dx.astype(move.num_steps, dx.int32),
            accept_prob=move.accept_prob,
            mean_accept_prob=mean_accept,
            diverging=move.diverging,
            adapt_state=adapt,
            rng_key=key,
        )

    def transition(
        self, key: Any, bits: Any, start: IntegratorState, step_size: Any, inverse_mass_matrix: Any
    ) -> Transition:
        """Make one Metropolis-corrected HMC move from ``start``, whose ``r`` is the momentum drawn for it.

        ``key`` and ``bits`` are two keys from ``dx.random.split``. HMC reads
        its acceptance uniform from the words of ``bits`` and does not use
        ``key``; NUTS splits ``key`` along the trajectory and reads its
        first direction from ``bits``.
        """
        potential_and_grad, _ = self._prepared()
        begin = start
        energy_start = begin.potential_energy + kinetic_energy(begin.r, inverse_mass_matrix)

        num_steps = dx.maximum(dx.astype(dx.ceil(self.trajectory_length / step_size), dx.int32), 1)
        end = dx.fori_loop(
            0, num_steps, lambda _, s: leapfrog(s, step_size, inverse_mass_matrix, potential_and_grad), begin
        )
        energy_end = end.potential_energy + kinetic_energy(end.r, inverse_mass_matrix)

        delta = _nan_to_inf(energy_end - energy_start)
        accept_prob = dx.exp(dx.minimum(-delta, 0.0))
        uniform = uniform_from_bits(bits, energy_start.dtype)
        accept = dx.log(uniform) < -delta
        new = dx.tree_map(lambda a, b: dx.where(accept, a, b), end, begin)
        energy = dx.where(accept, energy_end, energy_start)
        return Transition(new, energy, num_steps, accept_prob, delta > self.max_delta_energy)

    # ----------------------------------------------------------------------
    # NumPyro-style single-chain API
    # ----------------------------------------------------------------------

    def init(
        self,
        rng_key: Any,
        num_warmup: int,
        init_params: Any = None,
        model_args: tuple[Any, ...] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> HMCState:
        """Prepare one chain and return its initial state (``MCMC`` does this for you)."""
        key_setup, key_state = dx.random.split(rng_key)
        z = self.setup(key_setup, num_warmup, 1, init_params, model_args, model_kwargs or {})[0]
        state = self.init_state(key_state, z)
        potential_energy, z_grad = self._prepared()[0](z)
        return state._replace(z_grad=z_grad, potential_energy=potential_energy, energy=potential_energy)

    def sample(self, state: HMCState, model_args: tuple[Any, ...] = (), model_kwargs: Any = None) -> HMCState:
        """Run the next iteration from ``state``; the model arguments are those given to :meth:`init`."""
        return self.sample_at(state, state.i)
