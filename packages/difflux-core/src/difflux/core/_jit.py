"""``dx.jit``: compile with XLA on JAX, run unchanged on NumPy.

Strategy. The arguments are flattened into leaves. Array leaves (NumPy and
JAX arrays) are traced. Every other leaf (Python numbers, strings, functions)
is static, and so is the structure itself, including the static fields of
``dx.Module`` values. One ``jax.jit``-compiled function is kept per distinct
static part, in a cache keyed on the structure, the static leaves (compared
by value) and the static arguments. ``jax.jit`` itself compiles again when
the shape or dtype of an array leaf changes. So a change of shape, of
structure or of a static value compiles again, and new array values do not.

Outputs may hold non-array leaves as well: they are computed once per trace
and put back into every result by a builder. While every trace of an entry
gives outputs of one structure, the compiled function returns a plain list
of arrays and the first trace's builder builds every result. Once a trace
gives another structure (``lambda x: x.shape``, say), a second ``jax.jit``
function returns each trace's own builder with its arrays.

A structure seen before with only JAX arrays as leaves takes a fast path:
code generated for that structure (``_jit_plan.py``) flattens the arguments
and builds the outputs, with no Python callback per module, and the call
itself runs as few Python operations as it can.

When no argument is a JAX array (and the default backend is ``numpy``)
``dx.jit`` calls the function unchanged, so the same code runs eagerly on
NumPy. Inside an active difflux transformation (``dx.grad(dx.jit(f))``) or
with difflux tracers among the arguments it also calls the function
unchanged, because difflux tracers cannot pass through ``jax.jit``; put
``dx.jit`` outermost (``dx.jit(dx.grad(f))``) to compile the whole
computation.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

from . import _backend, _core
from ._core import Tracer, TracerConversionError
from ._jit_plan import FLATTEN_ERRORS, make_builder, make_flattener
from ._module import Module, _static_key, is_array

_ADVICE = (
    "Python `if`, `while`, `and`/`or`, bool(), int() and float() need concrete values, "
    "but inside dx.jit array arguments are traced: their values are known only when the "
    "compiled function runs. Use dx.cond or dx.where for branches and dx.while_loop or "
    "dx.fori_loop for loops, or pass the value as a static argument "
    "(dx.jit(f, static_argnums=...) or static_argnames=...)."
)


def _jax_conversion_errors() -> tuple[type[BaseException], ...]:
    import jax

    errors = jax.errors
    return (
        errors.ConcretizationTypeError,
        errors.TracerBoolConversionError,
        errors.TracerIntegerConversionError,
        errors.TracerArrayConversionError,
    )


def _conversion_error(error: BaseException) -> TracerConversionError:
    """Return the error that dx.jit raises for JAX's ``error`` about a traced value used as a concrete one."""
    return TracerConversionError(f"{type(error).__name__} inside dx.jit. {_ADVICE}")


def _normalize_static_argnums(argnums: int | Iterable[int]) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int):
            raise TypeError(f"static_argnums must be ints, got {n!r}")
    return nums


class _Result:
    """Output of the traced function: the output arrays and a function that builds the output.

    It is a ``jax.tree_util`` node whose children are the arrays and whose
    auxiliary data is the function, so ``jax.jit`` keeps the function of
    each trace with its compiled program and returns it with the arrays.
    Its C++ dispatch then rebuilds one node, not one per module.
    """

    __slots__ = ("build", "arrays")

    def __init__(self, build: Callable[[Any], Any], arrays: Any) -> None:
        self.build = build
        self.arrays = arrays


def _flatten_result(result: _Result) -> tuple[Any, Callable[[Any], Any]]:
    return result.arrays, result.build


def _unflatten_result(build: Callable[[Any], Any], arrays: Any) -> _Result:
    return _Result(build, arrays)


_result_registered = False


def _register_result(jax: Any) -> None:
    global _result_registered
    if not _result_registered:
        jax.tree_util.register_pytree_node(_Result, _flatten_result, _unflatten_result)
        _result_registered = True


