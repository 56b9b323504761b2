"""Priors over the parameters of a ``dx.Module``: Bayesian neural networks in one call.

``random_module(name, net, prior)`` makes a sample site for each
floating-point parameter of ``net`` and returns a copy of the module with
the sampled values in place, so

    net = ppl.random_module("net", nn.Linear(3, 1), dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(net(x), 0.1), obs=y)

is a Bayesian linear regression. ``module(name, net)`` makes ``param``
sites instead, for networks fitted by SVI or MAP inside a model. Site names
are ``{name}/{path}``, with the parameter's path in the module written as
Python reaches it, dots between parts (``net/layers.0.weight``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import difflux.core as dx

from ._primitives import param, sample

__all__ = ["module", "random_module"]


def _child_names(treedef: dx.TreeDef) -> list[str]:
    kind, aux, count = treedef.kind, treedef.aux, len(treedef.children)
    if kind is dict:
        return [str(key) for key in cast(tuple, aux)]
    if isinstance(kind, type) and issubclass(kind, dx.Module):
        names = getattr(aux, "children", None)
        if names is not None and len(names) == count:
            return list(names)
    fields = getattr(kind, "_fields", None)
    if fields is not None and len(fields) == count:
        return list(fields)
    return [str(index) for index in range(count)]


def _leaf_paths(treedef: dx.TreeDef, prefix: str = "") -> list[str]:
    if treedef.kind is None:
        return [prefix]
    paths: list[str] = []
    for child_name, child in zip(_child_names(treedef), treedef.children):
        paths.extend(_leaf_paths(child, f"{prefix}.{child_name}" if prefix else child_name))
    return paths


def _float_parameters(net: Any) -> tuple[list[Any], dx.TreeDef, list[str]]:
    leaves, treedef = dx.tree_flatten(net)
    return leaves, treedef, _leaf_paths(treedef)


def _is_float(leaf: Any) -> bool:
    return dx.is_array(leaf) and bool(dx.isdtype(leaf.dtype, "real floating"))


def module(name: str, net: Any) -> Any:
    """Make each floating-point parameter of ``net`` a ``param`` site; return the module with their values.

    Under ``SVI`` the parameters are fitted along with the guide's.

    Args:
        name: the prefix of the site names.
        net: a ``dx.Module`` (or any structure of arrays).
    """
    leaves, treedef, paths = _float_parameters(net)
    new_leaves = [param(f"{name}/{path}", leaf) if _is_float(leaf) else leaf for leaf, path in zip(leaves, paths)]
    return dx.tree_unflatten(treedef, new_leaves)


def _prior_for(prior: Any, path: str, shape: tuple[int, ...], name: str) -> Any:
    if isinstance(prior, Mapping):
        return prior.get(path)
    if hasattr(prior, "log_prob") and hasattr(prior, "sample"):
        return prior
    if callable(prior):
        return prior(path, shape)
    raise TypeError(
        f"random_module({name!r}): prior must be a distribution, a dict from parameter path to distribution, "
        f"or a callable (path, shape) -> distribution; got {type(prior).__name__}"
    )


def _fit_to_shape(d: Any, shape: tuple[int, ...], site: str) -> Any:
    """Return ``d`` expanded and reinterpreted so that one draw has exactly ``shape``."""
    event_shape = tuple(d.event_shape)
    if len(event_shape) > len(shape) or (event_shape and shape[len(shape) - len(event_shape) :] != event_shape):
        raise ValueError(
            f"the prior of {site!r} has event shape {event_shape}, which does not fit the parameter's shape {shape}"
        )
    batch_shape = shape[: len(shape) - len(event_shape)]
    if tuple(d.batch_shape) != batch_shape:
        try:
            d = d.expand(batch_shape)
        except ValueError as error:
            raise ValueError(
                f"the prior of {site!r} has batch shape {tuple(d.batch_shape)}, which does not broadcast to the "
                f"parameter's shape {shape}: {error}"
            ) from None
    return d.to_event(len(batch_shape)) if batch_shape else d


def random_module(name: str, net: Any, prior: Any) -> Any:
    """Put a prior over the floating-point parameters of ``net``; return the module with sampled values.

    Each parameter at path ``p`` becomes the sample site ``{name}/{p}``
    whose value has the parameter's shape. Its log density is the prior's,
    summed over the parameter's elements, so the model's log density
    gains the sum of the priors of all parameters.

    Args:
        name: the prefix of the site names.
        net: a ``dx.Module`` (or any structure of arrays); its current
            values serve only as templates for shapes.
        prior: one distribution for every parameter, broadcast to each
            shape (such as ``dist.Normal(0.0, 1.0)``). Or a dict from
            parameter path (``"layers.0.weight"``) to distribution, where
            parameters without an entry become ``param`` sites. Or a
            callable ``prior(path, shape)`` returning a distribution.

    Returns:
        A module of the same structure holding the sampled values.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ppl
        >>> class Line(dx.Module):
        ...     slope: object
        ...     intercept: object
        >>> line = Line(dx.zeros(2), dx.zeros(()))
        >>> def model():
        ...     return ppl.random_module("line", line, ppl.dist.Normal(0.0, 1.0))
        >>> tr = ppl.handlers.trace(ppl.handlers.seed(model, 0)).get_trace()
        >>> sorted(tr)
        ['line/intercept', 'line/slope']
    """
    leaves, treedef, paths = _float_parameters(net)
    if isinstance(prior, Mapping):
        unknown = sorted(set(prior) - set(paths))
        if unknown:
            raise KeyError(
                f"random_module({name!r}): the prior names {unknown}, which are not parameters; the parameters are {paths}"
            )
    new_leaves = []
    for leaf, path in zip(leaves, paths):
        if not _is_float(leaf):
            new_leaves.append(leaf)
            continue
        site = f"{name}/{path}"
        shape = tuple(leaf.shape)
        d = _prior_for(prior, path, shape, name)
        if d is None:
            new_leaves.append(param(site, leaf))
            continue
        new_leaves.append(sample(site, _fit_to_shape(d, shape, site)))
    return dx.tree_unflatten(treedef, new_leaves)
