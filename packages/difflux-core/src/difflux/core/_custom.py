"""Custom derivative rules for user functions: ``custom_vjp`` and ``custom_jvp``.

A decorated function runs its own body when nothing differentiates it.
Under a transformation it does what ``bind`` does for a primitive. It finds
the innermost trace among its arguments and runs on the arguments'
lower-level values, so that this trace records none of its body. Then it
records one node whose derivative comes from the user's rule.

* Reverse mode calls the ``bwd`` rule on the residuals of ``fwd``. With only a
  ``jvp`` rule, the pullback is the transpose of the rule's tangent map: the
  map ``tangents -> jvp(primals, tangents)[1]`` is linear, so pulling it back
  at zero tangents with difflux's own reverse mode gives its transpose.
* Forward mode calls the ``jvp`` rule. With only ``fwd``/``bwd``, the tangent
  is the transpose of the linear map ``g -> bwd(residuals, g)``, obtained the
  same way.

The lower-level primal output comes from calling the decorated function again
on the lowered arguments, so an enclosing transformation meets the decorated
function too and applies the rule at every nesting level. ``grad(grad(f))``
therefore differentiates ``bwd`` itself, which must be written in difflux
operations.

Checkpointing (``_checkpoint.py``) and implicit differentiation
(``_implicit.py``) reuse the dispatch and node-recording helpers below.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from . import _core
from ._api import _is_float_leaf, _record
from ._core import (
    _SELECT,
    JVPTrace,
    JVPTracer,
    Primitive,
    ReverseTrace,
    ReverseTracer,
    Trace,
    Tracer,
    _MultiNode,
)
from ._dispatch import shape_of
from ._ops_creation import zeros_like
from ._tree import TreeDef, tree_flatten, tree_leaves, tree_unflatten


class CustomRuleError(TypeError):
    """Raised when a custom rule is missing or returns values of the wrong form."""


# --------------------------------------------------------------------------
# Helpers shared with checkpointing and implicit differentiation
# --------------------------------------------------------------------------


def _is_none(x: Any) -> bool:
    return x is None


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Flatten with ``None`` kept as a leaf, so a ``None`` cotangent can stand
    for the zero cotangent of an array."""
    return tree_flatten(tree, is_leaf=_is_none)


def apply_bind_hook(leaves: list[Any]) -> list[Any]:
    """Rewrite ``leaves`` with the control-flow hook, as ``bind`` does for a primitive's arguments.

    Inside a ``dx.scan``/``dx.cond`` body the hook swaps the traced values the
    body closes over for the body's operands. A custom function must see the
    same values as the primitives in its body, or it would record on the
    tape of a value that closure conversion has replaced.
    """
    hook = _core.bind_hook
    return leaves if hook is None else list(hook(tuple(leaves)))


def top_trace(leaves: Sequence[Any]) -> Trace | None:
    """Return the innermost (highest-level) trace among ``leaves``, or ``None``."""
    top = None
    level = 0
    for leaf in leaves:
        if isinstance(leaf, Tracer) and leaf._trace.level > level:
            top = leaf._trace
            level = top.level
    return top


def lower(leaves: Sequence[Any], trace: Trace) -> list[Any]:
    """Replace the tracers of ``trace`` by their values (of lower levels)."""
    return [
        leaf.value if isinstance(leaf, ReverseTracer | JVPTracer) and leaf._trace is trace else leaf for leaf in leaves
    ]


def has_tracer(leaves: Sequence[Any]) -> bool:
    return any(isinstance(leaf, Tracer) for leaf in leaves)


def has_derivative_tracer(leaves: Sequence[Any]) -> bool:
    """Return whether a tracer of a differentiating transformation is among ``leaves``, under any batching ones.

    A rule's ``fwd`` output serves as the primal output unless an enclosing
    transformation differentiates it. Batching (``dx.vmap`` on NumPy, or
    inside a difflux transformation) does not, so it needs no second call of
    the function.
    """
    for leaf in leaves:
        value = leaf
        while isinstance(value, Tracer):
            if not value._trace.batching:
                return True
            value = value.value  # type: ignore[attr-defined] (batching tracers keep their batch in .value)
    return False


