"""The checkpointing schedule of reverse-mode loops, and what it stored.

Reverse mode through ``while_loop`` (always) and ``scan`` (with
``checkpoints=``) uses two-level (square-root) checkpointing. The
``steps`` iterations are split into ``segments`` segments of
``segment_length`` steps. The forward sweep stores the carry at the start of
each segment, and the backward sweep recomputes and stores the carries of one
segment at a time. At most ``segments + segment_length`` carries are stored
at once, which is about ``2 * sqrt(steps)`` for the default schedule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

from ._core import value_of
from ._dispatch import shape_of


def sqrt_schedule(steps: int, checkpoints: int | None = None) -> tuple[int, int]:
    """Return ``(segments, segment_length)`` covering ``steps`` steps.

    ``checkpoints`` is the number of segments requested; by default
    ``ceil(sqrt(steps))``, which minimises ``segments + segment_length``.
    """
    wanted = checkpoints if checkpoints is not None else max(1, math.isqrt(steps - 1) + 1)
    segment_length = -(-steps // wanted)
    segments = -(-steps // segment_length)
    return segments, segment_length


@dataclasses.dataclass
class CheckpointStats:
    """The memory a reverse pass through one checkpointed loop used, in loop carries.

    Attributes:
        max_steps: the loop's step bound (a scan's length).
        checkpoints: carries the forward sweep stored (the leading length of
            the checkpoint buffer).
        segment_carries: carries recomputed and stored for one segment in the
            backward sweep (the leading length of that buffer).
    """

    max_steps: int
    checkpoints: int = 0
    segment_carries: int = 0

    @property
    def stored_carries(self) -> int:
        """The maximum number of carries stored at once: the checkpoints plus one segment."""
        return self.checkpoints + self.segment_carries

    def record_checkpoints(self, checkpoint_leaves: list[Any]) -> None:
        self.checkpoints = _leading_length(checkpoint_leaves)

    def record_segment(self, segment_leaves: list[Any]) -> None:
        self.segment_carries = max(self.segment_carries, _leading_length(segment_leaves))

    def publish(self) -> None:
        """Hand this record to every active :func:`checkpoint_stats` block."""
        for records in _recorders:
            records.append(self)


def _leading_length(leaves: list[Any]) -> int:
    return shape_of(value_of(leaves[0]))[0] if leaves else 0


_recorders: list[list[CheckpointStats]] = []


@contextlib.contextmanager
def checkpoint_stats() -> Iterator[list[CheckpointStats]]:
    """Record a :class:`CheckpointStats` for each reverse pass through a checkpointed loop.

    Examples:
        >>> import difflux.core as dx
        >>> def f(x):
        ...     return dx.while_loop(lambda c: c[0] < 100, lambda c: (c[0] + 1, c[1] * 1.001), (0, x), max_steps=100)[1]
        >>> with dx.checkpoint_stats() as stats:
        ...     _ = dx.grad(f)(1.0)
        >>> stats[0].stored_carries
        20
    """
    records: list[CheckpointStats] = []
    _recorders.append(records)
    try:
        yield records
    finally:
        _recorders.remove(records)
