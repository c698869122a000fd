"""Read dlib's face-recognition network (``dlib_face_recognition_resnet_model_v1.dat``) with numpy.

The file is dlib's own serialization of the network, written from the input upwards: packed
integers (a length byte, its top bit the sign, then little-endian bytes), dlib floats (a packed
mantissa and exponent), strings (a packed length, then the bytes), booleans as the characters
'0'/'1', and every layer's parameters as one tensor (version 2: four packed dimensions, then raw
little-endian float32). No C++ is needed; pretraining time only (the app loads the safetensors
this writes, ``gslora_core.dlib_resnet``).

Run:  python -m pretraining.dlib_dat --out checkpoints/dlib_resnet.safetensors
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Reader:
    """Sequential reader of dlib's serialized values."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def int(self) -> int:
        head = self.byte()
        size, negative = head & 0x0F, bool(head & 0x80)
        raw = self.data[self.pos:self.pos + size]
        self.pos += size
        value = int.from_bytes(raw, "little")
        return -value if negative else value

    def float(self) -> float:
        mantissa = self.int()
        return float(mantissa) * 2.0 ** self.int()

    def str(self) -> str:
        size = self.int()
        self.pos += size
        return self.data[self.pos - size:self.pos].decode("ascii")

    def bool(self) -> bool:
        c = chr(self.byte())
        if c not in "01":
            raise ValueError(f"expected a serialized bool at byte {self.pos - 1}, found {c!r}")
        return c == "1"

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ValueError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        n = int(np.prod(shape))
        out = np.frombuffer(self.data, "<f4", n, self.pos).reshape(shape).copy()
        self.pos += 4 * n
        return out

    def alias(self) -> tuple[int, ...]:
        """An alias_tensor (a view into the layer's params): version 1, four dimensions."""
        if self.int() != 1:
            raise ValueError(f"unsupported alias_tensor version at byte {self.pos}")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    kind: str
    params: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def _layer(r: Reader) -> Layer:
    """One layer's details, after its name."""
    kind = r.str()
    if kind == "con_4":
        params = r.tensor()
        info = {k: r.int() for k in ("filters", "nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x")}
        info["filters_alias"], info["bias_alias"] = r.alias(), r.alias()
        info["multipliers"] = [r.float() for _ in range(4)]
        return Layer("con", params, info)
    if kind == "affine_":
        params = r.tensor()
        info = {"gamma_alias": r.alias(), "beta_alias": r.alias(), "mode": r.int()}
        return Layer("affine", params, info)
    if kind in ("max_pool_2", "avg_pool_2"):
        info = {k: r.int() for k in ("nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x")}
        return Layer(kind[:-2], None, info)
    if kind == "relu_":
        return Layer("relu")
    if kind.startswith("add_prev_"):
        return Layer("add_prev")
    raise ValueError(f"unknown layer {kind!r} at byte {r.pos}")


def read_dat(path: str | Path) -> list[Layer]:
    """The network's layers from the input upwards (tags and skips, which hold nothing, left
    out), the input's normalisation first as a layer of kind "input"."""
    r = Reader(Path(path).read_bytes())
    if r.int() != 1 or r.str() != "loss_metric_2":
        raise ValueError(f"{path} is not dlib's metric-learning network")
    loss = {"margin": r.float(), "distance_threshold": r.float()}
    # Each add_layer writes its version, then its sub-network (recursively), then its own
    # details: the versions of every layer come first, down to the input layer.
    while True:
        mark = r.pos
        if r.int() not in (1, 2, 3):
            r.pos = mark
            break
    if r.str() != "input_rgb_image_sized":
        raise ValueError("expected dlib's input_rgb_image_sized layer")
    layers = [Layer("input", None, {"mean": [r.float() for _ in range(3)], "rows": r.int(),
                                    "cols": r.int(), **loss})]
    while r.pos < len(r.data):
        head = r.data[r.pos:r.pos + 2]
        if head == b"\x01\x04" and r.data[r.pos + 2:r.pos + 6] == b"fc_2":
            r.str()
            outputs, inputs = r.int(), r.int()
            layers.append(Layer("fc", r.tensor(), {"outputs": outputs, "inputs": inputs,
                                                   "rest": r.data[r.pos:].hex()}))
            break
        layer = _layer(r)
        # add_layer's own state: three flags and three (empty) tensors.
        flags = [r.bool() for _ in range(3)]
        for _ in range(3):
            if r.tensor().size:
                raise ValueError(f"unexpected cached tensor after {layer.kind} at byte {r.pos}")
        layer.info["flags"] = flags
        if len(layers) == 1 and r.int() != 1:  # the layer on the input: its sample expansion
            raise ValueError("expected a sample expansion factor of 1")
        layers.append(layer)
    return layers


def to_state_dict(layers: list[Layer]) -> dict[str, np.ndarray]:
    """The layers as ``gslora_core.dlib_resnet.DlibResNet``'s state dict (see its layout)."""
    from gslora_core.dlib_resnet import LEVELS

    convs = [lay for lay in layers if lay.kind == "con"]
    affines = [lay for lay in layers if lay.kind == "affine"]
    fc = layers[-1]
    names = ["stem"] + [f"levels.{i}.{j}.{k}" for i, level in enumerate(LEVELS)
                        for j in range(len(level[1])) for k in ("first", "second")]
    if len(convs) != len(names) or len(affines) != len(names) or fc.kind != "fc":
        raise ValueError(f"unexpected network: {len(convs)} convolutions, {len(affines)} affines")
    state: dict[str, np.ndarray] = {}
    for name, con, aff in zip(names, convs, affines):
        out, nr, nc = con.info["filters"], con.info["nr"], con.info["nc"]
        flat = con.params.reshape(-1)
        n_w = flat.size - out
        state[f"{name}.weight"] = flat[:n_w].reshape(out, n_w // (out * nr * nc), nr, nc)
        state[f"{name}.bias"] = flat[n_w:]
        a = aff.params.reshape(-1)
        state[f"{name}.scale"], state[f"{name}.shift"] = a[:out], a[out:]
    state["fc"] = np.ascontiguousarray(
        fc.params.reshape(fc.info["inputs"], fc.info["outputs"]).T)
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dat", type=Path, default=None,
                    help="the .dat file (default: face_recognition_models' copy)")
    ap.add_argument("--out", type=Path, default=Path("checkpoints/dlib_resnet.safetensors"))
    args = ap.parse_args()
    from safetensors.numpy import save_file

    from .teacher import model_dir
    dat = args.dat or model_dir() / "dlib_face_recognition_resnet_model_v1.dat"
    layers = read_dat(dat)
    state = to_state_dict(layers)
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in state.items()}, str(args.out),
              metadata={"format": "dlib-resnet/1", "source": dat.name,
                        "licence": "dlib face recognition model: public domain (CC0), Davis King"})
    n = sum(v.size for v in state.values())
    print(f"{len(state)} arrays, {n:,} parameters -> {args.out}")


if __name__ == "__main__":
    main()
