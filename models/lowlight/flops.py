"""Multiply-accumulate count from forward hooks on Conv2d / Linear plus the attention matmuls.

The model has a fixed-cost part (thumbnail branch, once per tile call) and a per-pixel part (gamma sampling,
Taylor gamma, refinement convs); two tile sizes give both by a linear fit. Elementwise ops (the Taylor series:
about 20 per channel per pixel) are not in the MAC count and are listed separately.
"""

import torch
import torch.nn as nn

from .arch import THUMB, Attention


def count_macs(model: nn.Module, h: int, w: int) -> int:
    total = [0]

    def conv_hook(m: nn.Conv2d, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += out.numel() * k

    def linear_hook(m: nn.Linear, inp, out):
        total[0] += out.numel() * m.in_features

    def attn_hook(m: Attention, inp, out):
        x, ctx = inp
        b, n, c = x.shape
        total[0] += 2 * b * n * ctx.shape[1] * c  # q k^T and a v

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, Attention):
            hooks.append(mod.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(torch.rand(1, 3, h, w), torch.rand(1, 3, THUMB, THUMB), torch.tensor([[0.0, 0.0, h, w]]))
    for hk in hooks:
        hk.remove()
    return total[0]


def flops_report(model: nn.Module) -> dict:
    a = count_macs(model, 64, 64)
    b = count_macs(model, 128, 128)
    per_pixel = (b - a) / (128 * 128 - 64 * 64)
    fixed = a - per_pixel * 64 * 64
    return {
        "fixed_macs_per_tile_call": int(round(fixed)),
        "macs_per_pixel": round(per_pixel, 1),
        "gmacs_per_megapixel": round(per_pixel * 1e6 / 1e9, 3),
        "gmacs_12mp_one_call": round((fixed + per_pixel * 12e6) / 1e9, 2),
    }
