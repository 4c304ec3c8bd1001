"""Two-branch heavy-rain derainer after Li, Cheong, Tan, "Heavy rain image restoration: integrating physics model and
conditional adversarial learning", CVPR 2019 (written here from the paper's description; no code copied; the
adversarial refinement loss is left out). The paper's heavy-rain model:

    I = T (J + S) + (1 - T) A,   S = sum_i S_i (the streak layers), T the per-pixel transmission, A global,

whose parameters two branches learn, then a physics inversion and a refinement stage:

- RainLoc (rain localisation subnetwork): the tile -> the rain-mask logit (the renderer's `mask` is its label). Its
  probability gates the streak branch, so a pixel it calls rain-free loses no streak at all.
- StreakBranch: an encoder-decoder of ShuffleNet v2 units (the blocks of models/derain_streak_vapor) on [tile, mask]
  -> S (RGB), times the mask gate.
- TransBranch: T per pixel at 1/4 resolution (stride-1 spatial pyramid pooling, the thumbnail's descriptor), a
  full-resolution edge stage; and from the fixed 128 x 128 thumbnail alone (ThumbNet) A (RGB) and a photo-level veil
  gate, so every tile of a photo gets the same A and the same veil decision.
- Physics inversion for a haze-removal degree d in [0, 1] (the `dehaze` feed): the veil is lifted by the fraction d,
  T_d = 1 - d (1 - T), and the streaks are removed in full,

      J0_d = (I - (1 - T_d) A) / max(T_d, T_MIN) - (T / max(T_d, T_MIN)) S

  (d = 1: J0 = (I - (1 - T) A) / T - S; d = 0: I - T S, the streak-free image under its veil).
- Refine: an SPP (stride-1 fixed-kernel average pools, so any tile size exports) residual stage on [J0_d, I, T_d,
  mask, d] -> J_d, conditioned on d, trained with random d against J_d = (T / T_d) J + (1 - T / T_d) A; its residual
  is gated to where the inversion acted (min(1, max(4 (1 - T_d), mask gate))), so a clear, rain-free pixel of a
  light-rain photo comes out exactly as it went in.

Identity at the start (models/derain_streak_vapor/CARD.md, "Why the first training was unstable"): the mask gate
and the veil gate start closed, the streak head below zero and the refinement's last conv at zero, so the untrained
model returns its input and training starts from the input's PSNR on every family.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.derain_streak_vapor.arch import Down, Unit, clamp_back, conv, margin_conv, up_to, zero_conv

THUMB = 128  # the runner's thumbnail size (models/README.md)
T_MIN = 0.1  # inversion floor, as streak-vapor's (its oracle.py: raising it costs dB; lower amplifies noise x10+)
OPACITY_MAX = 0.9  # T >= 0.1: the renderer's veils reach exp(-2.2) = 0.11
MASK_GATE = (0.2, 0.5)  # rain probability -> streak gate: 0 at or below the first, 1 at or above the second
VEIL_GATE = (0.5, 0.75)  # veil probability -> veil gate (streak-vapor's final thresholds)


def ramp(logit: torch.Tensor, lo_hi: tuple, training: bool) -> torch.Tensor:
    lo, hi = lo_hi
    return clamp_back((torch.sigmoid(logit) - lo) / (hi - lo), 0.0, 1.0, training)


def dark_channel(x: torch.Tensor, k: int = 7) -> torch.Tensor:
    """min over RGB, then a k x k min filter (stride 1, edge padding by -inf through max_pool): He et al.'s prior.
    A veil lifts it everywhere ((1 - T) A >= 0.1 * 0.75 in the renderer's heavy families), a clear photo has it near
    0 in most windows: a physics feature next to the learnt ones, for the veil decision that did not generalise
    when learnt from 24 photos alone (streak-vapor's card)."""
    m = x.amin(dim=1, keepdim=True)
    return -F.max_pool2d(-m, k, 1, k // 2)


class RainLoc(nn.Module):
    """Rain localisation: full-resolution stem, a 1/2-resolution stack of dilated ShuffleNet units (reach along a
    streak), back up -> rain-mask logit. The head's bias starts at -3 (p = 0.05, below MASK_GATE[0]): gate closed."""

    def __init__(self, c0: int = 12, c1: int = 24):
        super().__init__()
        self.stem = conv(3, c0)
        self.body = nn.Sequential(Down(c0, c1), Unit(c1), Unit(c1, 2), Unit(c1, 4), Unit(c1, 8))
        self.head = nn.Sequential(conv(c1 + c0, c0, 1), nn.Conv2d(c0, 1, 3, 1, 1))
        nn.init.constant_(self.head[1].bias, -3.0)

    def forward(self, x):
        f0 = self.stem(x)
        f1 = self.body(f0)
        return self.head(torch.cat([up_to(f1, f0), f0], 1))


class StreakBranch(nn.Module):
    """[tile, rain probability] -> S (RGB, >= 0), encoder-decoder to 1/8 with dilated units (a long streak's reach)."""

    def __init__(self, w=(16, 24, 48, 64)):
        super().__init__()
        c0, c1, c2, c3 = w
        self.stem = conv(4, c0)
        self.e1 = nn.Sequential(Down(c0, c1), Unit(c1))
        self.e2 = nn.Sequential(Down(c1, c2), Unit(c2), Unit(c2, 2))
        self.e3 = nn.Sequential(Down(c2, c3), Unit(c3), Unit(c3, 2), Unit(c3, 4))
        self.m2 = nn.Sequential(conv(c3 + c2, c2, 1), Unit(c2))
        self.m1 = nn.Sequential(conv(c2 + c1, c1, 1), Unit(c1), conv(c1, c0, 1))
        # margin_conv (random weights, bias -0.2): S = clamp(<0) = 0 at the start, with gradient still reaching the
        # layers below (a zero head left streak-vapor's SNet dead, its card item 3).
        self.head = nn.Sequential(conv(c0 + c0 + 4, c0, 1), margin_conv(c0, 3))

    def forward(self, x, p):
        xi = torch.cat([x, p], 1)
        f0 = self.stem(xi)
        f1 = self.e1(f0)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        d2 = self.m2(torch.cat([up_to(f3, f2), f2], 1))
        d1 = self.m1(torch.cat([up_to(d2, f1), f1], 1))
        return self.head(torch.cat([up_to(d1, x), f0, xi], 1))


class ThumbNet(nn.Module):
    """Thumbnail (THUMB x THUMB, RGB + its dark channel) -> A (RGB), a descriptor for TransBranch and the veil logit.
    Besides the learnt mean/max pools, four global statistics a veil changes: the mean and the minimum of the dark
    channel, the luma's standard deviation (contrast) and the mean saturation."""

    def __init__(self, c: int = 48, desc: int = 16):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(4, 16, 3, 2, 1), nn.ReLU(inplace=True),  # 64
            nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(inplace=True),  # 32
            nn.Conv2d(32, c, 3, 2, 1), nn.ReLU(inplace=True),  # 16
            nn.Conv2d(c, c, 3, 2, 1), nn.ReLU(inplace=True),  # 8
        )
        self.fc = nn.Sequential(nn.Linear(2 * c + 4, 64), nn.ReLU(inplace=True))
        self.a = nn.Linear(64, 3)
        self.desc = nn.Linear(64, desc)
        self.veil = nn.Linear(64, 1)
        nn.init.zeros_(self.veil.weight)
        nn.init.zeros_(self.veil.bias)  # p = 0.5 at the start: veil gate closed (VEIL_GATE[0])

    def forward(self, thumb):
        dc = dark_channel(thumb)
        f = self.enc(torch.cat([thumb, dc], 1))
        luma = 0.299 * thumb[:, 0] + 0.587 * thumb[:, 1] + 0.114 * thumb[:, 2]
        sat = thumb.amax(dim=1) - thumb.amin(dim=1)
        stats = torch.stack([dc.mean(dim=(1, 2, 3)), dc.amin(dim=(1, 2, 3)), luma.std(dim=(1, 2)),
                             sat.mean(dim=(1, 2))], 1)
        g = self.fc(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3)), 4.0 * stats], 1))
        # A is a bright, near-grey light in rain; the +1.5 bias starts it at 0.82 rather than mid-grey.
        return torch.sigmoid(self.a(g) + 1.5), self.desc(g), self.veil(g)[:, 0]


