"""Baseline: a tiny Zero-DCE++-style curve estimator (Li et al., TPAMI 2021, "Learning to Enhance Low-Light
Image via Zero-Reference Deep Curve Estimation"). Depthwise-separable convs on the (4x pooled) thumbnail estimate
per-pixel curve parameters alpha; the curve LE(x) = x + alpha x (1 - x) is applied 8 times at full
resolution. Same inputs as IAGC (tile, thumbnail, roi) so it trains on exactly the same batches."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class DSConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class ZeroDCEpp(nn.Module):
    def __init__(self, ch: int = 32, iters: int = 8, scale: int = 4):
        super().__init__()
        self.iters, self.scale = iters, scale
        self.c1, self.c2, self.c3, self.c4 = DSConv(3, ch), DSConv(ch, ch), DSConv(ch, ch), DSConv(ch, ch)
        self.c5, self.c6, self.c7 = DSConv(2 * ch, ch), DSConv(2 * ch, ch), DSConv(2 * ch, 3)

    def forward(self, image, thumb, roi):
        x = F.avg_pool2d(thumb, self.scale)
        r = F.relu
        x1 = r(self.c1(x))
        x2 = r(self.c2(x1))
        x3 = r(self.c3(x2))
        x4 = r(self.c4(x3))
        x5 = r(self.c5(torch.cat([x3, x4], 1)))
        x6 = r(self.c6(torch.cat([x2, x5], 1)))
        alpha = torch.tanh(self.c7(torch.cat([x1, x6], 1)))
        h, w = image.shape[-2], image.shape[-1]
        ys = torch.arange(h, dtype=image.dtype, device=image.device)[None, :] + roi[:, 0:1]
        xs = torch.arange(w, dtype=image.dtype, device=image.device)[None, :] + roi[:, 1:2]
        gy = (2 * ys + 1) / roi[:, 2:3] - 1
        gx = (2 * xs + 1) / roi[:, 3:4] - 1
        grid = torch.stack([gx[:, None, :].expand(-1, h, -1), gy[:, :, None].expand(-1, -1, w)], dim=-1)
        a = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="border", align_corners=False)
        y = image
        for _ in range(self.iters):
            y = y + a * y * (1 - y)
        return y, y
