"""Effect handlers: ``trace``, ``seed``, ``condition``, ``substitute``, ``block``, ``scale``, ``mask``, ``replay``.

Each handler wraps a model (``handler(model, ...)`` is a new callable) or is
used as a context manager (``with handler(...):``), and changes what the
model's primitives do. Handlers compose by nesting: the handler closest to
the model receives each site first. The semantics are NumPyro's, so

    trace(substitute(seed(model, key), data=values)).get_trace(*args)

runs ``model`` with random draws from ``key``, the sites named in ``values``
fixed to them, and returns every site in order.

They run eagerly on NumPy and JAX and inside ``dx.jit``: they only move
Python dicts and call distributions, and branch on site names and types,
never on array values.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import difflux.core as dx

from ._messenger import Message, Messenger

__all__ = ["block", "condition", "mask", "replay", "scale", "seed", "substitute", "trace"]


class trace(Messenger):  # noqa: N801 (NumPyro's handler names are lower case)
    """Record every site of a run: ``trace(model).get_trace(*args)`` returns them by name.

    Each entry is the site's message, a dict with the keys ``type``,
    ``name``, ``fn`` (the distribution, after plates expanded it), ``value``,
    ``scale``, ``mask``, ``is_observed``, ``cond_indep_stack`` and
    ``infer``, in the order the model reached the sites. Use
    ``ppl.infer.util.site_log_prob(site)`` for a sample site's log density.
    """

    def __enter__(self) -> OrderedDict[str, Message]:
        super().__enter__()
        self.trace: OrderedDict[str, Message] = OrderedDict()
        return self.trace

    def postprocess_message(self, msg: Message) -> None:
        if msg["type"] == "prng_key":
            return
        name = msg["name"]
        if name in self.trace:
            raise ValueError(
                f"the site name {name!r} appears twice in one run of the model (as a {self.trace[name]['type']} "
                f"site and a {msg['type']} site). Site names must be unique: add an index to names made in a loop."
            )
        entry = dict(msg)
        entry["cond_indep_stack"] = list(msg["cond_indep_stack"])
        entry["kwargs"] = dict(msg["kwargs"])
        self.trace[name] = entry

    def get_trace(self, *args: Any, **kwargs: Any) -> OrderedDict[str, Message]:
        """Run the wrapped function with ``args`` and return its sites by name."""
        self(*args, **kwargs)
        return self.trace


class seed(Messenger):  # noqa: N801
    """Give every random draw a key split from ``rng_seed``.

    Each sample site without a value, each subsampling plate, each
    ``prng_key()`` call and each ``param`` with a callable initial value
    gets a fresh key: the handler splits its key into a new key for itself
    and one for the site. Running a seeded model twice therefore gives
    different draws; seed it again with the same key to reproduce a run.

    Args:
        fn: the model.
        rng_seed: a key from ``dx.random.key`` (of the backend the draws
            should use), or an int, made a key of the default backend.
        hide_types: site types that get no key.
    """

    def __init__(self, fn: Callable[..., Any] | None = None, rng_seed: Any = None, hide_types: Iterable[str] = ()):
        if rng_seed is None:
            raise ValueError("seed needs rng_seed: a key from dx.random.key(seed) or an int seed")
        if isinstance(rng_seed, int | np.integer) and not isinstance(rng_seed, bool):
            rng_seed = dx.random.key(operator.index(rng_seed))
        self.rng_key = rng_seed
        self.hide_types = frozenset(hide_types)
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        kind = msg["type"]
        if kind in self.hide_types or kind not in ("sample", "param", "plate", "prng_key"):
            return
        if kind == "sample" and (msg["is_observed"] or msg["value"] is not None):
            return
        if kind == "param" and not callable(msg["args"][0]):
            return
        if kind == "plate" and msg["args"][1] >= msg["args"][0]:
            return
        if msg["kwargs"].get("rng_key") is not None:
            return
        keys = dx.random.split(self.rng_key)
        self.rng_key = keys[0]
        msg["kwargs"]["rng_key"] = keys[1]


def _lookup(data: Any, function: Callable[[Message], Any] | None, msg: Message) -> Any:
    if data is not None:
        return data.get(msg["name"])
    assert function is not None
    return function(msg)


def _check_data(handler: str, data: Any, function: Any) -> None:
    if (data is None) == (function is None):
        raise ValueError(f"{handler} needs exactly one of data (a dict of site values) and {handler}_fn")


class condition(Messenger):  # noqa: N801
    """Observe sample sites: each site named in ``data`` takes that value and counts as observed.

    Args:
        fn: the model.
        data: a dict from site name to value.
        condition_fn: alternatively, a function of the site message that
            returns the value, or ``None`` to leave the site alone.
    """

    def __init__(
        self,
        fn: Callable[..., Any] | None = None,
        data: dict[str, Any] | None = None,
        condition_fn: Callable[[Message], Any] | None = None,
    ) -> None:
        _check_data("condition", data, condition_fn)
        self.data = data
        self.condition_fn = condition_fn
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        value = _lookup(self.data, self.condition_fn, msg)
        if value is not None:
            msg["value"] = value
            msg["is_observed"] = True


class substitute(Messenger):  # noqa: N801
    """Fix site values: each sample, param or plate site named in ``data`` takes that value.

    Unlike ``condition``, a substituted sample site stays latent: it still
    counts as a random variable of the model, at the given value. Inference
    uses this to evaluate a model at given parameters. A plate's value is
    its subsample indices. Observed sites are left alone.

    Args:
        fn: the model.
        data: a dict from site name to value.
        substitute_fn: alternatively, a function of the site message that
            returns the value, or ``None`` to leave the site alone.
    """

    def __init__(
        self,
        fn: Callable[..., Any] | None = None,
        data: dict[str, Any] | None = None,
        substitute_fn: Callable[[Message], Any] | None = None,
    ) -> None:
        _check_data("substitute", data, substitute_fn)
        self.data = data
        self.substitute_fn = substitute_fn
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        if msg["type"] not in ("sample", "param", "plate") or msg["is_observed"]:
            return
        value = _lookup(self.data, self.substitute_fn, msg)
        if value is not None:
            msg["value"] = value


class block(Messenger):  # noqa: N801
    """Hide sites from the handlers outside this one.

    With no arguments every site is hidden. Otherwise a site is hidden when
    ``hide_fn(msg)`` is true, its name is in ``hide``, or, given
    ``expose``/``expose_types``, it is neither named in ``expose`` nor of a
    type in ``expose_types``.

    Args:
        fn: the model.
        hide_fn: a function of the site message; true hides the site.
        hide: site names to hide.
        expose_types: site types to keep visible; others are hidden.
        expose: site names to keep visible; others are hidden.
    """

    def __init__(
        self,
        fn: Callable[..., Any] | None = None,
        hide_fn: Callable[[Message], bool] | None = None,
        hide: Iterable[str] | None = None,
        expose_types: Iterable[str] | None = None,
        expose: Iterable[str] | None = None,
    ) -> None:
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif hide is not None:
            hidden = frozenset(hide)
            self.hide_fn = lambda msg: msg["name"] in hidden
        elif expose_types is not None or expose is not None:
            kinds, names = frozenset(expose_types or ()), frozenset(expose or ())
            self.hide_fn = lambda msg: msg["type"] not in kinds and msg["name"] not in names
        else:
            self.hide_fn = lambda msg: True
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        if self.hide_fn(msg):
            msg["stop"] = True


class scale(Messenger):  # noqa: N801
    """Multiply the log density of every sample site by ``scale`` (a positive number or array)."""

    def __init__(self, fn: Callable[..., Any] | None = None, scale: Any = 1.0) -> None:
        if isinstance(scale, int | float) and scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = scale
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        if msg["type"] != "sample":
            return
        msg["scale"] = self.scale if msg["scale"] is None else self.scale * msg["scale"]


class mask(Messenger):  # noqa: N801
    """Drop log-density terms: where ``mask`` is false a sample site's log density counts 0.

    ``mask`` is a bool or a boolean array that broadcasts to the site's
    batch shape. The sites still take values, so a masked-out observation
    (missing data, say) may hold any finite placeholder.
    """

    def __init__(self, fn: Callable[..., Any] | None = None, mask: Any = True) -> None:
        dtype = getattr(mask, "dtype", None)
        if not isinstance(mask, bool | np.bool_) and (dtype is None or not dx.isdtype(dtype, "bool")):
            raise TypeError(
                f"mask needs a bool or a boolean array, got {type(mask).__name__}"
                + (f" of dtype {dtype}" if dtype is not None else "")
                + "; compare with a threshold (x > 0) to make one"
            )
        self.mask = mask
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        if msg["type"] != "sample":
            return
        msg["mask"] = self.mask if msg["mask"] is None else dx.logical_and(msg["mask"], self.mask)


class replay(Messenger):  # noqa: N801
    """Reuse the values of latent sample sites from ``trace`` (often a guide's trace).

    Every unobserved sample site whose name is in ``trace`` takes the value
    recorded there; plates take the recorded subsample indices.

    Raises:
        RuntimeError: when the recorded site is observed or not a sample
            site, since its value is then no draw to replay.
    """

    def __init__(self, fn: Callable[..., Any] | None = None, trace: dict[str, Message] | None = None) -> None:
        if trace is None:
            raise ValueError("replay needs trace: the dict of sites that trace(...).get_trace(...) returns")
        self.trace = trace
        super().__init__(fn)

    def process_message(self, msg: Message) -> None:
        if msg["type"] not in ("sample", "plate") or msg["name"] not in self.trace:
            return
        if msg["is_observed"]:
            return
        recorded = self.trace[msg["name"]]
        if recorded["type"] != msg["type"] or recorded["is_observed"]:
            raise RuntimeError(
                f"site {msg['name']!r} is a latent {msg['type']} site here but an "
                f"{'observed ' if recorded['is_observed'] else ''}{recorded['type']} site in the replayed "
                "trace; rename one of them"
            )
        msg["value"] = recorded["value"]
        msg["infer"] = dict(recorded["infer"])
