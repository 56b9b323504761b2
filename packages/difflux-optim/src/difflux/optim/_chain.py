"""``chain``: apply transformations one after another."""

from __future__ import annotations

import dataclasses
from typing import Any

from ._base import Transform, check_transform, flag


@dataclasses.dataclass(frozen=True)
class Chain(Transform):
    """Transformations applied in order; build one with :func:`chain`.

    The state is a tuple with one state per transformation.
    """

    transforms: tuple[Any, ...]

    def __post_init__(self) -> None:
        in_steps = False
        for index, transform in enumerate(self.transforms):
            check_transform("chain", transform)
            name = type(transform).__name__
            if flag(transform, "needs_steps") and not in_steps:
                raise ValueError(
                    f"chain: {name} (position {index}) acts on steps, but no rule before it turns "
                    f"gradients into steps. Put it after the rule, as in chain(Adam(), {name}(...))."
                )
            if flag(transform, "makes_steps"):
                if in_steps:
                    raise ValueError(
                        f"chain: {name} (position {index}) turns gradients into steps, but it would get the "
                        "steps of an earlier rule and reverse their sign. Use one rule per chain, and "
                        "scale a rule through its learning_rate."
                    )
                in_steps = True

    @property
    def makes_steps(self) -> bool:  # type: ignore[override]
        return any(flag(t, "makes_steps") for t in self.transforms)

    @property
    def needs_steps(self) -> bool:  # type: ignore[override]
        return bool(self.transforms) and flag(self.transforms[0], "needs_steps")

    @property
    def uses_loss(self) -> bool:  # type: ignore[override]
        return any(flag(t, "uses_loss") for t in self.transforms)

    def init(self, params: Any) -> tuple[Any, ...]:
        return tuple(t.init(params) for t in self.transforms)

    def update(self, grads: Any, state: tuple[Any, ...], params: Any = None) -> tuple[Any, tuple[Any, ...]]:
        if not isinstance(state, tuple) or len(state) != len(self.transforms):
            raise ValueError(
                f"chain of {len(self.transforms)} transformations got a state that is not a tuple of "
                f"{len(self.transforms)} states; build it with the chain's init"
            )
        updates = grads
        new_state = []
        for transform, inner in zip(self.transforms, state):
            updates, inner = transform.update(updates, inner, params)
            new_state.append(inner)
        return updates, tuple(new_state)

    def report(self, state: tuple[Any, ...], loss: Any) -> tuple[Any, ...]:
        return tuple(
            t.report(inner, loss) if hasattr(t, "report") else inner for t, inner in zip(self.transforms, state)
        )


def chain(*transforms: Any) -> Chain:
    """Return the transformation that applies ``transforms`` one after another.

    Each one receives the updates of the one before; the first receives the
    gradients. At most one rule (a transformation that turns gradients into
    steps, such as :class:`Adam`) may appear, and transformations that act
    on steps (:class:`WeightDecay`) must follow it. Clipping may go on
    either side.

    Examples:
        >>> from difflux import optim
        >>> optim.chain(optim.ClipGlobalNorm(1.0), optim.Adam(1e-3), optim.WeightDecay(1e-2, learning_rate=1e-3))
        Chain(transforms=(ClipGlobalNorm(max_norm=1.0), Adam(learning_rate=0.001, b1=0.9, b2=0.999, eps=1e-08), WeightDecay(weight_decay=0.01, learning_rate=0.001)))
    """
    return Chain(tuple(transforms))
