"""The hybrid backbone (dlib's frozen trunk under transformer blocks): what it computes, what
trains, and its checkpoints, which name the shipped trunk instead of holding it."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gslora_core import lora
from gslora_core.config import ModelConfig, TaskRecord
from gslora_core.dlib_resnet import DlibResNet, teacher
from gslora_core.model import TRUNK_PREFIX, Recognizer, count_parameters, load_recognizer, save_recognizer
from gslora_core.states import mid_states

NAMES = ["ann", "bob", "cid"]


def chips(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 150, 150), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def model() -> Recognizer:
    torch.manual_seed(0)
    return Recognizer(ModelConfig.hybrid(), NAMES).eval()


def test_its_tokens_are_dlibs_feature_map_projected(model):
    x = chips()
    embed = model.backbone.patch_embed
    normalised = (x.float() / 255.0 - model.mean) / model.std
    assert torch.allclose(normalised, DlibResNet.normalize(x), atol=1e-5)
    feats = teacher().features(DlibResNet.normalize(x), 4)  # 256 x 4 x 4
    with torch.no_grad():
        tokens = embed(normalised)
        want = embed.proj(feats.flatten(2).transpose(1, 2))
    assert tokens.shape == (3, 16, 192) and torch.allclose(tokens, want, atol=1e-4)


def test_only_the_transformer_part_trains_and_lora_sits_on_its_mlps(model):
    model.requires_grad_(True)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    model.requires_grad_(False)
    assert not any("trunk" in n for n in names)
    assert count_parameters(model) < 3_000_000  # the 4.4 M trunk weights are buffers
    assert model.embed(chips(1)).shape == (1, 128)
    model.add_task(TaskRecord("t", ["ann"], 4, 1.0, {}))
    try:
        assert len(lora.group_params(model.blocks, "t")) == 6
    finally:
        model.remove_task("t")


def test_a_checkpoint_names_the_trunk_instead_of_holding_it(model, tmp_path):
    path = save_recognizer(model, tmp_path / "h.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert not any(k.startswith(TRUNK_PREFIX) for k in f.keys())
    full = save_recognizer(model, tmp_path / "full.safetensors", standalone=True)
    assert path.stat().st_size < 12e6 < full.stat().st_size
    x = chips()
    for p in (path, full):
        assert torch.equal(load_recognizer(p).embed(x), model.embed(x))


def test_a_checkpoint_made_on_another_trunk_is_refused(model, tmp_path):
    path = save_recognizer(model, tmp_path / "h.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    other = tmp_path / "other.safetensors"
    meta_other = meta["gslora"].replace('"digest": "', '"digest": "0')
    save_file(tensors, str(other), metadata={"gslora": meta_other})
    with pytest.raises(ValueError, match="another dlib trunk"):
        load_recognizer(other)


@pytest.mark.parametrize("levels,tokens", [(3, 65), (4, 17)])
def test_the_cached_state_path_equals_the_full_pass(levels, tokens):
    torch.manual_seed(1)
    m = Recognizer(ModelConfig.hybrid(levels), NAMES).eval()
    x = chips(2)
    assert m.stem_tokens(x).shape == (2, tokens, 192)
    for block in (0, 5):
        states = mid_states(m, x, block)
        got = m.embed_from_mid(states.plain, block)
        assert torch.allclose(got, m.embed(x), atol=1e-5)


def test_the_trunk_path_equals_the_full_pass(model):
    x = chips(2)
    with torch.no_grad():
        got = model.embed_from_trunk(model.trunk_features(x))
    assert torch.allclose(got, model.embed(x), atol=1e-5)