def leaked_tracer(tree: Any, trace: Trace) -> bool:
    """Return whether ``tree`` contains a tracer of ``trace`` or of a trace nested in it.

    A function run on values lowered below ``trace`` produces one only when
    it closes over a value that ``trace`` (or a transformation inside it)
    differentiates.
    """
    return any(isinstance(leaf, Tracer) and leaf._trace.level >= trace.level for leaf in tree_leaves(tree))


class Outputs:
    """A function's output flattened, with the positions of its float leaves.

    Only float array leaves take part in differentiation. The others
    (integers, strings, ``None``, Python floats, which are constants) pass
    through.
    """

    __slots__ = ("leaves", "treedef", "float_positions")

    def __init__(self, out: Any) -> None:
        leaves, self.treedef = flatten(out)
        self.float_positions = [i for i, leaf in enumerate(leaves) if _is_float_leaf(leaf) and type(leaf) is not float]
        self.leaves = leaves

    def tree_from_floats(self, float_values: Sequence[Any]) -> Any:
        """Build the output's structure with ``float_values`` at the float
        leaves and ``None`` elsewhere."""
        leaves: list[Any] = [None] * len(self.leaves)
        for i, value in zip(self.float_positions, float_values):
            leaves[i] = value
        return tree_unflatten(self.treedef, leaves)

    def floats_of(self, tree: Any, what: str) -> list[Any]:
        """Return the leaves of ``tree`` at the output's float leaves.

        ``tree`` must have the output's structure. A ``None`` leaf stands for
        zero and comes back as zeros.
        """
        leaves, treedef = flatten(tree)
        if treedef != self.treedef:
            raise CustomRuleError(
                f"{what} has structure {treedef!r}, but the function's output has structure "
                f"{self.treedef!r}. Return the same structure (None stands for zero)."
            )
        result = []
        for i in self.float_positions:
            value, out = leaves[i], self.leaves[i]
            if value is None:
                value = zeros_like(out)
            elif shape_of(value) != shape_of(out):
                raise CustomRuleError(
                    f"{what} has a leaf of shape {shape_of(value)} where the output has shape {shape_of(out)}."
                )
            result.append(value)
        return result


class _JointPullback:
    """A node's pullback rules, which compute every argument's cotangent at once.

    The backward pass calls one pullback rule per parent, each with the same
    tuple of output cotangents. The first call computes all cotangents, and
    the other calls read them.
    """

    __slots__ = ("compute", "key", "cotangents")

    def __init__(self, compute: Callable[[tuple[Any, ...]], list[Any]]) -> None:
        self.compute = compute
        self.key: Any = None
        self.cotangents: list[Any] = []

    def rule(self, index: int) -> Callable[..., Any]:
        def pullback(output_cotangents: tuple[Any, ...], outs: Any) -> Any:
            if self.key is not output_cotangents:
                self.cotangents = self.compute(output_cotangents)
                self.key = output_cotangents
            return self.cotangents[index]

        return pullback


def _recorded_only(*args: Any, **params: Any) -> Any:
    raise AssertionError("a node recorded by a custom rule is never evaluated through bind")


