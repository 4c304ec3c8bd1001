"""Gamma correction x**g without pow: x**g = exp(g * ln x), with exp evaluated by a truncated Taylor series.

Range reduction keeps the series short: for x in [EPS, 1] and g in [G_MIN, G_MAX], t = g ln x lies in
[G_MAX ln EPS, 0]. We evaluate exp(t) = exp(t / 2**K) ** (2**K), where u = t / 2**K lies in [U_MIN, 0]; exp(u) is
expanded around the midpoint u0 = U_MIN / 2 with N_TERMS terms (Horner form), then squared K times.
Truncation bound for exp(u): |u - u0|**N / N! * exp(|u-u0|) relative, which K squarings multiply by about 2**K.
The ONNX graph computes exactly these ops (Log, Mul, Add, Mul for squaring); no Pow node.
"""

import math

import torch

EPS = 2.0**-10
G_MIN, G_MAX = 0.2, 3.0
K = 5
N_TERMS = 6
U_MIN = G_MAX * math.log(EPS) / 2**K
U0 = U_MIN / 2
_COEF = [math.exp(U0) / math.factorial(n) for n in range(N_TERMS)]


def taylor_exp(t: torch.Tensor) -> torch.Tensor:
    d = t / 2**K - U0
    acc = torch.full_like(d, _COEF[-1])
    for c in reversed(_COEF[:-1]):
        acc = acc * d + c
    for _ in range(K):
        acc = acc * acc
    return acc


def taylor_pow(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """x**g for x clamped to [EPS, 1] and g in [G_MIN, G_MAX]."""
    return taylor_exp(g * torch.log(x.clamp(EPS, 1.0)))


def error_table() -> dict:
    """Max/mean abs and relative error against torch.pow over a dense grid of x and g (float64)."""
    x = torch.linspace(EPS, 1.0, 20001, dtype=torch.float64)[:, None]
    g = torch.linspace(G_MIN, G_MAX, 281, dtype=torch.float64)[None, :]
    ref = torch.pow(x, g)
    approx = taylor_exp(g * torch.log(x))
    err = (approx - ref).abs()
    x32, g32 = x.float(), g.float()
    err32 = (taylor_pow(x32, g32).double() - ref).abs()
    return {
        "x_range": [EPS, 1.0],
        "gamma_range": [G_MIN, G_MAX],
        "terms": N_TERMS,
        "squarings": K,
        "expansion_point_u0": U0,
        "max_abs_err_float64": err.max().item(),
        "max_rel_err_float64": (err / ref).max().item(),
        "max_abs_err_float32": err32.max().item(),
        "mean_abs_err_float32": err32.mean().item(),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(error_table(), indent=1))