def _generic_builder(out_def: Any, mask: list[bool], static: list[Any]) -> Callable[[Any], Any]:
    """Return a function that puts the static leaves back among the arrays and unflattens."""

    def build(arrays: Any) -> Any:
        arrays_iter, static_iter = iter(arrays), iter(static)
        return out_def.unflatten([next(arrays_iter) if keep else next(static_iter) for keep in mask])

    return build


class _Entry:
    """One compiled specialisation: the static parts of a call and its ``jax.jit`` function."""

    def __init__(
        self,
        fun: Callable[..., Any],
        treedef: Any,
        mask: tuple[bool, ...],
        static_leaves: list[Any],
        static_args: dict[int, Any],
        static_kwargs: dict[str, Any],
        num_args: int,
        compiler_options: dict[str, Any] | None = None,
    ) -> None:
        import jax

        _register_result(jax)
        self.fun = fun
        self.treedef = treedef
        self.mask = mask
        self.static_leaves = static_leaves
        self.static_args = static_args
        self.static_kwargs = static_kwargs
        self.num_args = num_args
        self.compiler_options = compiler_options
        # Most functions give outputs of one structure, whatever the shapes
        # of the arguments. Their outputs leave the compiled function as a
        # plain list, and the builder of the first trace builds each result.
        self.compiled = jax.jit(self._traced_arrays, compiler_options=compiler_options)
        self.build: Callable[[Any], Any] | None = None
        self.signature: tuple[Any, ...] | None = None
        # Set to a second jax.jit function, which returns each trace's own
        # builder with the arrays, once a trace gives outputs of another
        # structure or other non-array values.
        self.with_builder: Callable[..., _Result] | None = None
        # The fast path's flattener for this entry's structure: None until
        # dx.jit tries to generate it, False when that is not possible.
        self.plan: _Plan | bool | None = None

    def _traced(self, arrays: list[Any]) -> _Result:
        arrays_iter, static_iter = iter(arrays), iter(self.static_leaves)
        leaves = [next(arrays_iter) if is_array_leaf else next(static_iter) for is_array_leaf in self.mask]
        dynamic_args, dynamic_kwargs = self.treedef.unflatten(leaves)
        dynamic_iter = iter(dynamic_args)
        args = [self.static_args[i] if i in self.static_args else next(dynamic_iter) for i in range(self.num_args)]
        out = self.fun(*args, **dynamic_kwargs, **self.static_kwargs)

        import jax

        out_leaves, out_def = jax.tree_util.tree_flatten(out)
        for leaf in out_leaves:
            if isinstance(leaf, Tracer):
                raise TypeError(
                    f"the function compiled by dx.jit returned a difflux tracer ({leaf!r}), a value "
                    "still being differentiated by a transformation outside dx.jit. Return plain "
                    "values, or apply dx.jit outside the transformation: dx.jit(dx.grad(f))."
                )
        # Non-array leaves of the output are computed here, once per trace,
        # and the builder puts them back into every result.
        out_mask = [is_array(leaf) for leaf in out_leaves]
        out_arrays = [leaf for leaf, keep in zip(out_leaves, out_mask) if keep]
        # Code generated for this structure rebuilds it faster than
        # jax.tree_util, which calls back into Python for every module.
        build = make_builder(out, out_leaves, out_mask)
        out_static = [leaf for leaf, keep in zip(out_leaves, out_mask) if not keep]
        if build is None or jax.tree_util.tree_structure(build(out_arrays)) != out_def:
            build = _generic_builder(out_def, out_mask, out_static)
        signature = (out_def, tuple(out_mask), tuple(map(_static_key, out_static)))
        if self.signature is None:
            self.build, self.signature = build, signature
        elif signature != self.signature:
            self._use_builders()
        return _Result(build, out_arrays)

    def _traced_arrays(self, arrays: list[Any]) -> list[Any]:
        return self._traced(arrays).arrays

    def _use_builders(self) -> None:
        import jax

        if self.with_builder is None:
            self.with_builder = jax.jit(self._traced, compiler_options=self.compiler_options)

    def fast_call(self, flatten: Callable[..., Any]) -> Callable[..., Any]:
        """Return the fast path of :class:`JitFunction` for calls that ``flatten`` accepts.

        It returns ``_MISS`` for any other call. Timed inside a training loop,
        Python work per call cost about twice what it cost timed alone
        (probably because the XLA program evicts the interpreter's data from
        the CPU caches), so this path does as little as it can.
        """
        compiled, trace_stack = self.compiled, _core.trace_stack

        def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if trace_stack or self.with_builder is not None:
                return _MISS
            try:
                arrays = flatten(args, kwargs)
            except FLATTEN_ERRORS:
                return _MISS
            if arrays is None:
                return _MISS
            try:
                out = compiled(arrays)
            except _jax_conversion_errors() as error:
                raise _conversion_error(error) from error
            if self.with_builder is not None:
                return self(arrays)
            return self.build(out)  # type: ignore[misc]

        return call

    def __call__(self, arrays: list[Any]) -> Any:
        try:
            if self.with_builder is None:
                out = self.compiled(arrays)
                # A trace of this call (or of another thread's) may have
                # switched to per-trace builders; then this call runs again.
                if self.with_builder is None:
                    return self.build(out)  # type: ignore[misc]
            result = self.with_builder(arrays)
        except _jax_conversion_errors() as error:
            raise _conversion_error(error) from error
        return result.build(result.arrays)


