"""difflux.optim: first-order optimisation rules, their composition, and schedules.

``from difflux import optim`` gives rules (``optim.Adam()``), transformations
that compose with them (``optim.chain``, clipping, ``optim.masked``), the
Optimisers.jl-style interface (``optim.setup``, ``optim.update``) and
learning-rate schedules. Every rule and transformation follows core's
optimiser protocol (``init``, ``update``), so ``nn.fit`` and ``ppl.SVI``
take them directly. ``optim.minimize`` and the quasi-Newton methods
(``optim.BFGS``, ``optim.LBFGS``, ``optim.LBFGSB``) minimise a function of
the parameters directly, with line searches. See the package README for the
design.
"""

from ._base import Leafwise, Rule, RuleState, Transform
from ._bfgs import BFGS
from ._chain import Chain, chain
from ._clip import ClipGlobalNorm, ClipNorm, ClipValue
from ._lbfgs import LBFGS
from ._lbfgsb import LBFGSB
from ._line_search import LineSearchResult, line_search
from ._masked import Masked, masked
from ._minimize import minimize
from ._plateau import PlateauState, ReduceOnPlateau, reduce_on_plateau
from ._quasi_newton import QuasiNewton, QuasiNewtonState
from ._quasi_newton_result import MinimizeResult, Status
from ._rules_adam import AdaBelief, Adam, AdaMax, AdamW, AMSGrad, NAdam, RAdam
from ._rules_adaptive import AdaDelta, AdaGrad, RMSProp, Rprop
from ._rules_lion_lamb import Lamb, Lion
from ._rules_sgd import Descent, Momentum, Nesterov
from ._schedules import (
    Schedule,
    constant,
    cosine_decay,
    exponential_decay,
    one_cycle,
    piecewise_constant,
    polynomial_decay,
    warmup_cosine,
)
from ._state import OptimiserState, adjust, freeze, report, setup, thaw, update
from ._weight_decay import WeightDecay
from ._wrappers import Accumulate, AccumulateState, SkipNonFinite, SkipState, accumulate, skip_nonfinite

__all__ = [
    # rules
    "Descent",
    "Momentum",
    "Nesterov",
    "Adam",
    "AdamW",
    "NAdam",
    "RAdam",
    "AdaMax",
    "AMSGrad",
    "AdaBelief",
    "AdaGrad",
    "AdaDelta",
    "RMSProp",
    "Rprop",
    "Lion",
    "Lamb",
    # transformations and composition
    "ClipValue",
    "ClipNorm",
    "ClipGlobalNorm",
    "WeightDecay",
    "chain",
    "masked",
    "accumulate",
    "skip_nonfinite",
    "reduce_on_plateau",
    # the setup/update interface
    "setup",
    "update",
    "adjust",
    "freeze",
    "thaw",
    "report",
    # quasi-Newton methods
    "minimize",
    "BFGS",
    "LBFGS",
    "LBFGSB",
    "line_search",
    "MinimizeResult",
    "LineSearchResult",
    "QuasiNewton",
    "QuasiNewtonState",
    "Status",
    # schedules
    "constant",
    "piecewise_constant",
    "exponential_decay",
    "polynomial_decay",
    "cosine_decay",
    "warmup_cosine",
    "one_cycle",
    # types, for annotations, isinstance and new rules
    "Transform",
    "Leafwise",
    "Rule",
    "Schedule",
    "RuleState",
    "OptimiserState",
    "Chain",
    "Masked",
    "Accumulate",
    "AccumulateState",
    "SkipNonFinite",
    "SkipState",
    "ReduceOnPlateau",
    "PlateauState",
]