def record_node(
    trace: ReverseTrace,
    name: str,
    outputs: Outputs,
    parents: Sequence[ReverseTracer | None],
    compute: Callable[[tuple[Any, ...]], list[Any]],
) -> Any:
    """Record one tape node producing ``outputs`` from ``parents``.

    ``compute(g)`` receives one cotangent per float output leaf (zeros
    filled in) and returns one cotangent per parent position, ``None`` for
    zero. Returns the output structure with its float leaves traced.
    """
    if not outputs.float_positions or all(parent is None for parent in parents):
        return tree_unflatten(outputs.treedef, outputs.leaves)
    joint = _JointPullback(compute)
    rules = [None if parent is None else joint.rule(i) for i, parent in enumerate(parents)]
    prim = Primitive(name, _recorded_only, pullbacks=rules, multiple_results=True)
    float_outs = [outputs.leaves[i] for i in outputs.float_positions]
    node = _MultiNode(prim, (), {}, float_outs, list(parents))
    leaves = list(outputs.leaves)
    for k, i in enumerate(outputs.float_positions):
        leaves[i] = ReverseTracer(trace, leaves[i], _SELECT, (node, k), None, (node,))
    return tree_unflatten(outputs.treedef, leaves)


def dual_outputs(trace: JVPTrace, outputs: Outputs, float_tangents: Sequence[Any]) -> Any:
    """Wrap the float leaves of ``outputs`` with their tangents (``None``: zero)."""
    leaves = list(outputs.leaves)
    for i, tangent in zip(outputs.float_positions, float_tangents):
        if tangent is not None:
            leaves[i] = JVPTracer(trace, leaves[i], tangent)
    return tree_unflatten(outputs.treedef, leaves)


def pull_back_at(fun: Callable[..., tuple[Any, ...]], points: Sequence[Any], cotangents: Sequence[Any]) -> list[Any]:
    """Record ``fun(*points)`` and pull ``cotangents`` back to the points.

    ``fun`` returns one array per cotangent. For a linear ``fun`` this applies
    its transpose. The result is written in difflux operations, so enclosing
    transformations differentiate it.
    """
    recorded, _ = _record(fun, tuple(points), tuple(range(len(points))))
    return recorded.pull_leaves(list(cotangents))


# --------------------------------------------------------------------------
# One call's arguments
# --------------------------------------------------------------------------


class _Call:
    """A call's positional arguments, split into differentiable leaves and the rest."""

    __slots__ = ("args", "diff_positions", "nondiff", "leaves", "treedef")

    def __init__(self, args: tuple[Any, ...], nondiff_argnums: tuple[int, ...]) -> None:
        self.args = args
        self.diff_positions = tuple(i for i in range(len(args)) if i not in nondiff_argnums)
        self.nondiff = tuple(args[i] for i in nondiff_argnums if i < len(args))
        leaves, self.treedef = flatten(tuple(args[i] for i in self.diff_positions))
        self.leaves = apply_bind_hook(leaves)

    def diff_args(self, leaves: Sequence[Any]) -> tuple[Any, ...]:
        return tree_unflatten(self.treedef, leaves)

    def full_args(self, leaves: Sequence[Any]) -> tuple[Any, ...]:
        args = list(self.args)
        for position, arg in zip(self.diff_positions, self.diff_args(leaves)):
            args[position] = arg
        return tuple(args)


# --------------------------------------------------------------------------
# The decorated function
# --------------------------------------------------------------------------


