"""difflux.nn: neural-network layers, activations, initialisers and losses.

``from difflux import nn``. Models are ``dx.Module`` trees called as
functions, ``model(x)``, and they are in test mode by default.
``nn.train_mode(model)`` returns a copy in training mode. Its dropout
layers take a random key, ``model(x, key=key)``, and its batch
normalisation layers return new running statistics through
``y, model = nn.apply(model, x, key=key)``. The package README shows a
training step.
"""

from ._activations import (
    celu,
    elu,
    gelu,
    hard_sigmoid,
    hard_swish,
    hard_tanh,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    mish,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    swish,
    tanh,
)
from ._attention import MultiHeadAttention, dot_product_attention
from ._callbacks import Callback, EarlyStopping, FitState, History
from ._containers import Chain, Parallel, SkipConnection
from ._conv import Conv, ConvTranspose
from ._data import DataLoader
from ._dense import Bilinear, Dense, Embedding
from ._dropout import Dropout, dropout
from ._fit import FitResult, evaluate, fit
from ._freeze import freeze, partition_trainable
from ._initialisers import (
    fans,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    kaiming_normal,
    kaiming_uniform,
    lecun_normal,
    lecun_uniform,
    normal,
    ones,
    orthogonal,
    truncated_normal,
    uniform,
    zeros,
)
from ._layer import Layer, identity
from ._losses import (
    binary_cross_entropy,
    cross_entropy,
    huber,
    kl_divergence,
    logit_binary_cross_entropy,
    logit_cross_entropy,
    mae,
    mse,
    nll,
)
from ._metrics import accuracy, binary_accuracy
from ._normalisation import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from ._pooling import (
    AdaptiveMaxPool,
    AdaptiveMeanPool,
    Flatten,
    GlobalMaxPool,
    GlobalMeanPool,
    MaxPool,
    MeanPool,
)
from ._recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from ._serialization import CorruptWeightsError, WeightsMismatchError, load, save
from ._sharding import data_mesh, replicate, shard_batch
from ._state import apply, named_modules, state_field, test_mode, train_mode, trainable, update_state
from ._summary import summary

__all__ = [
    # layers
    "Layer",
    "Dense",
    "Bilinear",
    "Embedding",
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "MeanPool",
    "AdaptiveMaxPool",
    "AdaptiveMeanPool",
    "GlobalMaxPool",
    "GlobalMeanPool",
    "Flatten",
    "Dropout",
    "BatchNorm",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm",
    "RMSNorm",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "RNN",
    "LSTM",
    "GRU",
    "MultiHeadAttention",
    "Chain",
    "Parallel",
    "SkipConnection",
    # modes and state
    "train_mode",
    "test_mode",
    "apply",
    "update_state",
    "state_field",
    "trainable",
    "named_modules",
    "summary",
    # functional forms
    "dropout",
    "dot_product_attention",
    # activations
    "identity",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "swish",
    "sigmoid",
    "log_sigmoid",
    "hard_sigmoid",
    "hard_tanh",
    "hard_swish",
    "tanh",
    "softplus",
    "softsign",
    "mish",
    "softmax",
    "log_softmax",
    # initialisers
    "fans",
    "zeros",
    "ones",
    "normal",
    "uniform",
    "truncated_normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    # losses
    "mse",
    "mae",
    "huber",
    "cross_entropy",
    "logit_cross_entropy",
    "nll",
    "kl_divergence",
    "binary_cross_entropy",
    "logit_binary_cross_entropy",
    # training
    "DataLoader",
    "fit",
    "evaluate",
    "FitResult",
    "History",
    "FitState",
    "Callback",
    "EarlyStopping",
    "accuracy",
    "binary_accuracy",
    # freezing
    "freeze",
    "partition_trainable",
    # data parallelism
    "data_mesh",
    "shard_batch",
    "replicate",
    # saving and loading
    "save",
    "load",
    "WeightsMismatchError",
    "CorruptWeightsError",
]
