"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``), in PyTorch, frozen.

The network of dlib's ``dnn_face_recognition_ex.cpp``: a 150x150 RGB chip, ``(pixel - mean) /
256``; a 7x7/2 convolution (no padding), a per-channel scale and shift, ReLU, a 3x3/2 max pool;
then residual levels 32x35x35 -> 64x17x17 -> 128x8x8 -> 256x4x4 -> 256x2x2; the spatial mean and
a 256 -> 128 linear map without bias. Each residual block is two 3x3 convolutions (with bias,
each followed by a frozen scale and shift; a strided one has no padding, a stride-1 one pads 1)
with a ReLU between, added to its input (through a 2x2/2 average pool where it downsamples) and
a ReLU. dlib's ``add_prev`` adds tensors of different shapes by zero-padding the smaller into the
larger, channels and the bottom/right edges included: no projection on the skip path, and a
strided block's output (e.g. 3x3) lands in the top-left of the pooled input (4x4).

Every weight is a buffer, not a parameter: the trunk stays frozen whatever trains above it
(enrolment calls ``requires_grad_(True)`` on a whole recognizer). The weights are dlib's,
converted by ``pretraining/dlib_dat.py`` into ``checkpoints/dlib_resnet.safetensors``;
tests/test_dlib_resnet.py checks the port against dlib's own descriptors.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "dlib_resnet.safetensors"
CHIP = 150  # input side, pixels
MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's input_rgb_image_sized: (pixel - mean) / 256
SCALE = 256.0
# (channels, strides of its blocks): dlib's alevel4 ... alevel0, input side to output side.
LEVELS = ((32, (1, 1, 1)), (64, (2, 1, 1, 1)), (128, (2, 1, 1)), (256, (2, 1, 1)), (256, (2,)))
GRIDS = (35, 17, 8, 4, 2)  # each level's output side


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, the smaller zero-padded at the end of
    every dimension (channels, rows, columns)."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def grown(t: torch.Tensor) -> torch.Tensor:
        c, h, w = (s - d for s, d in zip(shape, t.shape[1:]))
        return F.pad(t, (0, w, 0, h, 0, c)) if c or h or w else t
    return grown(a) + grown(b)


class ConvAffine(nn.Module):
    """A convolution (with bias) then a per-channel scale and shift, all frozen buffers."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int):
        super().__init__()
        self.stride, self.padding = stride, 0 if stride > 1 else k // 2
        self.register_buffer("weight", torch.zeros(c_out, c_in, k, k))
        self.register_buffer("bias", torch.zeros(c_out))
        self.register_buffer("scale", torch.ones(c_out))
        self.register_buffer("shift", torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return y * self.scale[:, None, None] + self.shift[:, None, None]


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.first = ConvAffine(c_in, c_out, 3, stride)
        self.second = ConvAffine(c_out, c_out, 3, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.stride > 1 else x
        return F.relu(add_padded(y, skip))


class DlibResNet(nn.Module):
    """dlib's network up to and including level ``levels - 1`` (5: the whole trunk), and the
    128-d descriptor when ``head`` (needs every level). Input: normalised chips
    (``normalize``), (N, 3, 150, 150)."""

    def __init__(self, levels: int = len(LEVELS), head: bool = True):
        super().__init__()
        if not 1 <= levels <= len(LEVELS) or (head and levels != len(LEVELS)):
            raise ValueError(f"levels must be 1..{len(LEVELS)} (all of them with the head)")
        self.stem = ConvAffine(3, 32, 7, 2)
        blocks, c_in = [], 32
        for c_out, strides in LEVELS[:levels]:
            blocks.append(nn.ModuleList(ResBlock(c_in if j == 0 else c_out, c_out, s)
                                        for j, s in enumerate(strides)))
            c_in = c_out
        self.levels = nn.ModuleList(blocks)
        self.channels, self.grid = c_in, GRIDS[levels - 1]
        if head:
            self.register_buffer("fc", torch.zeros(128, c_in))

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float RGB chips -> dlib's input scale."""
        x = images.float() if images.dtype == torch.uint8 else images * 255.0
        mean = torch.tensor(MEAN_RGB, device=x.device, dtype=x.dtype)[:, None, None]
        return (x - mean) / SCALE

    def features(self, x: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """The feature map after ``levels`` levels (default: all this module has)."""
        return self.onwards(F.max_pool2d(F.relu(self.stem(x)), 3, 2), 0, levels)

    def onwards(self, feats: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
        """Levels ``start`` up to ``stop`` (exclusive; default: all) on the map after level
        ``start - 1``: a trunk's map carried on to a higher level, or to the descriptor's."""
        for level in self.levels[start:stop]:
            for block in level:
                feats = block(feats)
        return feats

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """The descriptor from the last level's map: spatial mean, then the linear map."""
        return feats.mean((2, 3)) @ self.fc.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def load_shipped(self, path: str | Path = SHIPPED) -> "DlibResNet":
        """Fill the buffers from dlib's weights (a trunk takes the ones it has)."""
        mine = self.state_dict()
        state = shipped_weights(str(path))
        missing = [k for k in mine if k not in state]
        if missing:
            raise ValueError(f"{path} lacks {len(missing)} of dlib's arrays (e.g. {missing[0]})")
        self.load_state_dict({k: state[k] for k in mine})
        return self


@lru_cache(maxsize=2)
def shipped_weights(path: str) -> dict[str, torch.Tensor]:
    """dlib's arrays, read once a process (every hybrid recognizer copies its trunk from here)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the project (made by "
                                "python -m pretraining.dlib_dat)")
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def teacher(path: str | Path = SHIPPED) -> DlibResNet:
    """The whole network, ready: dlib's 128-d face descriptor of normalised chips."""
    return DlibResNet().load_shipped(path).eval()