# The kind of each type of argument leaf for dx.jit. is_array and the backend
# of a value depend only on its type, so the kind is cached per type.
_STATIC, _NUMPY, _JAX, _TRACER = 1, 2, 3, 4
_LEAF_KINDS: dict[type, int] = {}


def _leaf_kind(x: Any) -> int:
    kind = _LEAF_KINDS.get(type(x))
    if kind is None:
        if isinstance(x, Tracer):
            kind = _TRACER
        elif not is_array(x):
            kind = _STATIC
        elif _backend.backend_of_value(x) == "jax":
            kind = _JAX
        else:
            kind = _NUMPY
        # The backend of a type is only known for certain once JAX is
        # imported, which it is whenever this runs (see JitFunction.__call__).
        _LEAF_KINDS[type(x)] = kind
    return kind


def _array_signature(x: Any) -> tuple[Any, ...]:
    # dtype objects hash and compare by value; str(dtype) cost more than the
    # rest of the cache lookup together. Weak typing is left to jax.jit's own
    # cache, because the output structure recorded here does not depend on it.
    return (x.shape, x.dtype)


class _Plan:
    """A flattener generated for one argument structure, the entry that compiles it, and their fast path."""

    __slots__ = ("flatten", "entry", "fast")

    def __init__(self, flatten: Callable[..., Any], entry: _Entry) -> None:
        self.flatten = flatten
        self.entry = entry
        self.fast = entry.fast_call(flatten)


# The value a fast path returns for a call that it does not handle.
_MISS = object()


# The most generated flatteners a function keeps. A call of another
# structure takes the slower general path, which replaces the oldest.
_MAX_PLANS = 4


