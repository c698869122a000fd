"""A training step (forward + backward of the LoRA adapters, batch 128) from the states at a
lower block, with the top block's MLP on every token (the code before 2026-12-06) and on the
class token's row only (``Recognizer.embed_from_mid`` now). Interleaved, median of 6, 2 torch
threads; the embeddings are compared too. Run from the project root:

    PYTHONPATH=. python bench/results/tuning/top_row_step/ab.py > bench/results/tuning/top_row_step/ab.txt
"""
import time

import torch

from gslora_core.config import TaskRecord
from gslora_core.model import load_recognizer

torch.set_num_threads(2)
m = load_recognizer("checkpoints/sample_recognizer.safetensors")
m.add_task(TaskRecord(name="t", forgotten=["x"], rank=8, lora_alpha=8.0))
for n, p in m.named_parameters():
    p.requires_grad_("lora_" in n)
x = torch.randint(0, 255, (128, 3, 112, 112), dtype=torch.uint8,
                  generator=torch.Generator().manual_seed(0))


def every_token(model, h, block):
    """The previous embed_from_mid: the blocks above run whole, every token."""
    bb = model.backbone
    blk = bb.blocks[block]
    out = h + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(h))))
    for later in bb.blocks[block + 1:]:
        out = later(out)
    return bb.forward_head(bb.norm(out))


class_row = type(m).embed_from_mid
print("block (0-based) | every token ms | class row ms | embeddings equal")
for block in (4, 3, 2):
    with torch.no_grad():
        h = m.mid_state(x, block)
    times = {"every": [], "row": []}
    for _ in range(6):
        for name, fn in (("every", every_token), ("row", class_row)):
            t = time.perf_counter()
            fn(m, h, block).sum().backward()
            times[name].append(time.perf_counter() - t)
    with torch.no_grad():
        same = torch.equal(every_token(m, h, block), class_row(m, h, block))
    med = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
    print(f"{block} | {med['every']:.1f} | {med['row']:.1f} | {same}")
