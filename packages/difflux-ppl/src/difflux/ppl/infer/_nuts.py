"""The No-U-Turn Sampler with multinomial sampling, built iteratively.

The trajectory doubles (Hoffman & Gelman, "The No-U-Turn Sampler", JMLR
2014, algorithm 3): each doubling integrates a new subtree of ``2^depth``
leapfrog steps forwards or backwards in time from the matching end of the
trajectory. Points are chosen by multinomial sampling with weights
``exp(-H)`` (Betancourt, "A Conceptual Introduction to Hamiltonian Monte
Carlo", 2017, appendix A.3): uniform progressive sampling inside a subtree,
and biased progressive sampling (accept the subtree's point with
probability ``min(1, w_subtree / w_old)``) when a subtree joins the
trajectory. Doubling stops at ``max_tree_depth``, on a divergence (energy
error above ``max_delta_energy``) or on a U-turn by the generalised
criterion (Betancourt 2017, section A.4.2): a (sub)trajectory with summed
momentum ``rho`` and end momenta ``r-``, ``r+`` has turned when
``rho . M^{-1} r- <= 0`` or ``rho . M^{-1} r+ <= 0``.

No recursion: a subtree is built by a ``dx.while_loop`` over its leaves.
Every complete sub-subtree that ends at leaf ``n`` (the blocks of size
``2^k`` with ``(n + 1) % 2^k == 0``) is checked for a U-turn at that leaf.
This needs, for each level ``k``, the momentum at the block's first leaf
and the momentum sum before it, kept in two buffers of ``max_tree_depth``
rows that are overwritten whenever a new block of that size starts
(``n % 2^k == 0``). All checks at one leaf are one vectorised test, and the
same code runs as Python loops on NumPy and compiles under ``dx.jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx

from ._adaptation import backend_name
from ._hmc import HMC, Transition, _nan_to_inf, uniform_from_bits
from ._integrator import IntegratorState, kinetic_energy, leapfrog, velocity


def _select(pred: Any, a: Any, b: Any) -> Any:
    return dx.tree_map(lambda x, y: dx.where(pred, x, y), a, b)


class _Subtree(NamedTuple):
    leaf: IntegratorState
    proposal: IntegratorState
    proposal_energy: Any
    log_weight: Any
    r_sum: Any
    r_checkpoints: Any
    r_sum_checkpoints: Any
    num_leaves: Any
    turning: Any
    diverging: Any
    sum_accept_probs: Any
    key: Any
    bits_merge: Any
    bits_direction: Any


class _Trajectory(NamedTuple):
    left: IntegratorState
    right: IntegratorState
    proposal: IntegratorState
    proposal_energy: Any
    log_weight: Any
    r_sum: Any
    depth: Any
    size: Any
    turning: Any
    diverging: Any
    sum_accept_probs: Any
    num_proposals: Any
    key: Any
    bits_direction: Any


def _turned(v_minus: Any, v_plus: Any, rho: Any) -> Any:
    """Apply the generalised no-U-turn test along the last axis (batched over leading axes)."""
    return (dx.sum(v_minus * rho, axis=-1) <= 0.0) | (dx.sum(v_plus * rho, axis=-1) <= 0.0)


class NUTS(HMC):
    """The No-U-Turn Sampler (Hoffman & Gelman 2014) with multinomial sampling (Betancourt 2017).

    Takes the arguments of :class:`HMC` except ``trajectory_length``, which
    NUTS chooses per iteration, plus ``max_tree_depth``: a transition takes
    at most ``2^max_tree_depth - 1`` leapfrog steps.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ppl
        >>> kernel = ppl.NUTS(potential_fn=lambda z: 0.5 * dx.sum(z ** 2))
        >>> mcmc = ppl.MCMC(kernel, num_warmup=100, num_samples=100, progress_bar=False)
        >>> mcmc.run(dx.random.key(0, backend="numpy"), init_params=dx.zeros(3, backend="numpy"))
        >>> mcmc.get_samples().shape
        (100, 3)
    """

    def __init__(
        self,
        model: Callable[..., Any] | None = None,
        potential_fn: Callable[[Any], Any] | None = None,
        *,
        step_size: float = 1.0,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        dense_mass: bool = False,
        target_accept_prob: float = 0.8,
        inverse_mass_matrix: Any = None,
        init_strategy: Any = None,
        max_tree_depth: int = 10,
        max_delta_energy: float = 1000.0,
    ) -> None:
        super().__init__(
            model,
            potential_fn,
            step_size=step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            dense_mass=dense_mass,
            target_accept_prob=target_accept_prob,
            inverse_mass_matrix=inverse_mass_matrix,
            init_strategy=init_strategy,
            max_delta_energy=max_delta_energy,
        )
        if not isinstance(max_tree_depth, int) or not 1 <= max_tree_depth <= 30:
            raise ValueError(f"NUTS: max_tree_depth must be an integer in [1, 30], got {max_tree_depth!r}")
        self.max_tree_depth = max_tree_depth

    def transition(
        self, key: Any, bits: Any, start: IntegratorState, step_size: Any, inverse_mass_matrix: Any
    ) -> Transition:
        """Build one NUTS trajectory from ``start``, whose ``r`` is the momentum drawn for it; return its chosen point.

        The first doubling's direction comes from the words of ``bits``, and
        the subtrees split ``key`` leaf by leaf.
        """
        begin = start
        r = begin.r
        energy_start = begin.potential_energy + kinetic_energy(r, inverse_mass_matrix)
        backend = backend_name(start.z)
        zero = dx.zeros_like(energy_start)
        one_int = dx.asarray(1, dtype=dx.int32, backend=backend)

        trajectory = _Trajectory(
            left=begin,
            right=begin,
            proposal=begin,
            proposal_energy=energy_start,
            log_weight=zero,
            r_sum=r,
            depth=0 * one_int,
            size=one_int,
            turning=dx.asarray(False, backend=backend),
            diverging=dx.asarray(False, backend=backend),
            sum_accept_probs=zero,
            num_proposals=0 * one_int,
            key=key,
            bits_direction=bits,
        )

        def keep_doubling(t: _Trajectory) -> Any:
            return (t.depth < self.max_tree_depth) & ~t.turning & ~t.diverging

        def double(t: _Trajectory) -> _Trajectory:
            return self._double(t, energy_start, step_size, inverse_mass_matrix)

        t = dx.while_loop(keep_doubling, double, trajectory, max_steps=self.max_tree_depth)
        accept_prob = t.sum_accept_probs / dx.astype(dx.maximum(t.num_proposals, 1), energy_start.dtype)
        return Transition(t.proposal, t.proposal_energy, t.num_proposals, accept_prob, t.diverging)

    def _double(self, t: _Trajectory, energy_start: Any, step_size: Any, inverse_mass_matrix: Any) -> _Trajectory:
        # The doubling splits no key of its own: each random function adds a threefry program
        # to the compiled code. Its direction comes from the previous subtree's last leaf (or
        # from the transition), and so do the next key and the uniform of the merge below.
        forward = t.bits_direction[0] < np.uint32(2**31)
        direction = dx.where(forward, 1.0, -1.0)
        edge = _select(forward, t.right, t.left)
        sub = self._build_subtree(edge, t.size, direction * step_size, energy_start, inverse_mass_matrix, t.key)

        # Biased progressive sampling: prefer the new subtree's point.
        valid = ~sub.turning & ~sub.diverging
        uniform = uniform_from_bits(sub.bits_merge, energy_start.dtype)
        take = valid & (dx.log(uniform) < sub.log_weight - t.log_weight)
        proposal = _select(take, sub.proposal, t.proposal)
        proposal_energy = dx.where(take, sub.proposal_energy, t.proposal_energy)

        left = _select(forward, t.left, sub.leaf)
        right = _select(forward, sub.leaf, t.right)
        r_sum = t.r_sum + sub.r_sum
        turned = _turned(velocity(left.r, inverse_mass_matrix), velocity(right.r, inverse_mass_matrix), r_sum)
        return _Trajectory(
            left=left,
            right=right,
            proposal=proposal,
            proposal_energy=proposal_energy,
            log_weight=dx.logaddexp(t.log_weight, sub.log_weight),
            r_sum=r_sum,
            depth=t.depth + 1,
            size=t.size * 2,
            turning=sub.turning | turned,
            diverging=sub.diverging,
            sum_accept_probs=t.sum_accept_probs + sub.sum_accept_probs,
            num_proposals=t.num_proposals + sub.num_leaves,
            key=sub.key,
            bits_direction=sub.bits_direction,
        )

    def _build_subtree(
        self,
        edge: IntegratorState,
        size: Any,
        signed_step_size: Any,
        energy_start: Any,
        inverse_mass_matrix: Any,
        key: Any,
    ) -> _Subtree:
        """Integrate ``size`` leapfrog steps from ``edge``, stopping early on a U-turn or divergence.

        Each leaf splits the key into four: the next leaf's key, the bits of
        the leaf's uniform, and two more keys. The doubling uses the last
        leaf's two extra keys (a subtree has at least one leaf) for its merge
        and for the next direction.
        """
        potential_and_grad, _ = self._prepared()
        backend = backend_name(edge.z)
        depth = self.max_tree_depth
        block_sizes = dx.asarray(2 ** np.arange(1, depth + 1), dtype=dx.int32, backend=backend)
        checkpoints = dx.zeros_like(dx.zeros((depth, 1), dtype=edge.r.dtype, backend=backend) * edge.r[None, :])
        zero = dx.zeros_like(energy_start)

        def keep_going(s: _Subtree) -> Any:
            return (s.num_leaves < size) & ~s.turning & ~s.diverging

        def add_leaf(s: _Subtree) -> _Subtree:
            # A step into the tails may overflow or divide by zero (a constraining transform
            # saturates, say). Its infinite or NaN energy marks the transition divergent, so
            # NumPy's floating-point warnings carry no information here.
            with np.errstate(all="ignore"):
                return grow(s)

        def grow(s: _Subtree) -> _Subtree:
            key, bits, bits_merge, bits_direction = dx.random.split(s.key, 4)
            leaf = leapfrog(s.leaf, signed_step_size, inverse_mass_matrix, potential_and_grad)
            energy = leaf.potential_energy + kinetic_energy(leaf.r, inverse_mass_matrix)
            delta = _nan_to_inf(energy - energy_start)
            log_weight_leaf = -delta
            log_weight = dx.logaddexp(s.log_weight, log_weight_leaf)

            # Uniform progressive sampling inside the subtree.
            uniform = uniform_from_bits(bits, energy_start.dtype)
            take = dx.log(uniform) < log_weight_leaf - log_weight
            proposal = _select(take, leaf, s.proposal)
            proposal_energy = dx.where(take, energy, s.proposal_energy)

            # U-turn checks of every block that this leaf completes.
            n = s.num_leaves
            starts = (n % block_sizes) == 0
            r_checkpoints = dx.where(starts[:, None], leaf.r[None, :], s.r_checkpoints)
            r_sum_checkpoints = dx.where(starts[:, None], s.r_sum[None, :], s.r_sum_checkpoints)
            r_sum = s.r_sum + leaf.r
            ends = ((n + 1) % block_sizes) == 0
            rho = r_sum[None, :] - r_sum_checkpoints
            v_first = velocity_rows(r_checkpoints, inverse_mass_matrix)
            v_last = velocity(leaf.r, inverse_mass_matrix)[None, :]
            turning = dx.any(ends & _turned(v_first, v_last, rho))

            return _Subtree(
                leaf=leaf,
                proposal=proposal,
                proposal_energy=proposal_energy,
                log_weight=log_weight,
                r_sum=r_sum,
                r_checkpoints=r_checkpoints,
                r_sum_checkpoints=r_sum_checkpoints,
                num_leaves=n + 1,
                turning=turning,
                diverging=delta > self.max_delta_energy,
                sum_accept_probs=s.sum_accept_probs + dx.exp(dx.minimum(-delta, 0.0)),
                key=key,
                bits_merge=bits_merge,
                bits_direction=bits_direction,
            )

        first = _Subtree(
            leaf=edge,
            proposal=edge,
            proposal_energy=energy_start,
            log_weight=zero - dx.inf,
            r_sum=dx.zeros_like(edge.r),
            r_checkpoints=checkpoints,
            r_sum_checkpoints=checkpoints,
            num_leaves=dx.zeros_like(size),
            turning=dx.asarray(False, backend=backend),
            diverging=dx.asarray(False, backend=backend),
            sum_accept_probs=zero,
            key=key,
            # Placeholders of the right shape: the first leaf overwrites them.
            bits_merge=key,
            bits_direction=key,
        )
        return dx.while_loop(keep_going, add_leaf, first, max_steps=2 ** (depth - 1))


def velocity_rows(rows: Any, inverse_mass_matrix: Any) -> Any:
    """Apply ``M^{-1}`` to each row of ``rows``."""
    if inverse_mass_matrix.ndim == 1:
        return rows * inverse_mass_matrix[None, :]
    return dx.matmul(rows, inverse_mass_matrix)