class JitFunction:
    """A function wrapped by :func:`jit`; call it as the original function."""

    def __init__(
        self,
        fun: Callable[..., Any],
        static_argnums: int | Iterable[int] = (),
        static_argnames: str | Iterable[str] = (),
        compiler_options: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fun):
            raise TypeError(f"dx.jit expects a callable, got {type(fun).__name__}")
        static_nums = _normalize_static_argnums(static_argnums)
        names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        # A bound method of a module passes the module as a traced argument,
        # so new parameters reach the compiled function instead of being
        # baked in as constants.
        self._bound_module: Module | None = None
        if inspect.ismethod(fun) and isinstance(fun.__self__, Module):
            self._bound_module = fun.__self__
            fun = fun.__func__
            static_nums = tuple(n + 1 if n >= 0 else n for n in static_nums)
        self._fun = fun
        self._static_argnums = static_nums
        self._static_argnames = frozenset(names)
        self._compiler_options = dict(compiler_options) if compiler_options else None
        self._param_names = self._positional_names(fun)
        self._cache: dict[Any, _Entry] = {}
        # Generated flatteners of argument structures seen before, newest
        # first, used only when no argument is static.
        self._plans: list[_Plan] = []
        # The newest plan's fast path, tried before anything else.
        self._fast: Callable[..., Any] | None = None
        functools.update_wrapper(self, fun)

    @staticmethod
    def _positional_names(fun: Callable[..., Any]) -> tuple[str, ...]:
        try:
            parameters = inspect.signature(fun).parameters.values()
        except (TypeError, ValueError):
            return ()
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return tuple(p.name for p in parameters if p.kind in kinds)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        # Decorating a method: the instance becomes the first (traced) argument.
        if instance is None:
            return self
        return functools.partial(self, instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fast = self._fast
        if fast is not None:
            result = fast(args, kwargs)
            if result is not _MISS:
                return result
        if self._bound_module is not None:
            args = (self._bound_module, *args)
        if _core.trace_stack:
            return self._fun(*args, **kwargs)

        jax = sys.modules.get("jax")
        if jax is None:
            return self._fun(*args, **kwargs)

        if not self._static_argnums and not self._static_argnames:
            # The fast path: an argument structure seen before, with only
            # JAX arrays as leaves. jax.jit checks their shapes and dtypes
            # and compiles again when they change.
            for plan in self._plans:
                try:
                    flat = plan.flatten(args, kwargs)
                except FLATTEN_ERRORS:
                    continue
                if flat is not None:
                    return plan.entry(flat)

        num_args = len(args)
        if self._static_argnums or self._static_argnames:
            static_positions = {n % num_args for n in self._static_argnums if -num_args <= n < num_args}
            static_positions |= {
                i for i, name in enumerate(self._param_names[:num_args]) if name in self._static_argnames
            }
            static_args = {i: args[i] for i in sorted(static_positions)}
            dynamic_args = tuple(a for i, a in enumerate(args) if i not in static_positions)
            static_kwargs = {k: v for k, v in kwargs.items() if k in self._static_argnames}
            dynamic_kwargs = {k: v for k, v in kwargs.items() if k not in self._static_argnames}
        else:
            # The common case, kept short because it runs on every call.
            static_args, static_kwargs = {}, {}
            dynamic_args, dynamic_kwargs = args, kwargs
        # Every difflux structure is registered with jax.tree_util too (see
        # _tree.py), and JAX's C++ flatten is about ten times faster than
        # ours, which matters on this per-call path.
        leaves, treedef = jax.tree_util.tree_flatten((dynamic_args, dynamic_kwargs))
        kinds = [_LEAF_KINDS.get(type(leaf)) or _leaf_kind(leaf) for leaf in leaves]
        if _TRACER in kinds:
            return self._fun(*args, **kwargs)  # difflux tracers cannot cross jax.jit; run unchanged
        if _JAX not in kinds and (_NUMPY in kinds or _backend.default_backend() != "jax"):
            # Compile only with a JAX array among the leaves, or with no
            # array at all and JAX as the default backend.
            return self._fun(*args, **kwargs)

        if _STATIC not in kinds and not static_args and not static_kwargs:
            # Every leaf is an array, the common case: a shorter key, which
            # cannot equal a key of the general form below. It leaves out the
            # shapes and dtypes because jax.jit compiles again when they
            # change, and each trace carries its own output builder.
            key: tuple[Any, ...] = (treedef,)
            entry = self._cache.get(key)
            if entry is None:
                mask = (True,) * len(leaves)
                entry = _Entry(self._fun, treedef, mask, [], {}, {}, num_args, self._compiler_options)
                self._cache[key] = entry
            if _NUMPY not in kinds:
                self._remember(args, kwargs, leaves, entry)
            return entry(leaves)

        mask = tuple([kind != _STATIC for kind in kinds])
        arrays = [leaf for leaf, keep in zip(leaves, mask) if keep]
        static_leaves = [leaf for leaf, keep in zip(leaves, mask) if not keep]
        key = (
            treedef,
            mask,
            tuple(map(_static_key, static_leaves)),
            tuple(map(_array_signature, arrays)),
            tuple((i, _static_key(v)) for i, v in static_args.items()),
            tuple(sorted((k, _static_key(v)) for k, v in static_kwargs.items())),
            num_args,
        )
        entry = self._cache.get(key)
        if entry is None:
            entry = _Entry(
                self._fun, treedef, mask, static_leaves, static_args, static_kwargs, num_args, self._compiler_options
            )
            self._cache[key] = entry
        return entry(arrays)

    def _remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], leaves: list[Any], entry: _Entry) -> None:
        """Let the fast path find ``entry`` for calls structured as this one."""
        if entry.plan is None:
            # Generated once per entry, so that a structure the generator
            # does not handle costs the attempt only once.
            flatten = make_flattener(args, kwargs, leaves)
            entry.plan = False if flatten is None else _Plan(flatten, entry)
        if isinstance(entry.plan, _Plan) and entry.plan not in self._plans:
            self._plans.insert(0, entry.plan)
            del self._plans[_MAX_PLANS:]
            if self._bound_module is None and not self._static_argnums and not self._static_argnames:
                self._fast = entry.plan.fast

    def clear_cache(self) -> None:
        """Forget every compiled specialisation."""
        self._cache.clear()
        self._plans.clear()
        self._fast = None

    def __repr__(self) -> str:
        return f"dx.jit({getattr(self._fun, '__qualname__', self._fun)!r})"


