"""Importing difflux.ppl must work without JAX and must not import it."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_jax() -> None:
    code = "import sys; from difflux import ppl; assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)
