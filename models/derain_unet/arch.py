"""A plain U-Net derainer: the zoo's no-physics baseline (issue 14, Build item 4).

After Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015,
written here from the paper's description and scaled down to the zoo's parameter budget: an encoder of two
3x3 conv-BN-ReLU layers per level with three 2x2 max-pool downsamplings (full, 1/2, 1/4, 1/8 resolution), a
decoder that upsamples, concatenates the encoder's feature map of the same level (the skip connection) and applies
two 3x3 conv-BN-ReLU layers, and a 1x1 output conv. Two departures from the paper, both standard for image
restoration:
- padded convs (the output has the input's size) and bilinear upsampling to the skip's exact size followed by the
  level's convs, instead of unpadded convs, crops and 2x2 up-convolutions: any height and width works, odd ones too
  (max-pool rounds up), with no size-dependent op, so the graph exports with dynamic axes;
- a global residual: J = clamp(I + f(I), 0, 1). The output conv starts at exactly zero, so the untrained network is
  the identity J = I and training starts from the input's PSNR on every family (the streak-vapor card's lesson 3).
  Unlike streak-vapor's zero head, nothing here clamps the head's output at zero, so its weights get a gradient from
  the first step (the activations below are not zero) and the layers below get one from the second.

No physics: no transmission, veil, atmospheric light or thumbnail input; the network sees the tile only.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# full, 1/2, 1/4, 1/8: the paper's doubling per level, base width chosen to match streak-vapor's budget. 9 gives
# 154,884 parameters (streak-vapor 156,247: -0.9 %) and 13.03 G MACs/MP (12.39 G); the non-doubling
# (16, 24, 40, 56) matched the parameters (159,747) at 23.0 G MACs/MP, 1.13 s against 0.69 s a training step here.
WIDTHS = (9, 18, 36, 72)


def block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers (the conv has no bias: the batch norm's shift is one)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class UNet(nn.Module):
    def __init__(self, widths=WIDTHS):
        super().__init__()
        c0, c1, c2, c3 = widths
        self.e0 = block(3, c0)
        self.e1 = block(c0, c1)
        self.e2 = block(c1, c2)
        self.e3 = block(c2, c3)  # the bottleneck, at 1/8
        self.d2 = block(c3 + c2, c2)
        self.d1 = block(c2 + c1, c1)
        self.d0 = block(c1 + c0, c0)
        self.out = nn.Conv2d(c0, 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: B,3,H,W in [0, 1] -> J unclamped (I + the predicted residual); the caller clamps."""
        f0 = self.e0(image)
        f1 = self.e1(F.max_pool2d(f0, 2, ceil_mode=True))
        f2 = self.e2(F.max_pool2d(f1, 2, ceil_mode=True))
        f3 = self.e3(F.max_pool2d(f2, 2, ceil_mode=True))
        d2 = self.d2(torch.cat([up_to(f3, f2), f2], 1))
        d1 = self.d1(torch.cat([up_to(d2, f1), f1], 1))
        d0 = self.d0(torch.cat([up_to(d1, f0), f0], 1))
        return image + self.out(d0)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def count_macs(model: nn.Module, h: int, w: int) -> int:
    """Multiply-accumulates of conv and linear layers for one HxW tile, counted as streak-vapor's arch.count_macs
    does (forward hooks; batch norm, pooling, interpolation and the residual add not counted)."""
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
        model(torch.rand(1, 3, h, w))
    model.train(was)
    for x in hs:
        x.remove()
    return total[0]
