"""Stochastic variational inference: fit a guide's parameters by maximising the ELBO.

``SVI`` collects the ``param`` sites of the guide and the model, keeps them
in unconstrained space (``biject_to(constraint).inv``) so any first-order
optimiser can move them freely, and steps the optimiser on the gradient of
the loss. The optimiser is anything that follows difflux's optimiser
protocol (``init(params)``, ``update(grads, state, params)``), such as the
rules of ``difflux.optim``. On JAX the whole step is compiled once with
``dx.jit``; on NumPy it runs eagerly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

from ..dist import biject_to, constraints
from ..handlers import replay, seed, trace
from ._elbo import Trace_ELBO
from ._util import backend_scope

__all__ = ["SVI", "SVIRunResult", "SVIState"]


def _backend(x: Any) -> str:
    return backend_of_value(value_of(x)) or dx.default_backend()


def _x64(key: Any) -> bool:
    if _backend(key) == "numpy":
        return True
    import jax

    return bool(jax.config.read("jax_enable_x64"))


class SVIState(NamedTuple):
    """The state of an SVI run.

    Attributes:
        params: a dict from param site name to its unconstrained value.
        optim_state: the optimiser's state.
        rng_key: the key for the next step.
    """

    params: dict[str, Any]
    optim_state: Any
    rng_key: Any


class SVIRunResult(NamedTuple):
    """Result of ``SVI.run``: constrained ``params``, the final ``state`` and the ``losses`` of every step."""

    params: dict[str, Any]
    state: SVIState
    losses: Any


class SVI:
    """Stochastic variational inference.

    Args:
        model: the model, a function calling ``ppl.sample``.
        guide: the variational family: a function with a sample site for
            each latent site of the model and ``ppl.param`` sites for its
            parameters, or an autoguide from ``ppl.infer.autoguide``.
        optim: an optimiser rule, such as ``optim.Adam(1e-2)`` from
            ``difflux.optim``.
        loss: the objective; the negative ELBO by default.
        **static_kwargs: keyword arguments passed to the model and guide
            in every call.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import optim, ppl
        >>> def model(y):
        ...     mu = ppl.sample("mu", ppl.dist.Normal(0.0, 1.0))
        ...     with ppl.plate("data", len(y)):
        ...         ppl.sample("y", ppl.dist.Normal(mu, 1.0), obs=y)
        >>> guide = ppl.infer.autoguide.AutoNormal(model)
        >>> svi = ppl.SVI(model, guide, optim.Adam(0.05))
        >>> result = svi.run(dx.random.key(0, backend="numpy"), 200, np.ones(4), progress_bar=False)
        >>> sorted(result.params)
        ['mu_auto_loc', 'mu_auto_scale']
    """

    def __init__(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        optim: Any,
        loss: Any = None,
        **static_kwargs: Any,
    ) -> None:
        if not (hasattr(optim, "init") and hasattr(optim, "update")):
            raise TypeError(
                f"SVI needs an optimiser with init and update methods, such as difflux.optim.Adam(1e-2), "
                f"got {type(optim).__name__}"
            )
        self.model = model
        self.guide = guide
        self.optim = optim
        self.loss = Trace_ELBO() if loss is None else loss
        self.static_kwargs = static_kwargs
        self.constraints: dict[str, Any] = {}
        self._jitted_update = dx.jit(self._update)
        self._jitted_evaluate = dx.jit(self._evaluate)

    # ----------------------------------------------------------------------
    # Parameters
    # ----------------------------------------------------------------------

    def init(self, rng_key: Any, *args: Any, init_params: dict[str, Any] | None = None, **kwargs: Any) -> SVIState:
        """Run the guide and the model once to find their param sites; return the initial state.

        Args:
            rng_key: a key from ``dx.random.key``.
            *args: the model's and guide's positional arguments.
            init_params: initial constrained values that replace those the
                ``param`` sites declare.
            **kwargs: their keyword arguments.
        """
        kwargs = {**self.static_kwargs, **kwargs}
        rng_key, key_model, key_guide = dx.random.split(rng_key, 3)
        with backend_scope(rng_key):
            guide_trace = trace(seed(self.guide, rng_seed=key_guide)).get_trace(*args, **kwargs)
            replayed = replay(seed(self.model, rng_seed=key_model), trace=guide_trace)
            model_trace = trace(replayed).get_trace(*args, **kwargs)

        init_params = dict(init_params or {})
        params: dict[str, Any] = {}
        for site in list(guide_trace.values()) + list(model_trace.values()):
            if site["type"] != "param" or site["name"] in params:
                continue
            name = site["name"]
            constraint = site["kwargs"].get("constraint") or constraints.real
            self.constraints[name] = constraint
            value = init_params.get(name, site["value"])
            if not dx.is_array(value):
                # Python numbers become arrays of the key's backend, so the
                # optimiser and dx.jit see them as parameters.
                value = dx.asarray(value, dtype=dx.float64 if _x64(rng_key) else dx.float32, backend=_backend(rng_key))
            params[name] = biject_to(constraint).inv(value)
        unknown = sorted(set(init_params) - set(params))
        if unknown:
            raise ValueError(
                f"init_params names {unknown}, which are not param sites; the param sites are {sorted(params)}"
            )
        if not params:
            raise ValueError("SVI found no ppl.param sites in the guide or the model, so there is nothing to fit")
        return SVIState(params, self.optim.init(params), rng_key)

    def get_params(self, state: SVIState) -> dict[str, Any]:
        """Return the constrained values of the parameters in ``state``."""
        return self._constrain(state.params)

    def _constrain(self, params: dict[str, Any]) -> dict[str, Any]:
        return {name: biject_to(self.constraints[name])(value) for name, value in params.items()}

    # ----------------------------------------------------------------------
    # Steps
    # ----------------------------------------------------------------------

    def _loss_fn(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
        def loss_of(params: dict[str, Any]) -> Any:
            with backend_scope(key):
                return self.loss.loss(key, self._constrain(params), self.model, self.guide, *args, **kwargs)

        return loss_of

    def _update(self, state: SVIState, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[SVIState, Any]:
        rng_key, key_step = dx.random.split(state.rng_key)
        loss, grads = dx.value_and_grad(self._loss_fn(key_step, args, kwargs))(state.params)
        updates, optim_state = self.optim.update(grads, state.optim_state, state.params)
        params = dx.apply_updates(state.params, updates)
        return SVIState(params, optim_state, rng_key), loss

    def _evaluate(self, state: SVIState, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        _, key_step = dx.random.split(state.rng_key)
        return self._loss_fn(key_step, args, kwargs)(state.params)

    def update(self, state: SVIState, *args: Any, **kwargs: Any) -> tuple[SVIState, Any]:
        """Take one optimiser step; return the new state and the loss before the step."""
        return self._jitted_update(state, args, {**self.static_kwargs, **kwargs})

    def evaluate(self, state: SVIState, *args: Any, **kwargs: Any) -> Any:
        """Return the loss at ``state`` without stepping."""
        return self._jitted_evaluate(state, args, {**self.static_kwargs, **kwargs})

    def run(
        self,
        rng_key: Any,
        num_steps: int,
        *args: Any,
        progress_bar: bool = True,
        init_state: SVIState | None = None,
        init_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SVIRunResult:
        """Run ``num_steps`` optimiser steps from a fresh (or the given) state.

        Args:
            rng_key: a key from ``dx.random.key``.
            num_steps: the number of steps.
            *args: the model's and guide's positional arguments.
            progress_bar: whether to show a tqdm progress bar with the
                running mean loss.
            init_state: a state to continue from (``init`` is skipped).
            init_params: initial constrained parameter values (see ``init``).
            **kwargs: their keyword arguments.

        Returns:
            An :class:`SVIRunResult` with the constrained parameters, the
            final state and the array of losses, one per step.
        """
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"SVI.run needs num_steps >= 1, got {num_steps!r}")
        state = init_state if init_state is not None else self.init(rng_key, *args, init_params=init_params, **kwargs)

        steps: Any = range(num_steps)
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(steps, desc="SVI")
            steps = bar
        losses = []
        report_every = max(num_steps // 20, 1)
        for step in steps:
            state, loss = self.update(state, *args, **kwargs)
            losses.append(loss)
            if bar is not None and (step + 1) % report_every == 0:
                window = losses[-report_every:]
                bar.set_postfix(loss=f"{float(np.mean([float(v) for v in window])):.4g}")
        if bar is not None:
            bar.close()
        return SVIRunResult(self.get_params(state), state, dx.stack(losses))
