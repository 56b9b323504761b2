"""difflux.core: one automatic-differentiation engine over NumPy and JAX.

``import difflux.core as dx`` gives the Python Array API's functions under
their standard names, the field's extensions with derivative rules, the
differentiation API and the transformations. See the package README for the
design.
"""

from . import _operators, linalg, random, special, testing
from ._api import (
    grad,
    gradient,
    hessian,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    pullback,
    stop_gradient,
    value_and_grad,
    vjp,
)
from ._backend import backend, default_backend
from ._checkpoint import checkpoint, remat
from ._checkpoint_schedule import CheckpointStats, checkpoint_stats
from ._config import config
from ._control_cond import cond
from ._control_scan import fori_loop, scan
from ._control_while import while_loop
from ._core import MissingRuleError, Primitive, Tracer, TracerConversionError
from ._custom import CustomRuleError, custom_jvp, custom_vjp
from ._implicit import custom_root, fixed_point, root
from ._jax_bridge import from_jax
from ._jit import jit
from ._module import FrozenModuleError, Module, combine, field, is_array, partition, replace
from ._ops_broadcast import broadcast_arrays, broadcast_shapes, meshgrid
from ._ops_conv import conv, conv_transpose
from ._ops_creation import (
    arange,
    asarray,
    astype,
    backend_of,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from ._ops_dtype_info import (
    bool,
    can_cast,
    complex64,
    complex128,
    e,
    finfo,
    float16,
    float32,
    float64,
    iinfo,
    inf,
    int8,
    int16,
    int32,
    int64,
    isdtype,
    nan,
    newaxis,
    pi,
    result_type,
    uint8,
    uint16,
    uint32,
    uint64,
)
from ._ops_einsum import einsum
from ._ops_elementwise import (
    abs,
    acos,
    acosh,
    add,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    bitwise_and,
    bitwise_invert,
    bitwise_left_shift,
    bitwise_or,
    bitwise_right_shift,
    bitwise_xor,
    ceil,
    clip,
    copysign,
    cos,
    cosh,
    divide,
    equal,
    exp,
    expm1,
    floor,
    floor_divide,
    greater,
    greater_equal,
    hypot,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    positive,
    pow,
    reciprocal,
    remainder,
    round,
    sign,
    signbit,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    trunc,
    where,
)
from ._ops_extra import expit, log_sigmoid, log_softmax, logit, relu, segment_sum, sigmoid, softmax, softplus
from ._ops_index import at, index_add, index_update
from ._ops_manipulation import concat, flip, moveaxis, repeat, roll, stack, tile, tril, triu, unstack
from ._ops_matmul import linear, matmul, tensordot, vecdot
from ._ops_patches import extract_patches, fold_patches
from ._ops_pool import avg_pool, max_pool
from ._ops_reduction import (
    all,
    any,
    count_nonzero,
    cumprod,
    cumsum,
    cumulative_prod,
    cumulative_sum,
    diff,
    logsumexp,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from ._ops_search import (
    argmax,
    argmin,
    argsort,
    nonzero,
    searchsorted,
    sort,
    take,
    take_along_axis,
    top_k,
    unique_all,
    unique_counts,
    unique_inverse,
    unique_values,
)
from ._ops_shape import broadcast_to, expand_dims, matrix_transpose, permute_dims, reshape, squeeze
from ._ops_special import erf, erfc, erfinv, i0e, i1e, log_ndtr, ndtr, ndtri, xlog1py, xlogy
from ._ops_special_gamma import betaln, digamma, lgamma, polygamma
from ._ops_special_incomplete import betainc, gammainc, gammaincc
from ._protocols import Optimiser, apply_updates
from ._tree import (
    TreeDef,
    register_pytree_node,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)
from ._vmap import vmap

_operators.install()
