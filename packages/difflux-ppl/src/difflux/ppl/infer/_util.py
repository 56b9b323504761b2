"""A model's log density, in constrained and unconstrained space, and the setup of samplers.

``log_density`` evaluates the log joint of a model at given site values.
``initialize_model`` finds a starting point and returns ``potential_fn``,
the negative log joint as a function of unconstrained parameters, which is
what gradient-based samplers move through, and ``postprocess_fn``, which
maps those parameters back to the values of the model's sites.

Unconstrained space: a latent site with support ``S`` is represented by
``u`` with ``value = biject_to(S)(u)``, and its density picks up the
log-determinant of that map's Jacobian,
``log p(u) = log p(value) + log|det d value / d u|``. Sites are mapped
while the model runs, so a support that depends on other sites
(``Uniform(0.0, a)``) uses the current value of ``a``.
"""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx

from .._messenger import Message, Messenger
from ..dist import biject_to
from ..handlers import seed, substitute, trace
from ._init_strategy import init_to_uniform, is_latent

__all__ = [
    "ModelInfo",
    "constrain_fn",
    "initialize_model",
    "log_density",
    "potential_energy",
    "site_log_prob",
]


def backend_scope(tree: Any) -> contextlib.AbstractContextManager[Any]:
    """Return a context that makes the backend of ``tree``'s first array leaf the default backend.

    Models write constants as Python numbers (``Normal(0.0, 1.0)``), which
    become arrays of the default backend. Running the model in this context
    puts them on the backend of the parameters or key, so a model runs on
    JAX without setting ``DIFFLUX_BACKEND``.
    """
    for leaf in dx.tree_leaves(tree):
        name = dx.backend_of(leaf)  # not the array: a dx.vmap batch must not be read
        if name in ("numpy", "jax") and dx.is_array(leaf):
            return dx.backend(name)
    return contextlib.nullcontext()


def _sum_rightmost(x: Any, n: int) -> Any:
    return dx.sum(x, axis=tuple(range(-n, 0))) if n > 0 else x


def site_log_prob(site: Message) -> Any:
    """Return the log density of sample site ``site`` with its mask and scale applied.

    The result has the site's batch shape (``sample_shape + batch_shape``):
    ``fn.log_prob(value)``, zero where the mask is false, times the scale.
    """
    log_prob = site["fn"].log_prob(site["value"])
    mask = site["mask"]
    if mask is not None:
        if isinstance(mask, bool | np.bool_):
            if not mask:
                log_prob = dx.zeros_like(log_prob)
        else:
            log_prob = dx.where(mask, log_prob, dx.zeros_like(log_prob))
    if site["scale"] is not None:
        log_prob = site["scale"] * log_prob
    return log_prob


def _log_joint(model_trace: dict[str, Message]) -> Any:
    total: Any = None
    for site in model_trace.values():
        if site["type"] != "sample":
            continue
        term = dx.sum(site_log_prob(site))
        total = term if total is None else total + term
    return dx.asarray(0.0) if total is None else total