class TransBranch(nn.Module):
    """T per pixel: 1/4 resolution from [tile, S, dark channel], SPP with stride-1 pools (windows of 20, 44, 92 px at
    full resolution, the same around a pixel in every tile that contains it), the thumbnail's descriptor -> coarse
    opacity; bilinear up plus a full-resolution stage that puts its edges on the image's edges. Heads start at 0."""

    def __init__(self, c: int = 24, branch: int = 8, kernels=(5, 11, 23), desc: int = 16):
        super().__init__()
        self.kernels = kernels
        self.inp = nn.Sequential(conv(7, c), conv(c, c))
        self.reduce = nn.ModuleList([nn.Conv2d(c, branch, 1) for _ in kernels])
        self.fuse = nn.Sequential(conv(c + branch * len(kernels) + desc, c), zero_conv(c, 1))
        self.refine = nn.Sequential(conv(6, 8), zero_conv(8, 1))

    def forward(self, x, s, dc, desc):
        small = F.avg_pool2d(torch.cat([x, s, dc], 1), 4, 4, ceil_mode=True, count_include_pad=False)
        f = self.inp(small)
        pyr = [F.avg_pool2d(r(f), k, 1, k // 2, count_include_pad=False) for r, k in zip(self.reduce, self.kernels)]
        g = desc[:, :, None, None].expand(-1, -1, f.shape[2], f.shape[3])
        coarse = self.fuse(torch.cat([f] + pyr + [g], 1))
        up = up_to(coarse, x)
        return up + self.refine(torch.cat([x, dc, s.mean(dim=1, keepdim=True), up], 1)), coarse


class Refine(nn.Module):
    """SPP refinement at full resolution, conditioned on d: [clamp(J0_d), I, T_d, rain probability, d] -> a residual
    on J0_d (its last conv starts at zero: J = J0_d at the start). Pools of 3, 7, 15 px, stride 1."""

    def __init__(self, c: int = 16, branch: int = 4, kernels=(3, 7, 15)):
        super().__init__()
        self.kernels = kernels
        self.inp = conv(9, c)
        self.reduce = nn.ModuleList([nn.Conv2d(c, branch, 1) for _ in kernels])
        self.fuse = nn.Sequential(conv(c + branch * len(kernels), c, 1), Unit(c), Unit(c, 2))
        self.out = zero_conv(c, 3)

    def forward(self, j0, x, t_d, p, d):
        dd = d.view(-1, 1, 1, 1).expand(x.shape[0], 1, x.shape[2], x.shape[3])
        f = self.inp(torch.cat([j0, x, t_d, p, dd], 1))
        pyr = [F.avg_pool2d(r(f), k, 1, k // 2, count_include_pad=False) for r, k in zip(self.reduce, self.kernels)]
        return self.out(self.fuse(torch.cat([f] + pyr, 1)))


class HeavyTwoBranch(nn.Module):
    def __init__(self, streak=(16, 24, 48, 64), loc=(12, 24), trans: int = 24, refine: int = 16):
        super().__init__()
        self.loc = RainLoc(*loc)
        self.streak = StreakBranch(streak)
        self.thumbnet = ThumbNet()
        self.trans = TransBranch(trans)
        self.refine = Refine(refine)

    def forward(self, image, thumb, dehaze):
        """image: B,3,H,W tile in [0, 1]; thumb: B,3,THUMB,THUMB of the whole photo; dehaze: (B,) or (1,) in [0, 1].
        Returns a dict: J (refined, unclamped), J0 (physics inversion), S, T, T_d, A (B,3), the mask logit, the
        ungated opacity (full and 1/4 resolution) and the veil logit (B,)."""
        tr = self.training
        a, desc, veil = self.thumbnet(thumb)
        m_logit = self.loc(image)
        p = torch.sigmoid(m_logit)
        s_raw = self.streak(image, p)
        gs = ramp(m_logit, MASK_GATE, tr)
        s = gs * clamp_back(s_raw, 0.0, 1.0, tr)
        dc = dark_channel(image)
        o, o_coarse = self.trans(image, s, dc, desc)
        g = ramp(veil, VEIL_GATE, tr)[:, None, None, None]
        t = 1.0 - g * clamp_back(o, 0.0, OPACITY_MAX, tr)
        d = dehaze.view(-1, 1, 1, 1)
        t_d = 1.0 - d * (1.0 - t)
        A = a[:, :, None, None]
        tf = t_d.clamp(min=T_MIN)
        j0 = (image - (1.0 - t_d) * A) / tf - (t / tf) * s
        j0c = clamp_back(j0, 0.0, 1.0, tr)
        # The refinement corrects only where the inversion acted: a veil being lifted or a streak being removed. At
        # step 40 of the smoke run, ungated, it had already taken the 3 light-rain validation photos' J from 38.47 dB
        # (J0, the identity there) to 30.29 dB. The gate is detached so that the refinement cannot open it by
        # pushing T below 1 (a false veil) or the mask up.
        gate = torch.maximum(4.0 * (1.0 - t_d), gs).clamp(max=1.0).detach()
        j = j0c + gate * self.refine(j0c, image, t_d, p, dehaze)
        return {"J": j, "J0": j0, "S": s, "S_raw": s_raw, "T": t, "T_d": t_d, "A": a, "mask_logit": m_logit,
                "opacity": o, "opacity_coarse": o_coarse, "veil": veil}


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def count_macs(model: nn.Module, h: int, w: int) -> int:
    """Multiply-accumulates of conv and linear layers for one HxW tile plus the thumbnail (forward hooks)."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features * out.shape[0]

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.rand(1, 3, h, w), torch.rand(1, 3, THUMB, THUMB), torch.ones(1))
    model.train(was)
    for x in hs:
        x.remove()
    return total[0]
