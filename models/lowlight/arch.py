"""IAGC-style low-light network: illumination-aware gamma maps, coarse to fine, Taylor-series gamma.

Two resolutions:
- a fixed 128x128 thumbnail of the whole photo feeds a conv encoder and a local-to-global Transformer
  (window attention inside 4x4-token windows, then every token attends to pooled region tokens, so a dark
  region borrows statistics from bright regions far away). It predicts a global colour matrix, a coarse
  gamma map (8x8) and a finer correction (32x32).
- the full-resolution tile (any size) samples the gamma map at its own global pixel positions (roi), applies
  gain then Taylor-series gamma, and a tiny 3-layer conv refines (denoises) the result.
Because the gamma map is sampled in global coordinates, tiles of one photo get identical gamma values
wherever they overlap; only the 3-layer refinement needs overlap (receptive field 7x7).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .taylor import G_MAX, G_MIN, taylor_pow

THUMB = 128  # 16x downscale of the tile path is ample for a smooth gamma map, and 4x cheaper than 256 on 2 cores


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, c // h).transpose(1, 2)
        k, v = self.kv(ctx).reshape(b, ctx.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // h), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class LocalGlobalBlock(nn.Module):
    """Window attention (local) followed by attention to pooled region tokens (global); fixed token grid (8x8 for the 128 px thumbnail)."""

    def __init__(self, dim: int, heads: int = 4, window: int = 4, grid: int = 16):
        super().__init__()
        self.window, self.grid = window, grid
        self.n1, self.n2, self.n3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.local = Attention(dim, heads)
        self.glob = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: B, C, G, G
        b, c, g, _ = x.shape
        w = self.window
        t = x.reshape(b, c, g // w, w, g // w, w).permute(0, 2, 4, 3, 5, 1).reshape(-1, w * w, c)
        tn = self.n1(t)
        t = t + self.local(tn, tn)
        t = t.reshape(b, g // w, g // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, g * g, c)
        regions = F.avg_pool2d(t.transpose(1, 2).reshape(b, c, g, g), w).flatten(2).transpose(1, 2)
        t = t + self.glob(self.n2(t), self.n2(regions))
        t = t + self.mlp(self.n3(t))
        return t.transpose(1, 2).reshape(b, c, g, g)


def conv(cin: int, cout: int, stride: int = 1, act: type[nn.Module] = nn.GELU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act())


class IAGC(nn.Module):
    def __init__(self, widths=(16, 32, 64, 96), blocks: int = 2, refine: int = 8):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.enc1 = conv(3, c1, 2)  # 128; kept thin: it dominates the thumbnail cost
        self.enc2 = conv(c1, c2, 2)  # 64
        self.enc3 = nn.Sequential(conv(c2, c3, 2), conv(c3, c3))  # 32
        self.enc4 = conv(c3, c4, 2)  # 16
        self.former = nn.Sequential(*[LocalGlobalBlock(c4) for _ in range(blocks)])
        self.coarse = nn.Conv2d(c4, 3, 1)
        self.ccm = nn.Linear(c4, 12)  # 3 log-gains + 9 mixing entries
        self.fine = nn.Sequential(conv(c4 + c2 + 3, c2), nn.Conv2d(c2, 3, 3, 1, 1))
        # Full-resolution path: ReLU, because erf-GELU over every pixel cost as much as the convs in onnxruntime.
        self.refine = nn.Sequential(conv(6, refine, act=nn.ReLU), conv(refine, refine, act=nn.ReLU), nn.Conv2d(refine, 3, 3, 1, 1))
        # Start as the identity mapping: gamma 1, unit gains, zero refinement.
        g1 = (1.0 - G_MIN) / (G_MAX - G_MIN)
        nn.init.zeros_(self.coarse.weight)
        nn.init.constant_(self.coarse.bias, math.log(g1 / (1 - g1)))
        for m in (self.ccm, self.fine[-1], self.refine[-1]):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def gamma_logits(self, thumb: torch.Tensor):
        f2 = self.enc2(self.enc1(thumb))
        f4 = self.former(self.enc4(self.enc3(f2)))
        coarse = self.coarse(f4)
        up = F.interpolate(torch.cat([f4, coarse], 1), size=f2.shape[-2:], mode="bilinear", align_corners=False)
        fine = up[:, -3:] + self.fine(torch.cat([up, f2], 1))
        p = self.ccm(f4.mean((2, 3)))
        gains = torch.exp(p[:, :3])
        ccm = gains[:, :, None] * torch.eye(3, dtype=p.dtype) + 0.1 * p[:, 3:].reshape(-1, 3, 3)  # diag_embed has no ONNX export
        return coarse, fine, ccm

    def forward(self, image: torch.Tensor, thumb: torch.Tensor, roi: torch.Tensor):
        """image: tile B,3,h,w in [0,1]; thumb: B,3,THUMB,THUMB of the whole photo; roi: B,4 = top, left, H, W."""
        _, fine, ccm = self.gamma_logits(thumb)
        h, w = image.shape[-2], image.shape[-1]
        logits = sample_separable(fine, roi, h, w)
        gamma = G_MIN + (G_MAX - G_MIN) * torch.sigmoid(logits)
        # A batched matmul, not einsum: onnxruntime's Einsum kernel was 4x slower than MatMul at full resolution.
        lit = torch.matmul(ccm, image.flatten(2)).reshape(image.shape)
        base = taylor_pow(lit, gamma)
        out = base + self.refine(torch.cat([image, base], 1))
        return out, base


def bilinear_rows(start: torch.Tensor, total: torch.Tensor, n: int, size: int) -> torch.Tensor:
    """Bilinear weights (B, n, size) that sample a map of `size` cells at n consecutive pixel centres starting at
    global pixel `start` of an axis `total` pixels long (align_corners=False, border clamp): row r is the hat
    function max(0, 1 - |s_r - i|) at the clamped source coordinate s_r, i.e. weights 1-f and f on cells
    floor(s_r) and floor(s_r)+1."""
    pos = torch.arange(n, dtype=start.dtype, device=start.device)[None, :] + start  # B, n
    src = ((pos + 0.5) * size / total - 0.5).clamp(0, size - 1)
    cells = torch.arange(size, dtype=start.dtype, device=start.device)
    return torch.relu(1 - (src[:, :, None] - cells).abs())


def sample_separable(grid_map: torch.Tensor, roi: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The gamma-logit map sampled at every pixel of the tile in global coordinates. Identical (to float rounding)
    to F.grid_sample(..., mode="bilinear", padding_mode="border", align_corners=False) at the pixel centres, but
    bilinear interpolation is separable, so it is two small MatMuls (rows, then columns) instead of a GridSample
    gather per pixel: about 4x less of the full-resolution time on CPU."""
    size_y, size_x = grid_map.shape[-2], grid_map.shape[-1]
    wy = bilinear_rows(roi[:, 0:1], roi[:, 2:3], h, size_y)  # B, h, Sy
    wx = bilinear_rows(roi[:, 1:2], roi[:, 3:4], w, size_x)  # B, w, Sx
    return torch.matmul(torch.matmul(wy[:, None], grid_map), wx[:, None].transpose(-1, -2))


def make_thumb(image: torch.Tensor) -> torch.Tensor:
    """Area-style downscale to the fixed working size (training-time equivalent of the runner's resize)."""
    return F.interpolate(image, size=(THUMB, THUMB), mode="bilinear", align_corners=False, antialias=True)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
