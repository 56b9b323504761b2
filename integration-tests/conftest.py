"""Shared setup of the integration tests: JAX is the reference, in float64.

The integration tests compare difflux with peer libraries (JAX here), so JAX
is required. `python3 -m nox -s integration` installs it.
"""

from __future__ import annotations

import jax

# Enabled at import time, before any test creates a JAX array, so that both
# difflux on JAX and the reference compute in float64 and can be compared
# to about 1e-12.
jax.config.update("jax_enable_x64", True)