class _CustomFunction:
    """A function with custom derivative rules and the dispatch that applies them.

    :class:`custom_vjp`, :class:`custom_jvp` and the implicit solvers share
    it. The implicit solvers override the rule hooks.
    """

    def __new__(cls, fun: Callable[..., Any] | None = None, nondiff_argnums: Sequence[int] = ()) -> Any:
        # Without a function, return a decorator: @dx.custom_vjp(nondiff_argnums=(0,)).
        if fun is None:
            return functools.partial(cls, nondiff_argnums=nondiff_argnums)
        return super().__new__(cls)

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(sorted(set(nondiff_argnums)))
        if any(n < 0 for n in self.nondiff_argnums):
            raise ValueError(f"nondiff_argnums must be non-negative positions, got {nondiff_argnums}")
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None
        self.jvp: Callable[..., Any] | None = None
        self._signature = _signature_for_binding(fun)

    @property
    def _name(self) -> str:
        return f"{type(self).__name__} function {getattr(self.fun, '__qualname__', self.fun)!r}"

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        """Set the reverse-mode rule.

        Args:
            fwd: ``fwd(*args) -> (out, residuals)``, called with the same
                arguments as the function; ``residuals`` is any structure.
            bwd: ``bwd(*nondiff_args, residuals, g) -> cotangents``, where ``g``
                has the output's structure and ``cotangents`` is a tuple with
                one entry per differentiable positional argument, each with
                the argument's structure, ``None`` for zero. Write it in
                difflux operations: higher-order derivatives differentiate it.
        """
        self.fwd = fwd
        self.bwd = bwd

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set the forward-mode rule and return it, so that this works as a decorator.

        ``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``, where
        ``primals`` and ``tangents`` are tuples of the differentiable
        arguments. A tangent is zeros where nothing perturbs that argument and
        ``None`` at non-float leaves. ``tangent_out`` has the output's
        structure, with ``None`` for zero. The tangent output must be linear
        in ``tangents`` and written in difflux operations, since reverse
        mode transposes it.
        """
        self.jvp = jvp
        return jvp

    # -- calling ----------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs or self._signature is not None:
            args = self._positional(args, kwargs)
        return self._dispatch(args)

    def _positional(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Resolve keyword arguments and defaults to positions, as the rules
        take positional arguments only."""
        signature = self._signature or _signature_or_none(self.fun)
        if signature is None:
            raise TypeError(f"{self._name} has no inspectable signature, so call it with positional arguments only")
        bound = signature.bind(*args, **kwargs)
        if bound.kwargs:
            raise TypeError(
                f"{self._name} received keyword-only arguments {sorted(bound.kwargs)}, which custom rules "
                "cannot receive. Make them positional parameters (in nondiff_argnums if they are static)."
            )
        bound.apply_defaults()
        return tuple(bound.args)

    def _dispatch(self, args: tuple[Any, ...]) -> Any:
        call = _Call(args, self.nondiff_argnums)
        trace = top_trace(call.leaves)
        if trace is None:
            return self.fun(*args)
        self._check_nondiff(call, trace)
        if type(trace) is ReverseTrace:
            return self._reverse(trace, call)
        if type(trace) is JVPTrace:
            return self._forward(trace, call)
        # NOTE: other transformations (a batching trace, say) trace the body,
        # so their enclosed reverse or forward passes do not use the rule.
        return self.fun(*args)

    def _check_nondiff(self, call: _Call, trace: Trace) -> None:
        if leaked_tracer(call.nondiff, trace):
            raise CustomRuleError(
                f"{self._name} received a value being differentiated among its nondiff_argnums "
                f"{self.nondiff_argnums}, whose derivative the rule cannot give. Pass arrays that "
                "need derivatives as ordinary arguments, and keep nondiff_argnums for static values."
            )

    def _check_closure(self, tree: Any, trace: Trace) -> None:
        if leaked_tracer(tree, trace):
            raise CustomRuleError(
                f"{self._name} closes over a value that an enclosing transformation differentiates, "
                "and its custom rule cannot give that derivative. Pass the value as an argument and "
                "return its cotangent from the rule."
            )

    # -- rule hooks (overridden by the implicit solvers) ------------------------------

    def _has_vjp(self) -> bool:
        return self.bwd is not None

    def _has_jvp(self) -> bool:
        return self.jvp is not None

    def _primal_and_residuals(self, args: tuple[Any, ...], nested: bool) -> tuple[Any, Any]:
        if nested:
            # The output comes from the decorated function itself, so that the
            # enclosing transformation applies the rule too. fwd only supplies
            # the residuals, which that transformation differentiates through
            # fwd's body.
            return self._dispatch(args), self._call_fwd(args)[1]
        return self._call_fwd(args)

    def _backward(self, nondiff: tuple[Any, ...], residuals: Any, g: Any) -> Any:
        assert self.bwd is not None
        return self.bwd(*nondiff, residuals, g)

    def _primal_and_tangent(
        self, call: _Call, primals: tuple[Any, ...], tangents: tuple[Any, ...], args: tuple[Any, ...], nested: bool
    ) -> tuple[Any, Any]:
        out, tangent_out = self._call_jvp(call, primals, tangents)
        return (self._dispatch(args) if nested else out), tangent_out

    def _call_jvp(self, call: _Call, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
        assert self.jvp is not None
        result = self.jvp(*call.nondiff, primals, tangents)
        if not (isinstance(result, tuple | list) and len(result) == 2):
            raise CustomRuleError(
                f"the jvp rule of {self._name} must return a pair (out, tangent_out), got {type(result).__name__}"
            )
        return result[0], result[1]

    def _call_fwd(self, args: tuple[Any, ...]) -> tuple[Any, Any]:
        assert self.fwd is not None
        result = self.fwd(*args)
        if not (isinstance(result, tuple | list) and len(result) == 2):
            raise CustomRuleError(
                f"the fwd rule of {self._name} must return a pair (out, residuals), got {type(result).__name__}"
            )
        return result[0], result[1]

    # -- reverse mode -------------------------------------------------------------

    def _reverse(self, trace: ReverseTrace, call: _Call) -> Any:
        if not (self._has_vjp() or self._has_jvp()):
            raise CustomRuleError(
                f"{self._name} is differentiated but has no derivative rule. Define one with "
                f"{getattr(self.fun, '__name__', 'f')}.defvjp(fwd, bwd) or .defjvp(jvp)."
            )
        lowered = lower(call.leaves, trace)
        args = call.full_args(lowered)
        nested = has_derivative_tracer(lowered)
        parents = [leaf if type(leaf) is ReverseTracer and leaf._trace is trace else None for leaf in call.leaves]

        if self._has_vjp():
            out, residuals = self._primal_and_residuals(args, nested)
            self._check_closure((out, residuals), trace)
            outputs = Outputs(out)

            def compute(g: tuple[Any, ...]) -> list[Any]:
                return self._cotangent_leaves(call, lowered, residuals, outputs.tree_from_floats(g))

        else:
            out = self._dispatch(args)
            self._check_closure(out, trace)
            outputs = Outputs(out)

            def compute(g: tuple[Any, ...]) -> list[Any]:
                return self._transpose_jvp(call, lowered, parents, outputs, g)

        return record_node(trace, self._name, outputs, parents, compute)

    def _cotangent_leaves(self, call: _Call, lowered: list[Any], residuals: Any, g: Any) -> list[Any]:
        """Call the backward rule and align its cotangents with ``call.leaves``."""
        cotangents = self._backward(call.nondiff, residuals, g)
        diff_args = call.diff_args(lowered)
        if not isinstance(cotangents, tuple | list) or len(cotangents) != len(diff_args):
            got = (
                f"a {type(cotangents).__name__} of length {len(cotangents)}"
                if isinstance(cotangents, tuple | list)
                else type(cotangents).__name__
            )
            raise CustomRuleError(
                f"the bwd rule of {self._name} must return a tuple with one cotangent per differentiable "
                f"positional argument ({len(diff_args)}), got {got}. Use None for an argument with no cotangent."
            )
        result: list[Any] = []
        for position, arg, cotangent in zip(call.diff_positions, diff_args, cotangents):
            arg_leaves, arg_def = flatten(arg)
            if cotangent is None:
                result.extend([None] * len(arg_leaves))
                continue
            ct_leaves, ct_def = flatten(cotangent)
            if ct_def != arg_def:
                raise CustomRuleError(
                    f"the bwd rule of {self._name} returned a cotangent of structure {ct_def!r} for argument "
                    f"{position}, whose structure is {arg_def!r}. Return the argument's structure (None for zero)."
                )
            for arg_leaf, ct_leaf in zip(arg_leaves, ct_leaves):
                if ct_leaf is None or not _is_float_leaf(arg_leaf):
                    result.append(None)
                    continue
                if shape_of(ct_leaf) != shape_of(arg_leaf):
                    raise CustomRuleError(
                        f"the bwd rule of {self._name} returned a cotangent of shape {shape_of(ct_leaf)} for a "
                        f"leaf of argument {position} of shape {shape_of(arg_leaf)}. Return a cotangent of the "
                        "argument's shape."
                    )
                result.append(ct_leaf)
        return result

    def _transpose_jvp(
        self, call: _Call, lowered: list[Any], parents: list[Any], outputs: Outputs, g: tuple[Any, ...]
    ) -> list[Any]:
        """Pull ``g`` back through the jvp rule's tangent map at zero tangents."""
        parent_positions = [i for i, parent in enumerate(parents) if parent is not None]
        primals = call.diff_args(lowered)

        def tangent_map(*parent_tangents: Any) -> tuple[Any, ...]:
            tangent_leaves = [zeros_like(leaf) if _is_float_leaf(leaf) else None for leaf in lowered]
            for i, tangent in zip(parent_positions, parent_tangents):
                tangent_leaves[i] = tangent
            tangents = call.diff_args(tangent_leaves)
            _, tangent_out = self._call_jvp(call, primals, tangents)
            return tuple(outputs.floats_of(tangent_out, f"the tangent output of the jvp rule of {self._name}"))

        zero_tangents = [zeros_like(lowered[i]) for i in parent_positions]
        try:
            pulled = pull_back_at(tangent_map, zero_tangents, g)
        except TypeError as error:
            if isinstance(error, CustomRuleError):
                raise
            raise CustomRuleError(
                f"reverse mode of {self._name} transposes its jvp rule with difflux's reverse mode, and the rule "
                f"failed there: {error}. The tangent output must be linear in the tangents and written in "
                "difflux operations. Alternatively, define a reverse rule with defvjp."
            ) from error
        result: list[Any] = [None] * len(lowered)
        for i, cotangent in zip(parent_positions, pulled):
            result[i] = cotangent
        return result

    # -- forward mode -------------------------------------------------------------

    def _forward(self, trace: JVPTrace, call: _Call) -> Any:
        if not (self._has_vjp() or self._has_jvp()):
            raise CustomRuleError(
                f"{self._name} is differentiated but has no derivative rule. Define one with "
                f"{getattr(self.fun, '__name__', 'f')}.defjvp(jvp) or .defvjp(fwd, bwd)."
            )
        lowered = lower(call.leaves, trace)
        args = call.full_args(lowered)
        nested = has_derivative_tracer(lowered)
        tangents = [leaf.tangent if type(leaf) is JVPTracer and leaf._trace is trace else None for leaf in call.leaves]

        if self._has_jvp():
            tangent_leaves = []
            for tangent, leaf in zip(tangents, lowered):
                if tangent is None and _is_float_leaf(leaf):
                    tangent = zeros_like(leaf)
                tangent_leaves.append(tangent)
            out, tangent_out = self._primal_and_tangent(
                call, call.diff_args(lowered), call.diff_args(tangent_leaves), args, nested
            )
            self._check_closure((out, tangent_out), trace)
            outputs = Outputs(out)
            float_tangents = outputs.floats_of(tangent_out, f"the tangent output of the jvp rule of {self._name}")
            return dual_outputs(trace, outputs, float_tangents)

        out, residuals = self._primal_and_residuals(args, nested)
        self._check_closure((out, residuals), trace)
        outputs = Outputs(out)
        return dual_outputs(trace, outputs, self._transpose_vjp(call, lowered, residuals, outputs, tangents))

    def _transpose_vjp(
        self, call: _Call, lowered: list[Any], residuals: Any, outputs: Outputs, tangents: list[Any]
    ) -> list[Any]:
        """Push ``tangents`` forward as the transpose of ``g -> bwd(residuals, g)``."""
        tangent_positions = [i for i, t in enumerate(tangents) if t is not None]

        def cotangent_map(*g: Any) -> tuple[Any, ...]:
            cotangents = self._cotangent_leaves(call, lowered, residuals, outputs.tree_from_floats(g))
            return tuple(zeros_like(lowered[i]) if cotangents[i] is None else cotangents[i] for i in tangent_positions)

        zero_cotangents = [zeros_like(outputs.leaves[i]) for i in outputs.float_positions]
        try:
            return pull_back_at(cotangent_map, zero_cotangents, [tangents[i] for i in tangent_positions])
        except TypeError as error:
            if isinstance(error, CustomRuleError):
                raise
            raise CustomRuleError(
                f"forward mode of {self._name} transposes its bwd rule with difflux's reverse mode, and the rule "
                f"failed there: {error}. The bwd rule must be linear in the cotangent and written in difflux "
                "operations. Alternatively, define a forward rule with defjvp."
            ) from error


def _signature_or_none(fun: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


def _signature_for_binding(fun: Callable[..., Any]) -> inspect.Signature | None:
    """Return the signature if calls without keywords still need binding to
    fill in defaults, else ``None``, so that such calls skip binding."""
    signature = _signature_or_none(fun)
    if signature is None:
        return None
    positional_kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    needs_binding = any(
        p.default is not inspect.Parameter.empty and p.kind in positional_kinds for p in signature.parameters.values()
    )
    return signature if needs_binding else None


# --------------------------------------------------------------------------
# Public decorators
# --------------------------------------------------------------------------


class custom_vjp(_CustomFunction):  # noqa: N801 (JAX's name)
    """Give a function a custom reverse-mode rule (a vector-Jacobian product).

    The analogue of ``jax.custom_vjp`` and of ChainRules' ``rrule``. Define the
    rule with :meth:`defvjp`: ``fwd(*args)`` returns the output and the
    residuals that ``bwd(residuals, g)`` needs to return one cotangent per
    positional argument. The rule replaces differentiation of the body at
    every nesting level, so ``bwd`` must be written in difflux operations for
    second derivatives. Forward mode uses a rule given with :meth:`defjvp`
    or, without one, transposes ``bwd`` (one reverse pass per call).

    Arguments and output may be structures. Arguments listed in
    ``nondiff_argnums`` (static values such as functions or flags) are passed
    first to ``bwd`` and get no cotangent.

    Examples:
        >>> import difflux.core as dx
        >>> @dx.custom_vjp
        ... def clip_gradient(x):
        ...     return x
        >>> clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (dx.clip(g, -1.0, 1.0),))
        >>> float(dx.grad(lambda x: 5.0 * clip_gradient(x))(2.0))
        1.0
    """


class custom_jvp(_CustomFunction):  # noqa: N801 (JAX's name)
    """Give a function a custom forward-mode rule (a Jacobian-vector product).

    The analogue of ``jax.custom_jvp`` and of ChainRules' ``frule``. Define the
    rule with :meth:`defjvp`, ``jvp(primals, tangents) -> (out, tangent_out)``.
    Forward mode calls it at every nesting level. Reverse mode transposes the
    rule's tangent map with difflux's reverse mode, so the tangent output
    must be linear in ``tangents`` and written in difflux operations.
    Arguments listed in ``nondiff_argnums`` are passed first to the rule.

    Examples:
        >>> import difflux.core as dx
        >>> @dx.custom_jvp
        ... def log1pexp(x):
        ...     return dx.log1p(dx.exp(x))
        >>> @log1pexp.defjvp
        ... def log1pexp_jvp(primals, tangents):
        ...     (x,), (t,) = primals, tangents
        ...     return log1pexp(x), t / (1.0 + dx.exp(-x))
        >>> round(float(dx.grad(log1pexp)(2.0)), 6)
        0.880797
    """