def log_density(
    model: Callable[..., Any],
    model_args: tuple[Any, ...] = (),
    model_kwargs: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[Any, OrderedDict[str, Message]]:
    """Return the log joint density of ``model`` at ``params`` and the trace of the run.

    Args:
        model: the model.
        model_args: its positional arguments.
        model_kwargs: its keyword arguments.
        params: values (constrained) of latent sample sites and of param
            sites, by name. Every latent site not in ``params`` must get a
            value otherwise: wrap the model in ``seed`` to draw it.

    Returns:
        ``(log_joint, trace)``: the sum over sample sites of their masked,
        scaled log densities, and the sites by name.
    """
    substituted = substitute(model, data=dict(params or {}))
    with backend_scope(params):
        model_trace = trace(substituted).get_trace(*model_args, **(model_kwargs or {}))
        return _log_joint(model_trace), model_trace


# --------------------------------------------------------------------------
# Unconstrained space
# --------------------------------------------------------------------------


class _unconstrain(Messenger):  # noqa: N801 (a handler, named like the others)
    """Set each latent site named in ``params`` to ``biject_to(support)(params[name])``.

    It records the log-determinant of each map's Jacobian, scaled like the
    site's log density, in ``log_det``.
    """

    def __init__(self, fn: Callable[..., Any], params: dict[str, Any]) -> None:
        self.params = params
        self.log_det: Any = None
        super().__init__(fn)

    def __enter__(self) -> Any:
        self.log_det = None
        self._seen: dict[str, Any] = {}
        return super().__enter__()

    def process_message(self, msg: Message) -> None:
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        name = msg["name"]
        if name not in self.params:
            if msg["infer"].get("is_auxiliary", False):
                return
            raise KeyError(
                f"no unconstrained value for the latent site {name!r}; the parameters hold "
                f"{sorted(self.params)}. The model reached a site that initialisation did not see: "
                "the set of latent sites must not change between runs."
            )
        u = self.params[name]
        transform = biject_to(msg["fn"].support)
        msg["value"] = transform(u)
        self._seen[name] = (transform, u)

    def postprocess_message(self, msg: Message) -> None:
        entry = self._seen.get(msg["name"]) if msg["type"] == "sample" else None
        if entry is None:
            return
        transform, u = entry
        value = msg["value"]
        log_det = transform.log_abs_det_jacobian(u, value)
        event_ndim = len(msg["fn"].event_shape)
        log_det = _sum_rightmost(log_det, len(log_det.shape) - len(value.shape) + event_ndim)
        if msg["scale"] is not None:
            log_det = msg["scale"] * log_det
        term = dx.sum(log_det)
        self.log_det = term if self.log_det is None else self.log_det + term


def potential_energy(
    model: Callable[..., Any],
    model_args: tuple[Any, ...],
    model_kwargs: dict[str, Any] | None,
    params: dict[str, Any],
) -> Any:
    """Return the negative log joint of ``model`` at unconstrained ``params``, Jacobian included.

    ``-(log p(biject_to(S)(u), data) + log|det J(u)|)`` summed over the
    latent sites, a scalar that is differentiable in ``params``.
    """
    handler = _unconstrain(model, params)
    with backend_scope(params):
        model_trace = trace(handler).get_trace(*model_args, **(model_kwargs or {}))
        log_joint = _log_joint(model_trace)
    if handler.log_det is not None:
        log_joint = log_joint + handler.log_det
    return -log_joint


def constrain_fn(
    model: Callable[..., Any],
    model_args: tuple[Any, ...],
    model_kwargs: dict[str, Any] | None,
    params: dict[str, Any],
    return_deterministic: bool = False,
) -> dict[str, Any]:
    """Map unconstrained ``params`` to the constrained values of the latent sites.

    With ``return_deterministic`` the values of deterministic sites are
    included too.
    """
    handler = _unconstrain(model, params)
    with backend_scope(params):
        model_trace = trace(handler).get_trace(*model_args, **(model_kwargs or {}))
    out = {name: model_trace[name]["value"] for name in params if name in model_trace}
    if return_deterministic:
        for name, site in model_trace.items():
            if site["type"] == "deterministic":
                out[name] = site["value"]
    return out


# --------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------


class ModelInfo(NamedTuple):
    """Result of ``initialize_model``.

    Attributes:
        params: a dict from latent site name to its initial unconstrained value.
        potential_fn: ``potential_fn(params)``, the negative log joint at
            unconstrained ``params`` (Jacobian included), a scalar;
            differentiable with ``dx.grad`` and compilable with ``dx.jit``.
        postprocess_fn: ``postprocess_fn(params)``, a dict of the
            constrained values of the latent sites and the values of the
            deterministic sites.
        model_trace: the trace of the run that found ``params``.
    """

    params: dict[str, Any]
    potential_fn: Callable[[dict[str, Any]], Any]
    postprocess_fn: Callable[[dict[str, Any]], dict[str, Any]]
    model_trace: OrderedDict[str, Message]


def _all_finite(x: Any) -> bool:
    return bool(dx.all(dx.isfinite(dx.stop_gradient(x))))


def initialize_model(
    key: Any,
    model: Callable[..., Any],
    model_args: tuple[Any, ...] = (),
    model_kwargs: dict[str, Any] | None = None,
    init_strategy: Callable[[Message], Any] = init_to_uniform,
    max_tries: int = 100,
) -> ModelInfo:
    """Find a starting point of ``model`` with finite potential and gradient; return it with the model's functions.

    Each try runs the model under ``seed`` with a fresh key split from
    ``key``, sets every latent site by ``init_strategy``, maps the values to
    unconstrained space and evaluates the potential and its gradient. The
    first try where both are finite wins. Call it eagerly (outside
    ``dx.jit``): it decides in Python whether a try succeeded. The
    functions it returns are jit-able.

    Args:
        key: a key from ``dx.random.key``; its backend is the backend of
            the initial parameters.
        model: the model.
        model_args: its positional arguments.
        model_kwargs: its keyword arguments.
        init_strategy: a strategy from ``ppl.infer`` (``init_to_uniform``,
            ``init_to_median``, ``init_to_sample``, ``init_to_value(values=...)``).
        max_tries: the number of tries before giving up.

    Returns:
        A :class:`ModelInfo`.

    Raises:
        RuntimeError: when no try within ``max_tries`` gave a finite
            potential and gradient; the message names the sites at fault.
        NotImplementedError: for a latent site with a discrete support.
    """
    model_kwargs = dict(model_kwargs or {})
    potential_fn = functools.partial(potential_energy, model, model_args, model_kwargs)
    postprocess_fn = functools.partial(constrain_fn, model, model_args, model_kwargs, return_deterministic=True)
    value_and_grad = dx.value_and_grad(potential_fn)

    bad_sites: dict[str, str] = {}
    # A failed try is expected and detected below, so NumPy's warnings about
    # log(0) or overflow at a bad starting point are silenced while trying.
    with backend_scope(key), np.errstate(all="ignore"):
        for _ in range(max_tries):
            key, model_trace, params, energy, grads = _try_initial_point(
                key, model, model_args, model_kwargs, init_strategy, value_and_grad
            )
            if _all_finite(energy) and all(_all_finite(g) for g in grads.values()):
                return ModelInfo(params, potential_fn, postprocess_fn, model_trace)
            bad_sites = _diagnose(model_trace, params, grads)

    details = "; ".join(f"{name}: {why}" for name, why in bad_sites.items()) or "no single site stands out"
    raise RuntimeError(
        f"initialize_model found no starting point with a finite potential and gradient in {max_tries} tries "
        f"(last try: {details}). Check the priors and data of those sites, or choose an init_strategy such "
        "as init_to_median or init_to_value(values=...) that starts inside the support. An invalid "
        "distribution parameter (a negative scale, say) also gives a log density that is not finite: "
        "call dist.enable_validation() before the run to have distributions check their parameters."
    )


def _try_initial_point(
    key: Any,
    model: Callable[..., Any],
    model_args: tuple[Any, ...],
    model_kwargs: dict[str, Any],
    init_strategy: Callable[[Message], Any],
    value_and_grad: Callable[[dict[str, Any]], tuple[Any, Any]],
) -> tuple[Any, OrderedDict[str, Message], dict[str, Any], Any, Any]:
    """Run one try of ``initialize_model``.

    Returns the key for the next try, the model's trace, the unconstrained
    values and the potential with its gradient there.
    """
    key, key_try = dx.random.split(key)
    seeded = seed(model, rng_seed=key_try)
    runnable = substitute(seeded, substitute_fn=init_strategy)
    model_trace = trace(runnable).get_trace(*model_args, **model_kwargs)
    params = _unconstrained_params(model_trace)
    energy, grads = value_and_grad(params)
    return key, model_trace, params, energy, grads


def find_initial_params_compiled(
    keys: list[Any],
    model: Callable[..., Any],
    model_args: tuple[Any, ...] = (),
    model_kwargs: dict[str, Any] | None = None,
    init_strategy: Callable[[Message], Any] = init_to_uniform,
    max_tries: int = 100,
) -> list[dict[str, Any] | None]:
    """Find a starting point per JAX key as ``initialize_model`` does, with each try compiled by ``dx.jit``.

    Eager JAX compiles every new operation on first use, so an eager search
    through the model, its gradient and the init strategy costs seconds.
    Here one try is one compiled program, which every key and every try
    reuses. The keys and the values found are those of ``initialize_model``
    called with the same key. The model must be traceable by ``dx.jit``:
    tracing raises otherwise, and the caller can fall back to
    ``initialize_model``.

    Returns:
        One dict of unconstrained values (JAX arrays) per key. A key whose
        ``max_tries`` tries found no finite potential and gradient gets
        ``None``, and ``initialize_model`` with that key names the sites at
        fault.
    """
    model_kwargs = dict(model_kwargs or {})

    def attempt(key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
        value_and_grad = dx.value_and_grad(functools.partial(potential_energy, model, args, kwargs))
        with backend_scope(key):
            key, _, params, energy, grads = _try_initial_point(key, model, args, kwargs, init_strategy, value_and_grad)
            finite = dx.all(dx.isfinite(energy))
            for grad in grads.values():
                finite = finite & dx.all(dx.isfinite(grad))
        return key, params, finite

    # The model's arguments are traced, not baked into the program as constants. A try usually
    # runs once per chain, so the program's compile time is what counts. Without LLVM's
    # optimisation passes it compiled in about half the time: 0.55 s against 1.1 s of CPU
    # for a logistic regression on 569 x 30 data, on a 2-core machine.
    compiled = dx.jit(attempt, compiler_options={"xla_backend_optimization_level": 0})
    found: list[dict[str, Any] | None] = []
    for key in keys:
        params: dict[str, Any] | None = None
        for _ in range(max_tries):
            key, candidate, finite = compiled(key, model_args, model_kwargs)
            if bool(finite):
                params = candidate
                break
        found.append(params)
    return found


def _unconstrained_params(model_trace: dict[str, Message]) -> dict[str, Any]:
    params = {}
    for name, site in model_trace.items():
        if not is_latent(site):
            continue
        support = site["fn"].support
        if getattr(support, "is_discrete", False):
            raise NotImplementedError(
                f"the latent site {name!r} has the discrete support {support!r}; gradient-based inference "
                "needs continuous latent sites. Marginalise the discrete variable out of the model by hand."
            )
        params[name] = biject_to(support).inv(site["value"])
    return params


def _diagnose(model_trace: dict[str, Message], params: dict[str, Any], grads: dict[str, Any]) -> dict[str, str]:
    """Name the sites whose log density or gradient is not finite at the failed starting point."""
    bad: dict[str, str] = {}
    for name, site in model_trace.items():
        if site["type"] != "sample":
            continue
        if not _all_finite(site_log_prob(site)):
            bad[name] = "log density not finite"
    for name, grad in grads.items():
        if name not in bad and not _all_finite(grad):
            bad[name] = "gradient not finite"
    for name, u in params.items():
        if not _all_finite(u):
            bad[name] = "initial value outside the support"
    return bad
