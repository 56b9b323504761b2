"""``dx.config``: process-wide settings (float64 on JAX, the default backend)."""

from __future__ import annotations

import importlib.util
import os
import sys

from . import _backend


class Config:
    """Process-wide settings of difflux, reached as ``dx.config``.

    Examples:
        >>> import difflux.core as dx
        >>> dx.config.default_backend
        'numpy'
    """

    def enable_float64(self, enabled: bool = True) -> None:
        """Turn float64 on (or off) for the JAX backend.

        JAX computes in float32 unless its ``jax_enable_x64`` flag is set;
        ODE solvers and Bayesian inference usually need float64, so this is
        the one call to make at the start of a program. It imports JAX when
        JAX is installed and sets the flag. Without JAX it does nothing,
        because NumPy already computes in float64.

        Call it before creating JAX arrays: arrays made earlier keep float32,
        and functions already compiled by ``dx.jit`` keep the precision they
        were compiled with.

        Examples:
            >>> import difflux.core as dx
            >>> dx.config.enable_float64()
        """
        if "jax" not in sys.modules and importlib.util.find_spec("jax") is None:
            return
        jax = _backend.jax_module()
        jax.config.update("jax_enable_x64", bool(enabled))

    @property
    def float64_enabled(self) -> bool:
        """Whether the JAX backend computes in float64 (always true on NumPy alone).

        Reading this never imports JAX: before JAX is imported it returns what
        JAX will start with (its ``JAX_ENABLE_X64`` environment variable).
        """
        jax = sys.modules.get("jax")
        if jax is None:
            return os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true", "yes", "on")
        return bool(jax.config.read("jax_enable_x64"))

    @property
    def default_backend(self) -> str:
        """The backend of creation functions outside any ``with dx.backend(...)`` block.

        It starts from the ``DIFFLUX_BACKEND`` environment variable (``numpy``
        when unset). Setting it changes the default for the whole process;
        ``with dx.backend(name):`` changes it for one block.
        """
        return _backend._default_stack[0]

    @default_backend.setter
    def default_backend(self, name: str) -> None:
        _backend.check_backend_name(name)
        if name == "jax":
            _backend.jax_module()
        _backend._default_stack[0] = name

    def __repr__(self) -> str:
        return f"Config(default_backend={self.default_backend!r}, float64_enabled={self.float64_enabled})"


config = Config()
