"""The JAX bridge: a pure JAX function as a difflux primitive.

JAX transformations can wrap difflux code, but difflux cannot look inside
JAX code. ``from_jax`` closes that gap for pure functions of JAX arrays: the
function becomes a primitive whose implementation is the function itself,
whose pullback calls ``jax.vjp`` and whose tangent calls ``jax.jvp``.

The pullback and the tangent are themselves bridged functions: the VJP and
JVP of the original, as JAX functions. Differentiating them again goes
through ``jax.vjp`` or ``jax.jvp`` once more, so JAX supplies derivatives of
any order and every mix of forward and reverse mode. Inside ``jax.jit`` the
whole chain is traced into one XLA program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._api import _is_float_leaf
from ._backend import backend_of_value, jax_module
from ._core import Primitive


class _CallStructure:
    """Per-call state shared by a bridged call's implementation and rules: the
    JAX structure of the output, and the cotangents computed for the last
    output cotangent (each argument's pullback rule reads them)."""

    __slots__ = ("treedef", "out_dtypes", "key", "cotangents")

    def __init__(self) -> None:
        self.treedef: Any = None
        self.out_dtypes: tuple[Any, ...] = ()
        self.key: Any = None
        self.cotangents: list[Any] = []


def _is_float_dtype(dtype: Any) -> bool:
    return np.issubdtype(np.dtype(dtype), np.inexact)


class _Bridge:
    """A JAX function bridged into difflux, with its VJP and JVP bridges
    created on demand (one per set of differentiated arguments)."""

    def __init__(self, jax_fn: Callable[..., Any], name: str) -> None:
        self.jax_fn = jax_fn
        self.name = name
        self._prims: dict[int, Primitive] = {}
        self._vjp_bridges: dict[tuple[Any, ...], Callable[..., Any]] = {}
        self._jvp_bridges: dict[tuple[Any, ...], Callable[..., Any]] = {}

    def __call__(self, *args: Any) -> Any:
        jax = jax_module()
        prim = self._prims.get(len(args))
        if prim is None:
            prim = Primitive(
                self.name,
                self._impl,
                pullbacks=[self._pullback_rule(i) for i in range(len(args))],
                jvp=self._jvp_rule,
                multiple_results=True,
            )
            self._prims[len(args)] = prim
        structure = _CallStructure()
        leaves = prim(*args, structure=structure)
        return jax.tree_util.tree_unflatten(structure.treedef, list(leaves))

    # -- implementation ----------------------------------------------------------

    def _impl(self, *args: Any, structure: _CallStructure) -> tuple[Any, ...]:
        for i, arg in enumerate(args):
            if backend_of_value(arg) == "numpy":
                raise TypeError(
                    f"dx.from_jax({self.name}) received a NumPy array as argument {i} (shape {np.shape(arg)}). "
                    "The JAX bridge runs JAX code, so it works on the JAX backend only; convert the inputs "
                    "with dx.asarray(x, backend='jax'), or write the function in difflux operations to run "
                    "it on NumPy."
                )
        jax = jax_module()
        leaves, treedef = jax.tree_util.tree_flatten(self.jax_fn(*args))
        structure.treedef = treedef
        structure.out_dtypes = tuple(leaf.dtype for leaf in leaves)
        return tuple(leaves)

    # -- reverse mode --------------------------------------------------------------

    def _pullback_rule(self, index: int) -> Callable[..., Any]:
        def pullback(cotangents: tuple[Any, ...], outs: Any, *args: Any, structure: _CallStructure) -> Any:
            # The backward pass calls one rule per argument with the same
            # cotangent tuple; one jax.vjp call serves them all.
            if structure.key is not cotangents:
                structure.cotangents = self._cotangents(cotangents, args, structure)
                structure.key = cotangents
            return structure.cotangents[index]

        return pullback

    def _cotangents(self, cotangents: tuple[Any, ...], args: tuple[Any, ...], structure: _CallStructure) -> list[Any]:
        diff = tuple(i for i, arg in enumerate(args) if _is_float_leaf(arg))
        key = (len(args), diff, structure.treedef, structure.out_dtypes)
        vjp_bridge = self._vjp_bridges.get(key)
        if vjp_bridge is None:
            vjp_bridge = from_jax(
                _vjp_function(self.jax_fn, len(args), diff, structure.treedef),
                name=f"vjp({self.name})",
            )
            self._vjp_bridges[key] = vjp_bridge
        float_outs = [i for i, dtype in enumerate(structure.out_dtypes) if _is_float_dtype(dtype)]
        pulled = vjp_bridge(*args, *[cotangents[i] for i in float_outs])
        result: list[Any] = [None] * len(args)
        for i, cotangent in zip(diff, pulled):
            result[i] = cotangent
        return result

    # -- forward mode ----------------------------------------------------------------

    def _jvp_rule(self, tangents: Sequence[Any], outs: Any, *args: Any, structure: _CallStructure) -> tuple[Any, ...]:
        diff = tuple(i for i, t in enumerate(tangents) if t is not None)
        key = (len(args), diff)
        jvp_bridge = self._jvp_bridges.get(key)
        if jvp_bridge is None:
            jvp_bridge = from_jax(_jvp_function(self.jax_fn, len(args), diff), name=f"jvp({self.name})")
            self._jvp_bridges[key] = jvp_bridge
        pushed = list(jvp_bridge(*args, *[tangents[i] for i in diff]))
        # Integer outputs have no tangent; the JVP function leaves them out.
        return tuple(pushed.pop(0) if _is_float_dtype(dtype) else None for dtype in structure.out_dtypes)


def _with_args(args: Sequence[Any], positions: Sequence[int], values: Sequence[Any]) -> list[Any]:
    full = list(args)
    for i, value in zip(positions, values):
        full[i] = value
    return full


def _vjp_function(jax_fn: Callable[..., Any], num_args: int, diff: tuple[int, ...], treedef: Any) -> Callable[..., Any]:
    """Build the JAX function ``(*args, *float_output_cotangents) -> cotangents of args[diff]``."""

    def vjp_fn(*args_and_cotangents: Any) -> tuple[Any, ...]:
        jax = jax_module()
        import jax.numpy as jnp

        args = args_and_cotangents[:num_args]
        given = list(args_and_cotangents[num_args:])
        out, pull = jax.vjp(lambda *d: jax_fn(*_with_args(args, diff, d)), *[args[i] for i in diff])
        # JAX wants each cotangent in its output's dtype, and float0 zeros for
        # integer outputs, which difflux does not differentiate.
        leaves = []
        for leaf in jax.tree_util.tree_leaves(out):
            if _is_float_dtype(leaf.dtype):
                leaves.append(jnp.asarray(given.pop(0), dtype=leaf.dtype))
            else:
                leaves.append(np.zeros(leaf.shape, dtype=jax.dtypes.float0))
        return tuple(pull(jax.tree_util.tree_unflatten(treedef, leaves)))

    return vjp_fn


def _jvp_function(jax_fn: Callable[..., Any], num_args: int, diff: tuple[int, ...]) -> Callable[..., Any]:
    """Build the JAX function ``(*args, *tangents of args[diff]) -> tangents of the float outputs``."""

    def jvp_fn(*args_and_tangents: Any) -> tuple[Any, ...]:
        jax = jax_module()
        import jax.numpy as jnp

        args = args_and_tangents[:num_args]
        primals = [args[i] for i in diff]
        tangents = [jnp.asarray(t, dtype=jnp.result_type(p)) for t, p in zip(args_and_tangents[num_args:], primals)]
        _, tangent_out = jax.jvp(lambda *d: jax_fn(*_with_args(args, diff, d)), tuple(primals), tuple(tangents))
        return tuple(t for t in jax.tree_util.tree_leaves(tangent_out) if _is_float_dtype(t.dtype))

    return jvp_fn


def from_jax(jax_fn: Callable[..., Any], *, name: str | None = None) -> Callable[..., Any]:
    """Turn a pure JAX function of arrays into a differentiable difflux function.

    The result calls ``jax_fn`` on the values and differentiates it with
    ``jax.vjp`` in reverse mode and ``jax.jvp`` in forward mode, to any order.
    It runs eagerly on JAX arrays and inside ``jax.jit``/``dx.jit``. The
    bridge exists because difflux cannot differentiate JAX code itself: use
    it for a function already written in JAX (a model from another library,
    a ``jax.lax`` loop).

    Args:
        jax_fn: a pure function of positional JAX arrays. Its output may be
            an array or any JAX pytree of arrays. Float arguments are
            differentiated; integer arguments and outputs are not.
        name: the name in error messages; the function's name by default.

    Raises:
        TypeError: when called with NumPy arrays; the bridge is JAX-only.

    Examples:
        >>> import jax.numpy as jnp
        >>> import difflux.core as dx
        >>> log_sum_exp = dx.from_jax(lambda x: jnp.log(jnp.sum(jnp.exp(x))))
        >>> dx.grad(log_sum_exp)(jnp.zeros(2)).tolist()
        [0.5, 0.5]
    """
    jax_module()
    bridge = _Bridge(jax_fn, name or getattr(jax_fn, "__name__", "jax_fn"))

    @functools.wraps(jax_fn)
    def bridged(*args: Any) -> Any:
        return bridge(*args)

    return bridged


__all__ = ["from_jax"]
