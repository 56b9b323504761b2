"""The lynx-hare tutorial, docs/tutorials/lynx-hare.md, against the files it reports on.

The tutorial's numbers come from one recorded run of the study, kept in
docs/tutorials/lynx-hare-run/ (report.md and posterior_summary.csv), and from
the reference posterior that NumPyro and Diffrax computed,
examples/lynx_hare/reference/reference_posterior.csv. The tests check that
the page's comparison table is computed from those files and that every
decimal number on the page appears in them or in the study's source. They
also check that the page includes whole tables of the report, and that its
statements about the gradient methods of ode.solve and the UDE's size hold.
"""

from __future__ import annotations

import ast
import csv
import importlib
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "lynx_hare"
PAGE = ROOT / "docs" / "tutorials" / "lynx-hare.md"
RECORD = ROOT / "docs" / "tutorials" / "lynx-hare-run"
REFERENCE = STUDY / "reference" / "reference_posterior.csv"
COMPARISON_HEADER = "| parameter | this run | NumPyro reference | difference / MCSE | Stan case study |"

# Files whose numbers the page may quote: the run's record, the reference,
# the study's code and data, the study's test (its R-hat and MCSE bounds)
# and the NUTS source (the default target acceptance probability).
SOURCES = [
    RECORD / "report.md",
    RECORD / "posterior_summary.csv",
    REFERENCE,
    STUDY / "reference" / "compute_reference.py",
    STUDY / "lynx_hare.csv",
    STUDY / "bayes.py",
    STUDY / "ude.py",
    STUDY / "run.py",
    ROOT / "integration-tests" / "test_lynx_hare.py",
    ROOT / "packages" / "difflux-ppl" / "src" / "difflux" / "ppl" / "infer" / "_nuts.py",
]

# A decimal such as 0.5455, but not a part of a version (3.11.7) or a name.
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
# Any number in source text, scientific notation (3e-2) included.
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
REPORT_INCLUDE = re.compile(r'^--8<-- "docs/tutorials/lynx-hare-run/report\.md:(\d+):(\d+)"$', re.MULTILINE)


def page_prose() -> str:
    """Return the page's text with every run of whitespace made one space, so that rewrapping keeps phrases."""
    return " ".join(PAGE.read_text().split())


def read_rows(path: Path) -> dict[str, dict[str, float]]:
    with path.open() as file:
        return {
            row["parameter"]: {key: float(value) for key, value in row.items() if key != "parameter"}
            for row in csv.DictReader(file)
        }