def jit(
    fun: Callable[..., Any] | None = None,
    *,
    static_argnums: int | Iterable[int] = (),
    static_argnames: str | Iterable[str] = (),
    compiler_options: dict[str, Any] | None = None,
) -> Any:
    """Compile ``fun`` with XLA on JAX; call it unchanged on NumPy.

    Array leaves of the arguments (NumPy and JAX arrays, in any nesting of
    tuples, lists, dicts and ``dx.Module`` values) are traced. Everything else
    is static and part of the cache key: the structure, Python numbers,
    strings, functions and a module's static fields. So passing a new float
    (a learning rate that changes every step, say) compiles again; pass it
    as ``dx.asarray(lr)`` to trace it instead. Arguments listed in
    ``static_argnums`` / ``static_argnames`` are static as a whole.

    Python control flow on traced values is not possible inside: ``if x > 0``
    raises :class:`dx.TracerConversionError` pointing to ``dx.cond`` and
    ``dx.where``.

    ``dx.jit`` compiles only when an argument is a JAX array (or, with no
    array argument at all, when the default backend is ``jax``). With NumPy
    arrays it is the identity, so the same code runs on both backends.
    Inside an active difflux transformation it is the identity too: write
    ``dx.jit(dx.grad(loss))`` rather than ``dx.grad(dx.jit(loss))``.

    Args:
        fun: the function; ``dx.jit`` can also decorate without arguments or
            with only keyword arguments (``@dx.jit(static_argnames="n")``).
        static_argnums: positions of arguments to treat as static.
        static_argnames: names of arguments to treat as static.
        compiler_options: XLA options for this function's compilations,
            passed to ``jax.jit`` (``{"xla_backend_optimization_level": 0}``
            for a function that runs a few times only, say, which compiles
            in about half the time). XLA rejects an unknown option when the
            function first compiles.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> loss = lambda w, x: dx.sum((x @ w) ** 2)
        >>> step = dx.jit(dx.grad(loss))
        >>> step(np.ones(2), np.eye(2)).tolist()
        [2.0, 2.0]
    """
    if fun is None:
        return functools.partial(
            jit, static_argnums=static_argnums, static_argnames=static_argnames, compiler_options=compiler_options
        )
    return JitFunction(fun, static_argnums, static_argnames, compiler_options)
