"""Encoder / decoder of the invisible watermark, both at a fixed working size (default 128x128).

The encoder sees the image squeezed to the working size and the coded bits, and outputs a residual
whose RMS is normalised to a fixed target: the PSNR at the working size is then set by construction
(strength x target) and training spends its capacity on robustness and on where to put the energy.
The decoder is strided convs down to 8x8 followed by a linear layer: a global-average decoder failed
to learn in the feasibility runs (shared/NOTES.md), this one learned within 100 steps.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin: int, cout: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Works at 1/4 and 1/2 of the working size: the residual is upsampled to full resolution anyway,
    smooth residuals survive JPEG and resizing better, and it keeps a CPU training step cheap."""

    def __init__(self, n_bits: int = 128, size: int = 128, ch: int = 32, target_rms: float = 0.0089):
        super().__init__()
        self.size, self.target_rms = size, target_rms
        self.grid = size // 8  # the bits are spread over a 16x16 message map (for 128 px)
        self.msg = nn.Linear(n_bits, 16 * self.grid * self.grid)
        self.img1 = conv(3, ch // 2, stride=2)  # size/2
        self.img2 = conv(ch // 2, ch, stride=2)  # size/4
        self.body = nn.Sequential(conv(ch + 16, ch), conv(ch, ch), conv(ch, ch))
        self.up = conv(ch + ch // 2, ch // 2)
        self.head = nn.Conv2d(ch // 2, 3, 1)

    def forward(self, image: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """image: N,3,S,S in [0,1]; bits: N,n_bits in {0,1}. Returns the residual (RMS = target_rms)."""
        n, s = image.shape[0], self.size
        m = self.msg(bits * 2 - 1).view(n, 16, self.grid, self.grid)
        m = F.interpolate(m, size=(s // 4, s // 4), mode="nearest")
        f1 = self.img1(image * 2 - 1)
        h = self.body(torch.cat([self.img2(f1), m], 1))
        h = F.interpolate(h, size=(s // 2, s // 2), mode="bilinear", align_corners=False)
        h = self.up(torch.cat([h, f1], 1))
        r = F.interpolate(self.head(h), size=(s, s), mode="bilinear", align_corners=False)
        rms = torch.sqrt(torch.mean(r * r, dim=(1, 2, 3), keepdim=True) + 1e-12)
        return r * (self.target_rms / rms)


class LinearEncoder(nn.Module):
    """Spread-spectrum style: the residual is a learned linear map of the +-1 bits onto a (size/4)^2 x 3 pattern,
    stretched to the working size, then shaped by a learned image-dependent gain (where the eye tolerates
    more energy). The direct linear message path trains in a few hundred CPU steps; the conv encoder above did
    not leave chance level in 300 steps here."""

    def __init__(self, n_bits: int = 128, size: int = 128, ch: int = 16, target_rms: float = 0.0089):
        super().__init__()
        self.size, self.target_rms = size, target_rms
        self.q = size // 4
        self.msg = nn.Linear(n_bits, 3 * self.q * self.q, bias=False)
        self.gain = nn.Sequential(conv(3, ch, 2, norm=False), conv(ch, ch, norm=False), nn.Conv2d(ch, 1, 3, 1, 1))

    def forward(self, image: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        n, s = image.shape[0], self.size
        m = self.msg(bits * 2 - 1).view(n, 3, self.q, self.q)
        m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False)
        g = F.interpolate(torch.exp(torch.tanh(self.gain(image * 2 - 1))), size=(s, s), mode="bilinear", align_corners=False)
        r = m * g
        rms = torch.sqrt(torch.mean(r * r, dim=(1, 2, 3), keepdim=True) + 1e-12)
        return r * (self.target_rms / rms)


class Decoder(nn.Module):
    def __init__(self, n_bits: int = 128, size: int = 128, ch: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            conv(3, ch // 2, 2), conv(ch // 2, ch, 2), conv(ch, ch), conv(ch, 2 * ch, 2), conv(2 * ch, 2 * ch), conv(2 * ch, 4 * ch, 2)
        )
        self.fc = nn.Linear(4 * ch * (size // 16) ** 2, n_bits)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: N,3,S,S in [0,1]. Returns bit logits (N, n_bits); sigmoid gives P(bit = 1)."""
        return self.fc(self.net(image * 2 - 1).flatten(1))


class Watermark(nn.Module):
    def __init__(self, n_bits: int, size: int, enc_ch: int, dec_ch: int, target_rms: float, encoder: str = "conv"):
        super().__init__()
        self.encoder = LinearEncoder(n_bits, size, enc_ch, target_rms) if encoder == "linear" else Encoder(n_bits, size, enc_ch, target_rms)
        self.decoder = Decoder(n_bits, size, dec_ch)
