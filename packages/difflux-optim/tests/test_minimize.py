"""``optim.minimize``: methods, structured x0, bounds forms, input errors and dx.jit."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import scipy.optimize

import difflux.core as dx
from difflux import optim
from difflux.optim._minimize import _METHODS

HAS_JAX = importlib.util.find_spec("jax") is not None


def rosenbrock(x):
    return dx.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def split_rosenbrock(params):
    """Rosenbrock of the vector (params['head'], params['tail']...)."""
    return rosenbrock(dx.concat([params["head"], params["tail"]]))


def squared_distance(x):
    return dx.sum((x - 3.0) ** 2)


START = np.array([-1.2, 1.0])


# --------------------------------------------------------------------------
# Methods and settings
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("bfgs", optim.BFGS),
        ("BFGS", optim.BFGS),
        ("lbfgs", optim.LBFGS),
        ("L-BFGS", optim.LBFGS),
        ("lbfgs-b", optim.LBFGSB),
        ("L-BFGS-B", optim.LBFGSB),
    ],
)
def test_method_names(name, kind):
    result = optim.minimize(rosenbrock, START, method=name, tol=1e-8)
    assert result.method == kind.name
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-6)


def test_default_method_follows_bounds():
    assert optim.minimize(squared_distance, np.zeros(2)).method == "lbfgs"
    assert optim.minimize(squared_distance, np.zeros(2), bounds=(0.0, 1.0)).method == "lbfgs-b"


def test_method_object_and_overrides():
    method = optim.LBFGS(history_size=3, tol=1e-3)
    result = optim.minimize(rosenbrock, START, method=method, tol=1e-9)
    assert result.tol == 1e-9
    assert float(result.grad_norm) <= 1e-9
    assert method.tol == 1e-3  # the object itself is unchanged


def test_settings_reach_the_result():
    result = optim.minimize(rosenbrock, START, method="lbfgs-b", tol=1e-7, ftol=0.0, max_iter=300, history_size=4)
    assert (result.tol, result.ftol, result.max_iter) == (1e-7, 0.0, 300)
    assert bool(result.success)


def test_method_table_is_complete():
    assert set(_METHODS.values()) == {optim.BFGS, optim.LBFGS, optim.LBFGSB}


# --------------------------------------------------------------------------
# Structured x0 and extra arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lbfgs-b"])
def test_dict_x0(method):
    x0 = {"head": np.array([-1.2]), "tail": np.array([1.0])}
    result = optim.minimize(split_rosenbrock, x0, method=method, tol=1e-8)
    assert set(result.x) == {"head", "tail"}
    assert result.x["head"].shape == (1,)
    np.testing.assert_allclose(result.x["head"], [1.0], atol=1e-6)
    np.testing.assert_allclose(result.x["tail"], [1.0], atol=1e-6)
    assert set(result.grad) == {"head", "tail"}


class Line(dx.Module):
    slope: np.ndarray
    intercept: np.ndarray
    label: str = "line"

    def __call__(self, t):
        return self.slope * t + self.intercept


def least_squares(model, t, y):
    return dx.sum((model(t) - y) ** 2)


def test_module_x0_with_args():
    t = np.linspace(0.0, 1.0, 7)
    y = 2.0 * t - 0.5
    x0 = Line(np.array(0.0), np.array(0.0), label="fit")
    result = optim.minimize(least_squares, x0, method="bfgs", args=(t, y), tol=1e-10)
    assert isinstance(result.x, Line)
    assert result.x.label == "fit"
    assert float(result.x.slope) == pytest.approx(2.0)
    assert float(result.x.intercept) == pytest.approx(-0.5)
    assert isinstance(result.grad, Line)


def test_mixed_dtypes_and_shapes_round_trip():
    x0 = {"matrix": np.ones((2, 2), dtype=np.float32), "scalar": 0.5}
    result = optim.minimize(lambda p: dx.sum(p["matrix"] ** 2) + (p["scalar"] - 1.0) ** 2, x0, tol=1e-6)
    assert result.x["matrix"].shape == (2, 2)
    assert result.x["matrix"].dtype == np.float32
    assert float(result.x["scalar"]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(result.x["matrix"], np.zeros((2, 2)), atol=1e-6)


def test_lbfgsb_agrees_with_scipy_on_structured_x0():
    # Data fitting with a positivity bound on the scale: y = scale * exp(-rate * t).
    t = np.linspace(0.0, 2.0, 9)
    y = 1.5 * np.exp(-0.7 * t) + 0.02 * np.sin(5 * t)

    def loss(params):
        return dx.sum((params["scale"] * dx.exp(-params["rate"] * t) - y) ** 2)

    x0 = {"rate": np.array(0.1), "scale": np.array(0.5)}
    bounds = ({"rate": 0.0, "scale": 0.0}, {"rate": 0.5, "scale": None})
    result = optim.minimize(loss, x0, bounds=bounds, tol=1e-10, ftol=1e-14)

    def loss_numpy(v):
        value, grad = dx.value_and_grad(loss)({"rate": v[0], "scale": v[1]})
        return float(value), np.array([grad["rate"], grad["scale"]])

    reference = scipy.optimize.minimize(
        loss_numpy,
        [0.1, 0.5],
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 0.5), (0.0, None)],
        options={"gtol": 1e-10, "ftol": 1e-15},
    )
    assert float(result.x["rate"]) == 0.5  # the rate's upper bound is active
    np.testing.assert_allclose([result.x["rate"], result.x["scale"]], reference.x, atol=1e-8)


# --------------------------------------------------------------------------
# Bounds forms
# --------------------------------------------------------------------------

TARGET = np.array([-1.0, 0.5, 2.0])


def to_target(x):
    return dx.sum((x - TARGET) ** 2)


@pytest.mark.parametrize(
    "bounds",
    [
        (0.0, 1.0),
        (np.zeros(3), np.ones(3)),
        ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
        [(0.0, 1.0), (0, 1), (0.0, 1.0)],
        scipy.optimize.Bounds(np.zeros(3), np.ones(3)),
    ],
    ids=["scalars", "arrays", "lists", "per_coordinate", "scipy_bounds"],
)
def test_bounds_forms_agree(bounds):
    result = optim.minimize(to_target, np.full(3, 0.5), bounds=bounds)
    np.testing.assert_array_equal(result.x, [0.0, 0.5, 1.0])


@pytest.mark.parametrize(
    "bounds",
    [(None, 1.0), [(None, 1.0), (-np.inf, 1.0), (None, 1)], (-math.inf, np.ones(3))],
    ids=["none_side", "none_and_inf", "infinite_lower"],
)
def test_one_sided_bounds(bounds):
    result = optim.minimize(to_target, np.zeros(3), bounds=bounds, tol=1e-10)
    np.testing.assert_allclose(result.x, [-1.0, 0.5, 1.0], atol=1e-9)
    assert result.x[2] == 1.0


def test_two_coordinate_pairs_are_per_coordinate():
    # As in SciPy: two pairs for two coordinates bound each coordinate.
    result = optim.minimize(lambda x: dx.sum((x - 5.0) ** 2), np.zeros(2), bounds=[(0.0, 1.0), (2.0, 3.0)])
    np.testing.assert_array_equal(result.x, [1.0, 3.0])


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_lower_above_upper_names_coordinate_and_values():
    with pytest.raises(ValueError, match=r"bounds of x0\[1\] \(coordinate 1\) are empty: lower 2.0 and upper 1.0"):
        optim.minimize(to_target, np.zeros(3), bounds=[(0.0, 1.0), (2.0, 1.0), (None, None)])


def test_lower_above_upper_in_structure_names_path():
    x0 = {"a": np.zeros(2), "b": np.zeros((2, 2))}
    lower = {"a": 0.0, "b": np.array([[0.0, 0.0], [0.0, 3.0]])}
    with pytest.raises(
        ValueError, match=r"bounds of x0\['b'\]\[1, 1\] \(coordinate 5\) are empty: lower 3.0 and upper 1.0"
    ):
        optim.minimize(lambda p: dx.sum(p["a"] ** 2) + dx.sum(p["b"] ** 2), x0, bounds=(lower, 1.0))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bounds": (np.nan, 1.0)}, ValueError, "contain NaN"),
        ({"bounds": (np.inf, np.inf)}, ValueError, "are empty"),
        ({"bounds": (np.zeros(4), 1.0)}, ValueError, r"shape \(4,\), which does not broadcast to the shape \(3,\)"),
        ({"bounds": (0.0, 1.0, 2.0)}, ValueError, "bounds must be a pair"),
        ({"bounds": ("low", 1.0)}, TypeError, "bounds must be numbers, arrays or None"),
        ({"method": "bfgs", "bounds": (0.0, 1.0)}, ValueError, "does not handle bounds"),
        ({"method": "lbfgs", "bounds": (0.0, 1.0)}, ValueError, "does not handle bounds"),
        ({"method": "newton"}, ValueError, "unknown method 'newton'"),
        ({"method": 3}, TypeError, "method must be a name"),
        ({"method": "bfgs", "history_size": 5}, ValueError, "history_size applies to 'lbfgs' and 'lbfgs-b'"),
        ({"tol": -1.0}, ValueError, "tol must be a finite number >= 0"),
        ({"ftol": math.nan}, ValueError, "ftol must be a finite number >= 0"),
        ({"max_iter": -1}, ValueError, "max_iter must be an integer >= 0"),
        ({"max_iter": 2.5}, ValueError, "max_iter must be an integer >= 0"),
        ({"history_size": 0}, ValueError, "history_size must be an integer >= 1"),
        ({"args": [1.0]}, TypeError, "args must be a tuple"),
    ],
)
def test_invalid_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        optim.minimize(to_target, np.zeros(3), **kwargs)


def test_structure_mismatch_of_bounds_raises():
    x0 = {"a": np.zeros(2), "b": np.zeros(1)}
    message = r"lower bounds have a dict with keys \['a'\] at the root where the parameters in x0 have a dict with keys \['a', 'b'\]"
    with pytest.raises(ValueError, match=message):
        optim.minimize(lambda p: dx.sum(p["a"] ** 2), x0, bounds=({"a": 0.0}, None))


@pytest.mark.parametrize(
    ("x0", "error", "match"),
    [
        (np.array([1, 2]), TypeError, "x0 has dtype int64"),
        ({"w": np.zeros(2), "n": np.array([3])}, TypeError, r"x0\['n'\] has dtype int64"),
        ({"w": np.zeros(2), "name": "w"}, TypeError, r"x0\['name'\] is a str"),
        ({}, ValueError, "x0 contains no arrays"),
        (np.zeros(0), ValueError, "x0 has no elements"),
        (np.zeros(2, dtype=np.complex128), TypeError, "complex128"),
    ],
    ids=["int_array", "int_leaf", "string_leaf", "empty_dict", "empty_array", "complex"],
)
def test_invalid_x0_raises(x0, error, match):
    with pytest.raises(error, match=match):
        optim.minimize(lambda x: 0.0, x0)


def test_non_callable_fun_raises():
    with pytest.raises(TypeError, match="fun must be callable"):
        optim.minimize(1.0, np.zeros(2))


def test_vector_valued_fun_raises():
    with pytest.raises(TypeError, match="scalar output"):
        optim.minimize(lambda x: x**2, np.zeros(2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"c1": 0.9, "c2": 0.5}, "0 < c1 < c2 < 1"), ({"max_line_search_evals": 0}, "max_line_search_evals")],
)
def test_invalid_method_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.BFGS(**kwargs)


# --------------------------------------------------------------------------
# dx.jit on JAX
# --------------------------------------------------------------------------

requires_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")

JIT_CASES = {
    "bfgs": {"method": "bfgs"},
    "lbfgs": {"method": optim.LBFGS(history_size=4)},
    "lbfgs-b": {"method": "lbfgs-b", "bounds": (-2.0, {"head": 0.5, "tail": 2.0})},
}


def assert_same_run(result, reference):
    np.testing.assert_allclose(np.asarray(result.x["head"]), reference.x["head"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(result.x["tail"]), reference.x["tail"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(result.fun), float(reference.fun), rtol=1e-8, atol=1e-20)
    assert int(result.status) == int(reference.status)
    assert int(result.n_iter) == int(reference.n_iter)
    assert int(result.n_fev) == int(reference.n_fev)
    assert result.message.split(" ")[:2] == reference.message.split(" ")[:2]


@requires_jax
@pytest.mark.parametrize("name", list(JIT_CASES))
def test_jit_on_jax_matches_numpy(name):
    # The same iteration runs as Python loops on NumPy and as one compiled
    # jax.lax program under jit: the runs take the same steps.
    x0 = {"head": np.array([-1.2]), "tail": np.array([1.0])}
    reference = optim.minimize(split_rosenbrock, x0, tol=1e-8, **JIT_CASES[name])
    x0_jax = {key: dx.asarray(value, backend="jax") for key, value in x0.items()}
    result = optim.minimize(split_rosenbrock, x0_jax, tol=1e-8, jit=True, **JIT_CASES[name])
    assert type(result.x["head"]) is type(x0_jax["head"])
    assert bool(result.success), result.message
    assert_same_run(result, reference)


@requires_jax
@pytest.mark.parametrize(
    "name", ["bfgs", pytest.param("lbfgs", marks=pytest.mark.slow), pytest.param("lbfgs-b", marks=pytest.mark.slow)]
)
def test_jit_matches_eager_on_jax(name):
    # Eager JAX runs the loops through jax.lax too, one operation at a time
    # outside them; dx.jit compiles the whole run.
    x0 = {"head": dx.asarray([-1.2], backend="jax"), "tail": dx.asarray([1.0], backend="jax")}
    eager = optim.minimize(split_rosenbrock, x0, tol=1e-8, **JIT_CASES[name])
    compiled = optim.minimize(split_rosenbrock, x0, tol=1e-8, jit=True, **JIT_CASES[name])
    assert bool(eager.success), eager.message
    assert_same_run(compiled, eager)


@requires_jax
@pytest.mark.slow
def test_user_jit_with_traced_bounds():
    t = dx.asarray(np.linspace(0.0, 1.0, 7), backend="jax")

    @dx.jit
    def fit(x0, upper, y):
        return optim.minimize(least_squares, x0, bounds=(None, upper), args=(t, y), tol=1e-10)

    x0 = Line(dx.asarray(0.0, backend="jax"), dx.asarray(0.0, backend="jax"))
    upper = Line(dx.asarray(1.5, backend="jax"), dx.asarray(10.0, backend="jax"))
    first = fit(x0, upper, dx.asarray(2.0 * t - 0.5, backend="jax"))
    second = fit(x0, upper, dx.asarray(-t + 1.0, backend="jax"))  # new data, same compiled function
    assert float(first.x.slope) == 1.5  # the slope's bound is active
    assert float(second.x.slope) == pytest.approx(-1.0)
    assert float(second.x.intercept) == pytest.approx(1.0)
    assert first.message.startswith("gradient norm")


@requires_jax
def test_message_inside_jit_is_explained():
    import jax

    def message_of(status):
        zero = dx.zeros_like(status, dtype=dx.float64)
        result = optim.MinimizeResult(
            x=zero,
            fun=zero,
            grad=zero,
            grad_norm=zero,
            n_iter=status,
            n_fev=status,
            success=status == 0,
            status=status,
            method="bfgs",
            tol=1e-5,
            ftol=0.0,
            max_iter=10,
        )
        assert "traced inside dx.jit" in result.message
        return result.status

    assert int(jax.jit(message_of)(dx.asarray(1, backend="jax"))) == 1


# --------------------------------------------------------------------------
# Transformations around minimize
# --------------------------------------------------------------------------


def energy(x, theta):
    return dx.sum((x - theta) ** 2 + 0.1 * x**4)


def energy_minimiser(theta):
    """Solve 2 (x - theta) + 0.4 x^3 = 0 coordinate by coordinate with SciPy."""
    return np.array([scipy.optimize.brentq(lambda x, t=t: 2.0 * (x - t) + 0.4 * x**3, -10.0, 10.0) for t in theta])


@pytest.mark.parametrize("backend", ["numpy", pytest.param("jax", marks=[requires_jax, pytest.mark.slow])])
def test_vmap_over_problems(backend):
    thetas = dx.asarray(np.array([[1.0, 2.0], [3.0, 4.0]]), backend=backend)

    def solve(theta):
        return optim.minimize(energy, dx.zeros_like(theta), args=(theta,), bounds=(None, 1.5), tol=1e-10).x

    solutions = dx.vmap(solve)(thetas)
    expected = np.minimum(np.stack([energy_minimiser(theta) for theta in np.asarray(thetas)]), 1.5)
    np.testing.assert_allclose(np.asarray(solutions), expected, atol=1e-8)


def test_implicit_derivative_with_custom_root():
    def stationary(x, args):
        return dx.grad(lambda z: energy(z, *args))(x)

    @dx.custom_root(stationary)
    def solve(x0, args):
        return optim.minimize(energy, x0, args=args, tol=1e-12).x

    theta = np.array([1.0, 2.0])
    slope = dx.grad(lambda t: dx.sum(solve(np.zeros(2), (t,))))(theta)
    x_star = energy_minimiser(theta)
    np.testing.assert_allclose(slope, 2.0 / (2.0 + 1.2 * x_star**2), rtol=1e-8)
