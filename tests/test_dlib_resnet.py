"""dlib's face network in PyTorch equals dlib's own: on stored chips everywhere, and live where
dlib (pretraining/requirements.txt) is installed."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gslora_core.dlib_resnet import SHIPPED, DlibResNet, add_padded, teacher

FIXTURE = Path(__file__).parent / "fixtures" / "dlib_chips.safetensors"
SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "sample_gallery"
HAS_DLIB = all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models"))


def descriptors(chips: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return teacher()(DlibResNet.normalize(chips))


def test_the_shipped_weights_give_dlibs_descriptors_on_stored_chips():
    data = load_file(str(FIXTURE))
    out = descriptors(data["chips"])
    assert (out - data["descriptors"]).abs().max() < 1e-5


def test_bgr_input_is_not_dlibs_descriptor():
    # The stored comparison is sharp enough to catch a channel-order mistake.
    data = load_file(str(FIXTURE))
    out = descriptors(data["chips"].flip(1))
    assert (out - data["descriptors"]).abs().max() > 1e-2


def test_add_padded_zero_extends_the_smaller_tensor_at_the_end():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 4, 4, 4), 10.0)
    out = add_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert torch.all(out[:, :2, :3, :3] == 11) and torch.all(out[:, 2:] == 10)
    assert torch.all(out[:, :, 3] == 10) and torch.all(out[:, :, :, 3] == 10)


@pytest.mark.parametrize("levels,shape", [(3, (128, 8, 8)), (4, (256, 4, 4)), (5, (256, 2, 2))])
def test_a_trunk_stops_at_its_level(levels, shape):
    trunk = DlibResNet(levels, head=False).load_shipped()
    x = DlibResNet.normalize(torch.zeros(2, 3, 150, 150, dtype=torch.uint8))
    assert trunk.features(x).shape == (2, *shape)
    assert (trunk.channels, trunk.grid) == (shape[0], shape[1])
    # A trunk is the whole network's lower part, exactly.
    assert torch.equal(trunk.features(x), teacher().features(x, levels))


def test_the_weights_are_buffers_so_nothing_trains_them():
    net = teacher().requires_grad_(True)
    assert list(net.parameters()) == []


@pytest.mark.skipif(not HAS_DLIB, reason="dlib's packages: pip install -r pretraining/requirements.txt")
def test_the_port_equals_dlib_on_sample_faces():
    import dlib
    from PIL import Image

    from pretraining.teacher import model_dir

    d = model_dir()
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
    encoder = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))
    chips, ref = [], []
    for f in sorted(SAMPLE.glob("*/*.jpg"))[::40]:
        img = np.asarray(Image.open(f).convert("RGB"))
        found = detector(img, 1)
        if found:
            chip = dlib.get_face_chip(img, predictor(img, found[0]), 150, 0.25)
            chips.append(chip)
            ref.append(np.asarray(encoder.compute_face_descriptor(chip), np.float32))
    assert len(chips) >= 5
    out = descriptors(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2))
    assert np.abs(out.numpy() - np.stack(ref)).max() < 1e-5


@pytest.mark.skipif(not HAS_DLIB, reason="dlib's packages: pip install -r pretraining/requirements.txt")
def test_reading_dlibs_file_gives_the_shipped_weights():
    from pretraining.dlib_dat import read_dat, to_state_dict
    from pretraining.teacher import model_dir

    state = to_state_dict(read_dat(model_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
    shipped = load_file(str(SHIPPED))
    assert set(state) == set(shipped)
    assert all(torch.equal(torch.from_numpy(np.ascontiguousarray(state[k])), shipped[k])
               for k in shipped)