def stan_literals() -> dict[str, str]:
    """Read ``START``, the Stan case study's posterior means, from compute_reference.py as written (``0.80``)."""
    source = (STUDY / "reference" / "compute_reference.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "START" for target in node.targets):
            assert isinstance(node.value, ast.Dict)
            return {
                ast.literal_eval(key): ast.get_source_segment(source, value) or ""
                for key, value in zip(node.value.keys, node.value.values, strict=True)
                if key is not None
            }
    raise AssertionError("compute_reference.py defines no START")


def stan_means() -> dict[str, float]:
    return {name: float(literal) for name, literal in stan_literals().items()}


def mean_differences() -> dict[str, float]:
    """Return each parameter's difference of means, run minus reference, in combined Monte Carlo standard errors."""
    run = read_rows(RECORD / "posterior_summary.csv")
    reference = read_rows(REFERENCE)
    differences = {}
    for name, ours in run.items():
        theirs = reference[name]
        # The run's Monte Carlo standard error is estimated from its bulk ESS,
        # as integration-tests/test_lynx_hare.py does.
        error = math.hypot(ours["sd"] / math.sqrt(ours["ess_bulk"]), theirs["mcse_mean"])
        differences[name] = (ours["mean"] - theirs["mean"]) / error
    return differences


def expected_comparison_rows() -> list[str]:
    """Build the page's comparison rows from the run's summary, the reference and the Stan means."""
    run = read_rows(RECORD / "posterior_summary.csv")
    reference = read_rows(REFERENCE)
    stan = stan_means()
    differences = mean_differences()
    rows = []
    for name, ours in run.items():
        theirs = reference[name]
        rows.append(
            f"| `{name}` | {ours['mean']:.4g} ({ours['sd']:.4g}) | {theirs['mean']:.4g} ({theirs['sd']:.4g}) "
            f"| {differences[name]:+.2f} | {stan[name]:g} |"
        )
    return rows


def page_comparison_rows(page: str) -> list[str]:
    lines = page.splitlines()
    start = lines.index(COMPARISON_HEADER) + 2  # skip the header and the alignment row
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_record_summary_matches_report_table() -> None:
    # The report prints 4 significant digits of the full values and the CSV
    # keeps 6. Rounding the CSV's value again may change the 4th digit, so a
    # report cell is checked to lie within half a unit of that digit.
    summary = read_rows(RECORD / "posterior_summary.csv")
    report = {}
    for line in (RECORD / "report.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in summary:
            report[cells[0]] = [float(cell) for cell in cells[1:]]
    assert sorted(report) == sorted(summary)
    for name, row in summary.items():
        for column, printed in zip(("mean", "sd", "q5", "q50", "q95", "r_hat", "ess_bulk"), report[name], strict=True):
            value = row[column]
            half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 3)
            assert abs(printed - value) <= half_unit * (1 + 1e-6), (name, column, printed, value)


def test_comparison_table_is_computed_from_records() -> None:
    page = PAGE.read_text()
    assert page_comparison_rows(page) == expected_comparison_rows()


def test_comparison_prose_matches_table() -> None:
    page = page_prose()
    differences = mean_differences()
    largest = max(differences, key=lambda name: abs(differences[name]))
    assert f"All eight means agree with the reference within {abs(differences[largest]):.2f} combined" in page
    assert f"The largest difference is `{largest}`'s" in page
    assert abs(differences[largest]) < 4.0

    run = read_rows(RECORD / "posterior_summary.csv")
    unequal = []
    for name, literal in stan_literals().items():
        digits = len(literal.partition(".")[2])
        if round(run[name]["mean"], digits) != float(literal):
            unequal.append((name, f"{run[name]['mean']:.{digits}f}", literal))
    assert unequal == [("hare0", "34.0", "33.9")]
    assert "The exception is `hare0`, 34.0 against 33.9." in page


def test_report_includes_are_whole_tables() -> None:
    report = (RECORD / "report.md").read_text().splitlines()
    ranges = [(int(first), int(last)) for first, last in REPORT_INCLUDE.findall(PAGE.read_text())]
    assert ranges, "the page includes no lines of report.md"
    for first, last in ranges:
        included = report[first - 1 : last]  # snippet line numbers start at 1 and include the last line
        assert all(line.startswith("|") for line in included), (first, last, included)
        assert report[first - 2] == "", f"line {first - 1} of report.md continues the table"
        assert last == len(report) or report[last] == "", f"line {last + 1} of report.md continues the table"


def test_decimal_numbers_come_from_records() -> None:
    known = set()
    for path in SOURCES:
        known.update(float(token) for token in NUMBER.findall(path.read_text()))
    for row in expected_comparison_rows():
        known.update(abs(float(token)) for token in NUMBER.findall(row))
    # The run's means rounded to the digits of the Stan case study's values.
    run = read_rows(RECORD / "posterior_summary.csv")
    for name, literal in stan_literals().items():
        known.add(round(run[name]["mean"], len(literal.partition(".")[2])))
    unknown = [token for token in DECIMAL.findall(PAGE.read_text()) if float(token) not in known]
    assert unknown == []


@pytest.fixture
def study_modules() -> Any:
    sys.path.insert(0, str(STUDY))
    try:
        yield importlib.import_module("bayes"), importlib.import_module("ude")
    finally:
        sys.path.remove(str(STUDY))


@pytest.fixture
def chosen_sensitivities(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the class name of each sensitivity method that ``ode.solve`` chooses by itself."""
    # ode.solve looks choose_sensitivity up in its own module, the private
    # difflux.ode._solve, so the spy replaces it there.
    solve_module = importlib.import_module("difflux.ode._solve")
    chosen: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> ode.AbstractSensitivity:
        method = ode.choose_sensitivity(*args, **kwargs)
        chosen.append(type(method).__name__)
        return method

    monkeypatch.setattr(solve_module, "choose_sensitivity", spy)
    return chosen


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_bayes_gradient_uses_forward_sensitivity(
    backend: str, study_modules: Any, chosen_sensitivities: list[str]
) -> None:
    bayes, _ = study_modules
    years = dx.asarray(np.arange(21.0), backend=backend)
    # bayes.vector_field takes theta = (alpha, -gamma, -beta, delta).
    theta = dx.asarray(np.array([0.55, -0.8, -0.028, 0.024]), backend=backend)
    z0 = dx.asarray(np.array([33.9, 5.9]), backend=backend)

    def total(theta: Any, z0: Any) -> Any:
        z, _ = bayes.populations(theta, z0, years)
        return dx.sum(z)

    gradient = dx.grad(total, argnums=(0, 1))
    if backend == "jax":
        # Compiled because op-by-op JAX is slow. The spy records the choice once, while tracing.
        gradient = dx.jit(gradient)
    with dx.backend(backend):
        grads = gradient(theta, z0)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert chosen_sensitivities == ["ForwardSensitivity"]
    assert "it chooses `ForwardSensitivity`" in page_prose()


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_ude_gradient_uses_checkpointed_adjoint(
    backend: str, study_modules: Any, chosen_sensitivities: list[str]
) -> None:
    _, ude = study_modules
    table = np.genfromtxt(STUDY / "lynx_hare.csv", delimiter=",", names=True)
    counts = np.stack([table["hare"], table["lynx"]], axis=-1)[:16]
    years = dx.asarray(np.arange(16.0), backend=backend)
    log_counts = dx.asarray(np.log(counts), backend=backend)

    with dx.backend(backend):
        model = ude.init_ude(counts[0], dx.random.key(0, backend=backend), backend)
        gradient = dx.grad(ude.fit_loss)
        if backend == "jax":
            gradient = dx.jit(gradient)
        grads = gradient(model, years, log_counts)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in dx.tree_leaves(grads))
    if backend == "jax":
        assert chosen_sensitivities == ["RecursiveCheckpointAdjoint"]
        assert "choice of the gradient method is `RecursiveCheckpointAdjoint`" in page_prose()
    else:
        # On NumPy the UDE names Tsit5 and ForwardSensitivity itself, so nothing is chosen.
        assert chosen_sensitivities == []
        assert "On NumPy, `UDE.solve` asks for Tsit5 with `ForwardSensitivity`" in page_prose()


def test_ude_parameter_count_matches_tutorial(study_modules: Any) -> None:
    _, ude = study_modules
    with dx.backend("numpy"):
        model = ude.init_ude(np.array([30.0, 4.0]), dx.random.key(0, backend="numpy"), "numpy")
    count = sum(int(np.size(leaf)) for leaf in dx.tree_leaves(model))
    assert f"the model has {count} parameters" in page_prose()
