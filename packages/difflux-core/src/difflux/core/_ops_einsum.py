"""Einstein summation, ``einsum``, with derivatives that are einsums again.

The public function parses the subscripts once: implicit outputs are made
explicit, each ``...`` is replaced by fresh letters, and axes of length one
that broadcast against a longer axis are reshaped away. The primitive
therefore receives an explicit subscript string in which every letter has one
length in every operand.

The cotangent of operand ``i`` is another einsum: the output cotangent and
the other operands contracted to operand ``i``'s letters. Two cases need
constants. A letter that appears only in operand ``i`` was summed away, so
its cotangent is constant along it (a vector of ones supplies the axis). A
letter repeated within operand ``i`` (a diagonal, as in ``"ii->i"``) puts the
cotangent on that diagonal (an identity matrix supplies it).
"""

from __future__ import annotations

import functools
import string
from typing import Any

import numpy as np

from ._backend import backend_of
from ._core import Primitive
from ._dispatch import shape_of
from ._ops_linalg import constant_like
from ._ops_manipulation import _VariadicRules
from ._ops_shape import reshape

_LETTERS = string.ascii_letters

# -- parsing -------------------------------------------------------------------


def _fresh_letters(used: set[str], count: int, subscripts: str) -> list[str]:
    free = [c for c in _LETTERS if c not in used]
    if len(free) < count:
        raise ValueError(
            f"einsum {subscripts!r} needs {count} more index letters than the 52 of a-z and A-Z "
            "that are unused; split the contraction into several einsum calls"
        )
    return free[:count]


def _split_terms(subscripts: str, num_operands: int) -> tuple[list[str], str | None]:
    text = subscripts.replace(" ", "")
    if text.count("->") > 1:
        raise ValueError(f"einsum subscripts {subscripts!r} contain more than one '->'")
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != num_operands:
        raise ValueError(f"einsum subscripts {subscripts!r} name {len(terms)} operands, but {num_operands} were given")
    for term in terms + ([output] if arrow else []):
        letters = term.replace("...", "")
        if "." in letters or any(c not in _LETTERS for c in letters):
            raise ValueError(
                f"einsum subscripts {subscripts!r} contain {term!r}; use letters a-z, A-Z and at most "
                "one '...' per term"
            )
    return terms, (output if arrow else None)


def _expand_ellipses(
    subscripts: str, terms: list[str], output: str | None, shapes: list[tuple[int, ...]]
) -> tuple[list[str], str]:
    """Replace each ``...`` by letters and make an implicit output explicit."""
    ellipsis_ranks = []
    for k, (term, shape) in enumerate(zip(terms, shapes)):
        named = len(term.replace("...", ""))
        if "..." in term:
            if named > len(shape):
                raise ValueError(f"einsum operand {k} has shape {shape} but its subscripts {term!r} name {named} axes")
            ellipsis_ranks.append(len(shape) - named)
        else:
            if named != len(shape):
                raise ValueError(
                    f"einsum operand {k} has shape {shape} but its subscripts {term!r} name {named} axes; "
                    "the number of letters must equal the number of axes (use '...' for the rest)"
                )
            ellipsis_ranks.append(0)

    used = set("".join(terms) + (output or "")) - {"."}
    rank = max(ellipsis_ranks, default=0)
    ellipsis_letters = "".join(_fresh_letters(used, rank, subscripts))
    # Ellipsis axes align from the right, as in broadcasting.
    expanded = [term.replace("...", ellipsis_letters[rank - r :]) for term, r in zip(terms, ellipsis_ranks)]

    if output is None:
        counts: dict[str, int] = {}
        for term in terms:
            for c in term.replace("...", ""):
                counts[c] = counts.get(c, 0) + 1
        return expanded, ellipsis_letters + "".join(sorted(c for c, n in counts.items() if n == 1))

    if "..." in output:
        output = output.replace("...", ellipsis_letters)
    elif rank > 0:
        raise ValueError(
            f"einsum {subscripts!r}: the operands' '...' covers {rank} axes, but the output has no '...'; "
            "add '...' to the output, or sum those axes afterwards"
        )
    for c in output:
        if output.count(c) > 1:
            raise ValueError(f"einsum output {output!r} repeats the letter {c!r}")
        if not any(c in term for term in expanded):
            raise ValueError(f"einsum output letter {c!r} of {subscripts!r} appears in no operand")
    return expanded, output


def _axis_lengths(subscripts: str, terms: list[str], shapes: list[tuple[int, ...]]) -> dict[str, int]:
    """Return each letter's length, allowing length-one axes to broadcast."""
    lengths: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for c, n in zip(term, shape):
            known = lengths.get(c, 1)
            if n != 1 and known != 1 and n != known:
                described = ", ".join(f"{t!r} {s}" for t, s in zip(terms, shapes))
                raise ValueError(
                    f"einsum {subscripts!r}: index {c!r} has length {known} in one operand and {n} in "
                    f"another (operands {described})"
                )
            lengths[c] = max(known, n)
    return lengths


