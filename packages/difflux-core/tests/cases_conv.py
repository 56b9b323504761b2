"""Sweep cases for convolution, pooling and the patch primitives.

Shapes are tiny because the sweep differentiates every case to second order
against finite differences, in both modes.
"""

from __future__ import annotations

import difflux.core as dx
from sweep_case import Case, uniform

CASES = [
    Case(
        "extract_patches_2d", lambda x: dx.extract_patches(x, (2, 2), stride=(1, 2), padding=1), uniform((1, 2, 3, 3))
    ),
    Case(
        "fold_patches_1d",
        lambda p: dx.fold_patches(p, (5,), stride=2, padding=[(1, 0)], dilation=2),
        uniform((2, 1, 2, 2)),
    ),
    Case("conv_1d_same_stride", lambda x, w: dx.conv(x, w, stride=2, padding="SAME"), uniform((2, 2, 5), (3, 2, 3))),
    Case(
        "conv_2d_dilated_groups",
        lambda x, w: dx.conv(x, w, padding=[(1, 0), (0, 2)], dilation=(2, 1), groups=2),
        uniform((1, 4, 4, 3), (2, 2, 2, 2)),
    ),
    Case("conv_2d_depthwise", lambda x, w: dx.conv(x, w, padding=1, groups=2), uniform((1, 2, 3, 3), (4, 1, 2, 2))),
    Case("conv_3d", lambda x, w: dx.conv(x, w, stride=(1, 2, 1)), uniform((1, 1, 3, 3, 2), (2, 1, 2, 2, 2))),
    Case("conv_unbatched", lambda x, w: dx.conv(x, w, padding="SAME"), uniform((2, 4), (1, 2, 3))),
    Case(
        "conv_transpose_1d",
        lambda x, w: dx.conv_transpose(x, w, stride=2, padding=1, output_padding=1, groups=2),
        uniform((1, 2, 3), (2, 2, 3)),
    ),
    Case(
        "conv_transpose_2d_same",
        lambda x, w: dx.conv_transpose(x, w, stride=(2, 1), padding="SAME", dilation=(1, 2)),
        uniform((1, 2, 2, 2), (2, 1, 2, 2)),
    ),
    Case("max_pool_2d_padded", lambda x: dx.max_pool(x, 2, stride=1, padding=1), uniform((1, 2, 3, 3))),
    Case("max_pool_1d_dilated", lambda x: dx.max_pool(x, 2, stride=1, dilation=2), uniform((2, 1, 6))),
    Case("max_pool_3d", lambda x: dx.max_pool(x, (2, 2, 1), padding="SAME"), uniform((1, 1, 3, 2, 2))),
    Case("avg_pool_2d", lambda x: dx.avg_pool(x, (2, 3), stride=(2, 1)), uniform((1, 2, 4, 4))),
    Case(
        "avg_pool_exclude_pad",
        lambda x: dx.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False),
        uniform((1, 1, 5)),
    ),
]
