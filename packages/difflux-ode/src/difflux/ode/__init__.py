"""difflux.ode: ODE solvers that differentiate on NumPy and JAX.

``from difflux import ode`` gives :func:`solve`, the explicit Runge-Kutta
solvers (fixed step: :class:`Euler`, :class:`Heun`, :class:`Midpoint`,
:class:`Ralston`, :class:`RK4`; adaptive: :class:`Bosh3`, :class:`Dopri5`,
:class:`Tsit5`, :class:`Vern7`, :class:`Dopri8`), step-size controllers, :class:`SaveAt` and :class:`Solution`.
"""

from ._auto_switch import AutoSwitch
from ._brownian import BrownianPath
from ._controller import ConstantStepSize, PIDController
from ._events import Event, EventRecord
from ._implicit_rk import AbstractESDIRK, ESDIRKTableau
from ._neural_ode import NeuralODE
from ._runge_kutta import AbstractRungeKutta
from ._saveat import SaveAt
from ._sde import AbstractSDESolver, solve_sde
from ._sensitivity import (
    AbstractSensitivity,
    BacksolveAdjoint,
    ForwardSensitivity,
    InterpolatingAdjoint,
    RecursiveCheckpointAdjoint,
    choose_sensitivity,
)
from ._solution import ODESolveError, Solution, Status
from ._solve import solve
from ._solver_bdf import BDF
from ._solver_bosh3 import Bosh3
from ._solver_dopri5 import Dopri5
from ._solver_dopri8 import Dopri8
from ._solver_euler import Euler
from ._solver_euler_maruyama import EulerMaruyama
from ._solver_heun import Heun
from ._solver_implicit_euler import ImplicitEuler
from ._solver_kvaerno3 import Kvaerno3
from ._solver_kvaerno4 import Kvaerno4
from ._solver_kvaerno5 import Kvaerno5
from ._solver_midpoint import Midpoint
from ._solver_milstein import Milstein
from ._solver_ralston import Ralston
from ._solver_rk4 import RK4
from ._solver_rodas5p import Rodas5P
from ._solver_rosenbrock23 import Rosenbrock23
from ._solver_tsit5 import Tsit5
from ._solver_vern7 import Vern7
from ._tableau import ButcherTableau

__all__ = [
    "AbstractESDIRK",
    "AbstractRungeKutta",
    "AbstractSDESolver",
    "AutoSwitch",
    "AbstractSensitivity",
    "BacksolveAdjoint",
    "BDF",
    "Bosh3",
    "BrownianPath",
    "ButcherTableau",
    "ConstantStepSize",
    "Dopri5",
    "Dopri8",
    "Event",
    "EventRecord",
    "ESDIRKTableau",
    "Euler",
    "EulerMaruyama",
    "ForwardSensitivity",
    "Heun",
    "ImplicitEuler",
    "Kvaerno3",
    "Kvaerno4",
    "Kvaerno5",
    "InterpolatingAdjoint",
    "Midpoint",
    "Milstein",
    "NeuralODE",
    "ODESolveError",
    "PIDController",
    "RK4",
    "Rodas5P",
    "Ralston",
    "Rosenbrock23",
    "RecursiveCheckpointAdjoint",
    "SaveAt",
    "Solution",
    "Status",
    "Tsit5",
    "Vern7",
    "choose_sensitivity",
    "solve",
    "solve_sde",
]