# -- the primitive -------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _numpy_path(subscripts: str, shapes: tuple[tuple[int, ...], ...]) -> list[Any]:
    # The contraction order depends on the shapes alone, so it is found once
    # per shape signature; zero-stride views stand in for the operands.
    dummies = [np.broadcast_to(np.zeros(()), shape) for shape in shapes]
    return np.einsum_path(subscripts, *dummies, optimize="greedy")[0]


def _einsum_impl(*operands: Any, subscripts: str) -> Any:
    if backend_of(operands, "einsum") == "numpy":
        path = _numpy_path(subscripts, tuple(np.shape(op) for op in operands))
        return np.einsum(subscripts, *operands, optimize=path)
    import jax.numpy as jnp

    return jnp.einsum(subscripts, *operands)


def _operand_cotangent(index: int) -> Any:
    def pullback(g: Any, out: Any, *operands: Any, subscripts: str) -> Any:
        inputs, output = subscripts.split("->")
        terms = inputs.split(",")
        target = terms[index]
        available = set(output).union(*(terms[k] for k in range(len(terms)) if k != index))

        # Rename the repeated occurrences of a letter; an identity matrix ties
        # each renamed letter to the original, placing the cotangent on the
        # diagonal.
        fresh = iter(_fresh_letters(set(subscripts), len(target) - len(set(target)), subscripts))
        renamed = ""
        eye_terms, eyes = [], []
        for position, c in enumerate(target):
            if c in target[:position]:
                new = next(fresh)
                renamed += new
                eye_terms.append(c + new)
                eyes.append(constant_like(np.eye(shape_of(operands[index])[position]), g))
            else:
                renamed += c

        # A letter seen only in this operand was summed away: the cotangent is
        # constant along it, so a vector of ones supplies the axis.
        ones_terms, ones = [], []
        for position, c in enumerate(target):
            if c not in available and target.count(c) == 1:
                ones_terms.append(c)
                ones.append(constant_like(np.ones(shape_of(operands[index])[position]), g))

        others = [operands[k] for k in range(len(operands)) if k != index]
        other_terms = [terms[k] for k in range(len(terms)) if k != index]
        cotangent_subscripts = ",".join([output, *other_terms, *ones_terms, *eye_terms]) + "->" + renamed
        return einsum_p(g, *others, *ones, *eyes, subscripts=cotangent_subscripts)

    return pullback


def _einsum_jvp(tangents: list[Any], out: Any, *operands: Any, subscripts: str) -> Any:
    from ._core import add_cotangents

    total = None
    for index, tangent in enumerate(tangents):
        if tangent is None:
            continue
        replaced = list(operands)
        replaced[index] = tangent
        total = add_cotangents(total, einsum_p(*replaced, subscripts=subscripts))
    return total


einsum_p = Primitive("einsum", _einsum_impl, jvp=_einsum_jvp)
einsum_p.pullbacks = _VariadicRules(_operand_cotangent)


def einsum(subscripts: str, /, *operands: Any) -> Any:
    """Evaluate the Einstein summation ``subscripts`` over ``operands``.

    Follows ``numpy.einsum``: implicit outputs (``"ij,jk"``, the letters that
    appear once, in alphabetical order), explicit outputs (``"ij,jk->ik"``),
    repeated letters within one operand for diagonals and traces
    (``"ii->i"``, ``"ii"``), ``...`` for leading axes, and broadcasting of
    length-one axes. The contraction order is optimised on both backends
    (``numpy.einsum_path`` with the greedy strategy, and ``jax.numpy.einsum``).

    The derivative with respect to each operand is itself an einsum, so
    derivatives of any order are available.

    Examples:
        >>> import difflux.core as dx
        >>> a = dx.asarray([[1.0, 2.0], [3.0, 4.0]])
        >>> float(dx.einsum("ii", a)), dx.einsum("ij,j->i", a, dx.asarray([1.0, 1.0])).tolist()
        (5.0, [3.0, 7.0])
    """
    if not isinstance(subscripts, str):
        raise TypeError(
            f"einsum takes the subscripts string first, got {type(subscripts).__name__}; "
            "the interleaved form einsum(op0, [0, 1], op1, [1, 2]) is not supported"
        )
    if not operands:
        raise ValueError("einsum needs at least one operand")
    shapes = [shape_of(op) for op in operands]
    terms, output = _split_terms(subscripts, len(operands))
    terms, output = _expand_ellipses(subscripts, terms, output, shapes)
    lengths = _axis_lengths(subscripts, terms, shapes)

    # Reshape away length-one axes that broadcast, so that the primitive (and
    # its cotangent einsums) never broadcast.
    squeezed_operands, squeezed_terms = [], []
    for operand, term, shape in zip(operands, terms, shapes):
        keep = [i for i, c in enumerate(term) if not (shape[i] == 1 and lengths[c] != 1)]
        if len(keep) != len(term):
            operand = reshape(operand, tuple(shape[i] for i in keep))
            term = "".join(term[i] for i in keep)
        squeezed_operands.append(operand)
        squeezed_terms.append(term)

    explicit = ",".join(squeezed_terms) + "->" + output
    return einsum_p(*squeezed_operands, subscripts=explicit)
