"""Training-time manipulation layer, applied per sample at the working size.

Non-differentiable steps (real JPEG via OpenCV/libjpeg, Poisson sampling, 8-bit quantisation) use a
straight-through estimator: forward is the real operation, backward is identity. Strengths are
chosen at the working size, so several are harsher than the full-resolution evaluation attacks
(e.g. blur sigma 1 on a 4000 px photo is almost nothing once resized to 128 px).
"""

import math
import random

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.watermark.djpeg import jpeg as diff_jpeg


def ste(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + (y - x).detach()


def quantize8(x: torch.Tensor) -> torch.Tensor:
    return ste(x, torch.round(x.clamp(0, 1) * 255) / 255)


def real_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    arr = (x.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()[:, :, ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return ste(x, torch.from_numpy(dec).to(x).permute(2, 0, 1) / 255)


def resize_back(x: torch.Tensor, scale: float, mode: str = "bilinear") -> torch.Tensor:
    s = x.shape[-1]
    small = max(8, int(round(s * scale)))
    y = F.interpolate(x[None], size=(small, small), mode="bilinear", align_corners=False, antialias=scale < 1)
    return F.interpolate(y, size=(s, s), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))[0]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = gaussian_kernel(sigma).to(x)
    r = k.numel() // 2
    y = F.conv2d(F.pad(x[None], (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)
    return y[0]


def crop(x: torch.Tensor, keep: float) -> torch.Tensor:
    s = x.shape[-1]
    aspect = math.exp(random.uniform(-0.4, 0.4))
    h = min(s, int(round(s * math.sqrt(keep) * aspect)))
    w = min(s, int(round(s * s * keep / h)))
    top, left = random.randint(0, s - h), random.randint(0, s - w)
    return F.interpolate(x[None, :, top : top + h, left : left + w], size=(s, s), mode="bilinear", align_corners=False)[0]


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]


def color(x: torch.Tensor) -> torch.Tensor:
    x = x * random.uniform(0.7, 1.3)  # brightness
    mean = x.mean()
    x = (x - mean) * random.uniform(0.7, 1.3) + mean  # contrast
    grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    x = (x - grey) * random.uniform(0.7, 1.3) + grey  # saturation
    # hue: rotate the chroma plane of YIQ
    m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype, device=x.device)
    a = random.uniform(-0.1, 0.1) * math.pi
    rot = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=x.dtype, device=x.device)
    t = torch.linalg.inv(m) @ rot @ m
    return torch.einsum("ij,jhw->ihw", t, x).clamp(0, 1)


def sharpen(x: torch.Tensor, amount: float) -> torch.Tensor:
    return (x + amount * (x - blur(x, 1.0))).clamp(0, 1)


def screenshot(x: torch.Tensor) -> torch.Tensor:
    y = resize_back(x, random.uniform(0.35, 0.8), mode=random.choice(["bilinear", "nearest"]))
    return quantize8(y)


def face_swap(x: torch.Tensor, donor: torch.Tensor) -> torch.Tensor:
    """Pastes a feathered, colour-matched ellipse of `donor` over x (5-25 % of the area)."""
    s = x.shape[-1]
    area = random.uniform(0.05, 0.25)
    ry = math.sqrt(area / math.pi) * s * random.uniform(0.85, 1.25)
    rx = area * s * s / (math.pi * ry)
    cy, cx = random.uniform(ry, s - ry) if ry < s / 2 else s / 2, random.uniform(rx, s - rx) if rx < s / 2 else s / 2
    yy, xx = torch.meshgrid(torch.arange(s, dtype=x.dtype), torch.arange(s, dtype=x.dtype), indexing="ij")
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    mask = torch.sigmoid((1 - d) * random.uniform(4, 12)).to(x)  # feathered edge
    w = mask.sum() + 1e-6
    mx, md = (x * mask).sum((1, 2)) / w, (donor * mask).sum((1, 2)) / w
    sx = torch.sqrt(((x - mx[:, None, None]) ** 2 * mask).sum((1, 2)) / w + 1e-6)
    sd = torch.sqrt(((donor - md[:, None, None]) ** 2 * mask).sum((1, 2)) / w + 1e-6)
    matched = ((donor - md[:, None, None]) * (sx / sd)[:, None, None] + mx[:, None, None]).clamp(0, 1)
    return x * (1 - mask) + matched.detach() * mask


def jpeg_any(x: torch.Tensor) -> torch.Tensor:
    q = random.randint(30, 95)
    return real_jpeg(x, q) if random.random() < 0.5 else diff_jpeg(x[None], q)[0].clamp(0, 1)


ATTACKS = {
    "identity": lambda x, d: x,
    "jpeg": lambda x, d: jpeg_any(x),
    "resize": lambda x, d: resize_back(x, math.exp(random.uniform(math.log(0.3), math.log(2.0)))),
    "crop": lambda x, d: crop(x, random.uniform(0.5, 1.0)),
    "blur": lambda x, d: blur(x, random.uniform(0.4, 1.5)),
    "gauss_noise": lambda x, d: (x + torch.randn_like(x) * random.uniform(0, 10 / 255)).clamp(0, 1),
    "poisson_noise": lambda x, d: ste(x, torch.poisson(x.clamp(0, 1) * (p := random.uniform(50, 400))) / p).clamp(0, 1),
    "color": lambda x, d: color(x),
    "sharpen": lambda x, d: sharpen(x, random.uniform(0.3, 1.5)),
    "screenshot": lambda x, d: screenshot(x),
    "face_swap": lambda x, d: face_swap(x, d),
    "rotate": lambda x, d: rotate(x, random.uniform(-3, 3)),
}


def manipulate(x: torch.Tensor, donor: torch.Tensor, weights: dict, p_jpeg_after: float) -> tuple[torch.Tensor, str]:
    """One random attack (by weight), then with probability p_jpeg_after a JPEG on top, then 8-bit."""
    names = list(weights)
    name = random.choices(names, [weights[n] for n in names])[0]
    y = ATTACKS[name](quantize8(x), donor)
    if name != "jpeg" and random.random() < p_jpeg_after:
        y = jpeg_any(y)
    return quantize8(y), name
