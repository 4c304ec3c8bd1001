"""Differentiable JPEG approximation (YCbCr, 4:2:0 chroma, 8x8 DCT, quality-scaled quantisation).

Quantisation tables: ITU-T T.81 Annex K (K.1 luminance, K.2 chrominance), scaled with the IJG
quality formula (scale = 5000/q below 50, 200 - 2q above). Rounding uses the cubic approximation
round(x) + (x - round(x))^3 of Shin & Song (2017, "JPEG-resistant adversarial images") so gradients flow.
"""

import math

import torch
import torch.nn.functional as F

LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def dct_matrix() -> torch.Tensor:
    d = torch.zeros(8, 8)
    for k in range(8):
        for n in range(8):
            d[k, n] = (math.sqrt(1 / 8) if k == 0 else math.sqrt(2 / 8)) * math.cos(math.pi * (2 * n + 1) * k / 16)
    return d


DCT = dct_matrix()


def qtable(base: list, quality: float) -> torch.Tensor:
    q = max(1.0, min(100.0, quality))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    t = torch.floor((torch.tensor(base, dtype=torch.float32) * scale + 50) / 100).clamp(1, 255)
    return t.view(8, 8)


def soft_round(x: torch.Tensor) -> torch.Tensor:
    r = torch.round(x)
    return r + (x - r) ** 3


def blockwise(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x: N,1,H,W (level-shifted) -> quantised and reconstructed, same shape."""
    n, _, h, w = x.shape
    d = DCT.to(x)
    b = x.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    coef = d @ b @ d.T
    coef = soft_round(coef / table.to(x)) * table.to(x)
    b = d.T @ coef @ d
    return b.permute(0, 1, 3, 2, 4).reshape(n, 1, h, w)


def jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """x: N,3,H,W in [0,1] with H, W multiples of 16."""
    p = x * 255
    r, g, b = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    ql, qc = qtable(LUMA, quality), qtable(CHROMA, quality)
    y = blockwise(y - 128, ql) + 128
    cb = F.interpolate(blockwise(F.avg_pool2d(cb, 2) - 128, qc) + 128, scale_factor=2, mode="bilinear", align_corners=False)
    cr = F.interpolate(blockwise(F.avg_pool2d(cr, 2) - 128, qc) + 128, scale_factor=2, mode="bilinear", align_corners=False)
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return torch.cat([r, g, b], 1) / 255
