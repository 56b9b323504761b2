"""``MCMC``: run a kernel's chains through warm-up and sampling, and keep the draws.

Iterations run in chunks: one ``dx.jit``-compiled function advances every
chain by up to ``chunk`` iterations with ``dx.fori_loop`` and writes their
draws into a buffer, and the progress bar moves between chunks. The chunk
length and the iteration offset are array arguments, so a run compiles
that function once, whatever the number of chunks, chains or iterations.
With ``chain_method="vectorized"`` the chains are batched by ``dx.vmap``
inside the compiled function. ``"parallel"`` shards that batch across JAX
devices when there are several. On a single CPU device it runs the chains
one after another (see :meth:`MCMC.resolved_chain_method`). On NumPy
``dx.jit`` is the identity and the same code runs as Python loops.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx

from ._adaptation import backend_name, to_backend
from ._hmc import HMC, HMCState

_CHAIN_METHODS = ("sequential", "vectorized", "parallel")


def _collect(state: HMCState) -> dict[str, Any]:
    """Return the per-iteration values that the draw buffers store."""
    return {
        "z": state.z,
        "diverging": state.diverging,
        "potential_energy": state.potential_energy,
        "energy": state.energy,
        "accept_prob": state.accept_prob,
        "mean_accept_prob": state.mean_accept_prob,
        "num_steps": state.num_steps,
        "step_size": state.adapt_state.step_size,
        "i": state.i,
    }


# The names MCMC.run(extra_fields=...) accepts; "adapt_state.step_size" is NumPyro's name for "step_size".
EXTRA_FIELDS = (
    "diverging",
    "potential_energy",
    "energy",
    "accept_prob",
    "mean_accept_prob",
    "num_steps",
    "step_size",
    "adapt_state.step_size",
    "i",
)


class MCMC:
    """Markov chain Monte Carlo driver with NumPyro's interface.

    Args:
        sampler: the kernel, :class:`HMC` or :class:`NUTS`.
        num_warmup: warm-up (adaptation) iterations per chain, discarded.
        num_samples: draws kept per chain (before thinning).
        num_chains: the number of independent chains.
        thinning: keep every ``thinning``-th draw.
        chain_method: ``"sequential"`` runs chains one after another, and one
            compilation serves all of them. ``"vectorized"`` batches them
            with ``dx.vmap``. ``"parallel"`` shards the batch across JAX
            devices when there are several. With one device it acts like
            ``"sequential"`` on a CPU and like ``"vectorized"`` on an
            accelerator or on NumPy.
        progress_bar: show a tqdm bar, updated between chunks of iterations.
        chunk_size: iterations per compiled call; default about 1/20 of the
            run with a progress bar and the whole run without. On NumPy,
            where nothing is compiled, the default with a progress bar is
            one iteration, so the bar moves with every iteration. Warm-up and
            sampling are never in one call, so ``warmup_time`` (compilation
            included) and ``sampling_time`` report each phase's seconds.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ppl
        >>> mcmc = ppl.MCMC(ppl.NUTS(potential_fn=lambda z: 0.5 * dx.sum(z ** 2)), num_warmup=50,
        ...                 num_samples=50, num_chains=2, progress_bar=False)
        >>> mcmc.run(dx.random.key(1, backend="numpy"), init_params=dx.zeros((2, 3), backend="numpy"))
        >>> mcmc.get_samples(group_by_chain=True).shape
        (2, 50, 3)
    """

    def __init__(
        self,
        sampler: HMC,
        *,
        num_warmup: int,
        num_samples: int,
        num_chains: int = 1,
        thinning: int = 1,
        chain_method: str = "parallel",
        progress_bar: bool = True,
        chunk_size: int | None = None,
    ) -> None:
        for name, value, minimum in (
            ("num_warmup", num_warmup, 0),
            ("num_samples", num_samples, 1),
            ("num_chains", num_chains, 1),
            ("thinning", thinning, 1),
        ):
            if not isinstance(value, int | np.integer) or value < minimum:
                raise ValueError(f"MCMC: {name} must be an integer >= {minimum}, got {value!r}")
        if chain_method not in _CHAIN_METHODS:
            raise ValueError(f"MCMC: chain_method must be one of {_CHAIN_METHODS}, got {chain_method!r}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"MCMC: chunk_size must be a positive integer, got {chunk_size!r}")
        self.sampler = sampler
        self.num_warmup = int(num_warmup)
        self.num_samples = int(num_samples)
        self.num_chains = int(num_chains)
        self.thinning = int(thinning)
        self.chain_method = chain_method
        self.progress_bar = progress_bar
        self.chunk_size = chunk_size
        self.last_state: HMCState | None = None
        # Seconds spent in warm-up (compilation included) and in sampling by the last run.
        self.warmup_time = 0.0
        self.sampling_time = 0.0
        # Every iteration's values, warm-up included, as NumPy arrays of axes (chain, iteration, ...).
        self._draws: dict[str, np.ndarray] | None = None
        self._backend = "numpy"
        self._samples: Any = None
        self._extra_fields: tuple[str, ...] = ()

    # ----------------------------------------------------------------------
    # Running
    # ----------------------------------------------------------------------

    def run(
        self, rng_key: Any, *args: Any, init_params: Any = None, extra_fields: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        """Run warm-up and sampling for every chain.

        Args:
            rng_key: a key from ``dx.random.key``.
            args: positional arguments of the model.
            init_params: initial unconstrained values, a pytree (with a
                leading ``num_chains`` axis when ``num_chains > 1``);
                required with ``potential_fn``.
            extra_fields: per-draw statistics to keep for
                :meth:`get_extra_fields`, from ``EXTRA_FIELDS``.
            kwargs: keyword arguments of the model.
        """
        unknown = [name for name in extra_fields if name not in EXTRA_FIELDS]
        if unknown:
            raise ValueError(f"MCMC.run: unknown extra_fields {unknown}; choose from {list(EXTRA_FIELDS)}")
        self._extra_fields = tuple(extra_fields)

        self.warmup_time = 0.0
        self.sampling_time = 0.0
        # Keys and initial states are handled as NumPy copies, because on JAX each eager
        # operation (unpacking a split, indexing, stacking) compiles a program of its own.
        key_backend = backend_name(rng_key)
        key_setup, key_init = to_backend(list(np.asarray(dx.random.split(rng_key))), key_backend)
        if key_backend == "jax":
            # The key's backend decides where the run happens, so NumPy data
            # moves to JAX with it. Other leaves (sizes, flags) stay Python values.
            args, kwargs = _numpy_arrays_to_jax((args, kwargs))
        z_init = self.sampler.setup(key_setup, self.num_warmup, self.num_chains, init_params, args, kwargs)
        backend = backend_name(z_init)
        self._backend = backend
        method = self.resolved_chain_method(backend)
        # Initial states only assemble arrays (the first iteration evaluates the potential),
        # so they are built on NumPy and moved in one transfer.
        host_keys = np.asarray(dx.random.split(key_init, self.num_chains))
        host_z = np.asarray(z_init)
        per_chain = [self.sampler.init_state(host_keys[c], host_z[c]) for c in range(self.num_chains)]

        total = self.num_warmup + self.num_samples
        if self.chunk_size is not None:
            chunk = self.chunk_size
        elif not self.progress_bar:
            chunk = total
        elif backend == "numpy":
            # Eager iterations cost the same in any chunk, so the bar can move with each one.
            chunk = 1
        else:
            chunk = max(1, math.ceil(total / 20))
        chunk = min(chunk, total)
        # One compiled function per run: every chain and every chunk calls it with arrays of
        # the same shapes. It is not kept across runs because it bakes in the model arguments.
        run_chunk = dx.jit(self._chunk_function(chunk, batched=method != "sequential"))

        if method == "sequential":
            states, draws = [], []
            for chain in range(self.num_chains):
                state = to_backend(per_chain[chain], backend)
                state, chain_draws = self._run_chunks(run_chunk, chunk, state, batched=False, label=f"chain {chain}")
                states.append(state)
                draws.append(chain_draws)
            self.last_state = _stack_on_host(states, backend)
            self._draws = {name: np.stack([d[name] for d in draws]) for name in draws[0]}
        else:
            states = _stack_on_host(per_chain, backend)
            if method == "parallel":
                states = _shard_chains(states, self.num_chains)
            self.last_state, self._draws = self._run_chunks(run_chunk, chunk, states, batched=True, label="")
        self._samples = None

    def resolved_chain_method(self, backend: str) -> str:
        """Return how a run on ``backend`` treats its chains: ``chain_method``, with ``"parallel"`` resolved.

        ``"parallel"`` stays parallel (sharded) when JAX has several devices.
        On one CPU device it becomes ``"sequential"``, as in NumPyro. Batched
        chains there gain little speed per draw, since one core computes
        every chain's leapfrog steps. They do lose time: every chain of the
        batch waits for the longest trajectory of each iteration, and the
        batched program takes longer to compile. On the benchmark's logistic
        regression (4 chains, 1000 + 1000 iterations, one core) sequential
        chains took 7.9 s against 10.1 s batched. On an accelerator, and on
        NumPy (where batching saves Python overhead), it becomes
        ``"vectorized"``.
        """
        if self.chain_method != "parallel":
            return self.chain_method
        if backend != "jax":
            return "vectorized"
        import jax

        if len(jax.devices()) > 1:
            return "parallel"
        return "sequential" if jax.default_backend() == "cpu" else "vectorized"

    def _run_chunks(
        self, run_chunk: Callable[..., Any], chunk: int, state: Any, *, batched: bool, label: str
    ) -> tuple[Any, dict[str, np.ndarray]]:
        """Run every chunk from ``state``; return the final state and the draws as NumPy arrays."""
        total = self.num_warmup + self.num_samples
        backend = backend_name(state.z)
        bar = _progress_bar(total, label, self.num_warmup) if self.progress_bar else None

        pieces: list[dict[str, np.ndarray]] = []
        start = 0
        while start < total:
            # No chunk straddles the end of warm-up, so each phase is timed on its own.
            end = self.num_warmup if start < self.num_warmup else total
            length = min(chunk, end - start)
            began = time.perf_counter()
            state, buffers = run_chunk(
                state,
                to_backend(np.int32(start), backend),
                to_backend(np.int32(length), backend),
            )
            # Copying to NumPy waits for the chunk (JAX runs asynchronously). Slicing and
            # joining the copies compiles nothing, unlike eager JAX operations.
            host = {name: np.asarray(buffer) for name, buffer in buffers.items()}
            elapsed = time.perf_counter() - began
            if start < self.num_warmup:
                self.warmup_time += elapsed
            else:
                self.sampling_time += elapsed
            pieces.append({name: values[:length] for name, values in host.items()})
            start += length
            if bar is not None:
                bar.update(length)
                if start >= self.num_warmup:
                    bar.set_description(f"{label} sample".strip())
                bar.set_postfix(step_size=float(np.mean(host["step_size"][length - 1])))
        if bar is not None:
            bar.close()
        draws = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
        if batched:
            # The chunks write iteration-major buffers; the host puts the chain axis first.
            draws = {name: np.ascontiguousarray(np.moveaxis(values, 0, 1)) for name, values in draws.items()}
        return state, draws

    def _chunk_function(self, chunk: int, batched: bool) -> Callable[[Any, Any, Any], Any]:
        sampler = self.sampler

        def step(state: Any, i: Any) -> Any:
            if batched:
                return dx.vmap(lambda s: sampler.sample_at(s, i))(state)
            return sampler.sample_at(state, i)

        def run_chunk(state: Any, start: Any, length: Any) -> Any:
            # Buffers of axes (iteration, chain, ...) when batched: moving the chain axis
            # first here would add a transpose program per buffer to the compile time.
            buffers = dx.tree_map(
                lambda leaf: dx.zeros((chunk, *leaf.shape), dtype=leaf.dtype, backend=backend_name(leaf)),
                _collect(state),
            )

            def body(j: Any, carry: Any) -> Any:
                s, bufs = carry
                s = step(s, start + j)
                bufs = dx.tree_map(lambda b, v: dx.index_update(b, j, v), bufs, _collect(s))
                return s, bufs

            return dx.fori_loop(0, length, body, (state, buffers))

        return run_chunk

    # ----------------------------------------------------------------------
    # Results
    # ----------------------------------------------------------------------

    def _kept(self, values: np.ndarray, group_by_chain: bool = True) -> Any:
        """Drop warm-up and thin ``values`` of axes ``(chain, iteration, ...)``; return them on the run's backend.

        With ``group_by_chain=False`` the chain and draw axes are merged into one.
        """
        draws = values[:, self.num_warmup :: self.thinning]
        if not group_by_chain:
            draws = draws.reshape((-1,) + draws.shape[2:])
        return to_backend(draws, self._backend)

    def get_samples(self, group_by_chain: bool = False) -> Any:
        """Return the draws: a pytree like the parameters, each leaf ``(num_chains * draws, ...)``.

        With ``group_by_chain=True`` the leaves have shape ``(num_chains, draws, ...)``.
        For a model the draws are of the constrained sites and deterministic
        values; for ``potential_fn`` they are the unconstrained parameters.
        """
        if self._draws is None:
            raise RuntimeError("MCMC.get_samples: no draws yet; call MCMC.run first")
        if self._samples is None:
            z = self._draws["z"]
            num_chains, num_draws = z.shape[0], len(range(self.num_warmup, z.shape[1], self.thinning))
            postprocess = dx.vmap(self.sampler.postprocess)

            def constrain(flat: Any) -> tuple[Any, Any]:
                # One compiled call returns both shapes, because reshaping eagerly on JAX compiles too.
                samples = postprocess(flat)
                by_chain = dx.tree_map(lambda x: dx.reshape(x, (num_chains, num_draws) + tuple(x.shape[1:])), samples)
                return samples, by_chain

            self._samples = dx.jit(constrain)(self._kept(z, group_by_chain=False))
        samples, by_chain = self._samples
        return by_chain if group_by_chain else samples

    def get_extra_fields(self, group_by_chain: bool = False) -> dict[str, Any]:
        """Return the per-draw statistics requested in ``run(extra_fields=...)``."""
        if self._draws is None:
            raise RuntimeError("MCMC.get_extra_fields: no draws yet; call MCMC.run first")
        return {
            name: self._kept(self._draws["step_size" if name == "adapt_state.step_size" else name], group_by_chain)
            for name in self._extra_fields
        }

    def sampler_stats(self) -> dict[str, Any]:
        """Return every recorded per-draw statistic of the kept draws, each of shape ``(num_chains, draws)``."""
        if self._draws is None:
            raise RuntimeError("MCMC.sampler_stats: no draws yet; call MCMC.run first")
        return {name: self._kept(values) for name, values in self._draws.items() if name != "z"}

    def divergences(self) -> Any:
        """Return the divergent-transition flags of the kept draws, shape ``(num_chains, draws)``."""
        if self._draws is None:
            raise RuntimeError("MCMC.divergences: no draws yet; call MCMC.run first")
        return self._kept(self._draws["diverging"])

    def print_summary(self, prob: float = 0.9) -> None:
        """Print :func:`ppl.summary` of the draws, with the number of divergences."""
        from .._summary import summary

        summary(self.get_samples(group_by_chain=True), prob=prob, divergences=self.divergences())


def _progress_bar(total: int, label: str, num_warmup: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        warnings.warn("MCMC: tqdm is not installed, so no progress bar is shown", stacklevel=4)
        return None
    phase = "warmup" if num_warmup > 0 else "sample"
    return tqdm(total=total, desc=f"{label} {phase}".strip())


def _numpy_arrays_to_jax(tree: Any) -> Any:
    """Return ``tree`` with its NumPy array leaves on JAX and every other leaf unchanged."""
    import jax

    return dx.tree_map(lambda leaf: jax.device_put(leaf) if type(leaf) is np.ndarray else leaf, tree)


def _stack_on_host(trees: list[Any], backend: str) -> Any:
    """Stack the leaves of per-chain ``trees`` along a new first axis in NumPy and return them on ``backend``.

    On JAX an eager stack would compile a program for each shape and dtype
    of the leaves, where one transfer of NumPy arrays compiles nothing.
    """
    return to_backend(dx.tree_map(lambda *leaves: np.stack(leaves), *trees), backend)


def _shard_chains(states: Any, num_chains: int) -> Any:
    """Place the chain axis of ``states`` across JAX devices; return ``states`` unchanged on one device."""
    if backend_name(states.z) != "jax":
        return states
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    if len(devices) < 2:
        return states
    count = math.gcd(len(devices), num_chains)
    if count < 2:
        warnings.warn(
            f"MCMC: {num_chains} chains do not split evenly over {len(devices)} devices, so they run vectorized on one",
            stacklevel=4,
        )
        return states
    mesh = Mesh(np.array(devices[:count]), ("chains",))
    sharding = NamedSharding(mesh, PartitionSpec("chains"))
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), states)
