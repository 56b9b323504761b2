"""Development tasks of the difflux repository: tests, lint, docs and examples.

`python3 -m nox -l` lists the sessions. `python3 -m nox -s ci` runs what CI
runs (`.ci/run`), and `python3 -m nox -s quickstart` runs the first example.

Every session builds its own virtual environment with pip and installs the
packages under packages/ from this checkout (editable), so a session tests
the working tree, not a release. Sessions run on the Python that runs nox.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent
# Each distribution is a folder under packages/ with its own pyproject.toml.
PACKAGES = sorted(path.parent for path in ROOT.glob("packages/*/pyproject.toml"))

# The sessions `ci` runs, in order. Nox carries on after a failed session and
# exits non-zero at the end, so one CI run reports every failing session.
CI_SESSIONS = ["tests", "tests_numpy_only", "tests_slow", "integration", "lint", "docs"]

# pytest-xdist worker count: "auto" is one worker per CPU core, unless the
# environment variable PYTEST_XDIST_AUTO_NUM_WORKERS sets another number.
XDIST = ["-n", "auto"]
# Print the slowest tests, the candidates for the `slow` marker.
DURATIONS = ["--durations=10"]

# The exact PyTorch release of the benchmarks: other releases of torch may
# resolve to a CUDA build of several gigabytes.
TORCH = "torch==2.13.0"

NO_JAX_IMPORT = "import sys, difflux.core; assert 'jax' not in sys.modules, 'import difflux.core imported jax'"
JAX_ABSENT = (
    "import importlib.util, sys; "
    "sys.exit('jax is installed, so this session would not test the NumPy-only install' "
    "if importlib.util.find_spec('jax') else 0)"
)


def _extras_of(package: Path) -> set[str]:
    with (package / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    return set(project.get("optional-dependencies", {}))


def install_packages(session: nox.Session, *extras: str) -> None:
    """Install every package of packages/ in editable mode with those of ``extras`` it defines.

    One pip call installs them all, so a package's dependency on difflux-core
    resolves to the local checkout rather than to an index.
    """
    requirements = []
    for package in PACKAGES:
        chosen = sorted(set(extras) & _extras_of(package))
        suffix = f"[{','.join(chosen)}]" if chosen else ""
        requirements += ["-e", f"{package.relative_to(ROOT).as_posix()}{suffix}"]
    session.install(*requirements)


def package_test_folders() -> list[str]:
    return [(package / "tests").relative_to(ROOT).as_posix() for package in PACKAGES if (package / "tests").is_dir()]


def run_pytest(session: nox.Session, marker: str, *, allow_empty: bool = False) -> None:
    """Run each package's tests in its own pytest process.

    Separate processes keep the test modules of different packages, which
    share file names such as conftest.py and test_sweep.py, apart.
    """
    # pytest exits with 5 when it collects no test, which is expected only
    # where a package has no test with this marker yet.
    success_codes = [0, 5] if allow_empty else [0]
    for folder in package_test_folders():
        session.run("pytest", folder, "-m", marker, *XDIST, *DURATIONS, *session.posargs, success_codes=success_codes)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the unit tests of every package on NumPy and JAX, without slow tests."""
    install_packages(session, "jax", "test")
    session.run("python", "-c", NO_JAX_IMPORT)
    run_pytest(session, "not slow")


@nox.session
def tests_slow(session: nox.Session) -> None:
    """Run the unit tests marked slow."""
    install_packages(session, "jax", "test")
    run_pytest(session, "slow", allow_empty=True)


@nox.session
def tests_numpy_only(session: nox.Session) -> None:
    """Run the unit tests with JAX not installed: the JAX cases skip."""
    install_packages(session, "test")
    session.run("python", "-c", JAX_ABSENT)
    session.run("python", "-c", NO_JAX_IMPORT)
    run_pytest(session, "not slow")


@nox.session
def integration(session: nox.Session) -> None:
    """Run integration-tests/, which compare difflux with JAX and other peers."""
    install_packages(session, "jax", "test")
    # The peers are test-only oracles; no package depends on them: Optax for
    # the optimisers, Diffrax for the ODE solvers, NumPyro for the samplers
    # and distributions.
    session.install("optax", "diffrax", "numpyro")
    session.run("pytest", "integration-tests", *XDIST, *DURATIONS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff and types with pyright (settings in pyproject.toml)."""
    # Ruff's formatter output can change between minor releases, so the
    # minor release is fixed. The nodejs extra brings pyright's Node.js.
    session.install("ruff>=0.17,<0.18", "pyright[nodejs]>=1.1.400")
    install_packages(session, "jax")

    # Every check runs even when an earlier one fails, so one run lists all
    # the problems.
    failed = []
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["pyright"]):
        try:
            session.run(*command)
        except CommandFailed:
            failed.append(" ".join(command))
    if failed:
        session.error(f"lint failed: {'; '.join(failed)}")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/, treating warnings as errors."""
    # mkdocstrings imports the packages to read the signatures and docstrings
    # of functions made at run time, so every package is installed.
    install_packages(session, "docs")
    # Material for MkDocs prints a banner about MkDocs 2.0 on every build
    # unless this variable is set. The docs extra keeps MkDocs below 2.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def lynx_hare(session: nox.Session) -> None:
    """Run the flagship study examples/lynx_hare/run.py (on JAX unless `-- --backend numpy`)."""
    install_packages(session, "jax")
    # The study's plots; the packages need no plotting library themselves.
    session.install("matplotlib")
    session.run("python", "examples/lynx_hare/run.py", *session.posargs)


@nox.session
def lynx_hare_numpy(session: nox.Session) -> None:
    """Run the flagship study on NumPy with JAX not installed, 4 chains x (500 warm-up + 500 draws) by default.

    Arguments after `--` replace the default options.
    """
    install_packages(session)
    session.install("matplotlib")
    session.run("python", "-c", JAX_ABSENT)
    options = session.posargs or ["--chains", "4", "--warmup", "500", "--draws", "500"]
    session.run("python", "examples/lynx_hare/run.py", "--backend", "numpy", *options)


@nox.session
def quickstart(session: nox.Session) -> None:
    """Run examples/core_quickstart.py on NumPy, and on JAX."""
    install_packages(session, "jax")
    session.run("python", "examples/core_quickstart.py", *session.posargs)


@nox.session
def examples(session: nox.Session) -> None:
    """Run the nn examples briefly (two epochs) on NumPy and on JAX; not part of CI.

    The slow tests packages/difflux-nn/tests/test_examples.py,
    test_example_gan.py and test_example_data_parallel.py check their
    results in CI instead.
    """
    install_packages(session, "jax", "examples")
    for script in ("examples/digits_mlp.py", "examples/digits_cnn.py"):
        for backend in ("numpy", "jax"):
            session.run("python", script, "--backend", backend, "--epochs", "2", "--no-progress", *session.posargs)
    for backend in ("numpy", "jax"):
        session.run("python", "examples/gan_digits.py", "--backend", backend, "--epochs", "2", "--quiet")
    # The data-parallel example sets up 4 simulated CPU devices itself.
    session.run("python", "examples/data_parallel.py", "--epochs", "1")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run benchmarks/run.py beside PyTorch, HIPS autograd, JAX and Equinox (not part of CI)."""
    install_packages(session, "jax")
    # Equinox and Optax are the compiled peers of the Adam-step benchmark.
    session.install(TORCH, "autograd", "equinox", "optax")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=False)
def ci(session: nox.Session) -> None:
    """Queue every session CI runs (what `.ci/run` calls)."""
    for name in CI_SESSIONS:
        session.notify(name)
