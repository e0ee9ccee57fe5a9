"""Check a Readerboard dataset export with the training frameworks' own loaders (runs in the throwaway venv).

    check_dataset_export.py nnunet EXPORT.zip [monai OTHER.zip ...]

nnunet: nnU-Net v2's verify_dataset_integrity on the unzipped dataset; monai: MONAI's
load_decathlon_datalist + LoadImaged of every case. Several exports are checked in one process (torch
is imported once).

Runs under scripts/check-nnunet-export.sh's venv (nnunetv2, monai, CPU torch), never the project's: it
imports nothing of Readerboard. Prints one line per checked case and exits non-zero on any problem.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path


def check_nnunet(folder: Path) -> None:
    os.environ.setdefault("nnUNet_raw", str(folder.parent))
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    # One process: the check's default pool of 8 workers is slower than the work on a CI runner.
    verify_dataset_integrity(str(folder), num_processes=1)
    print(f"nnU-Net verify_dataset_integrity: {folder.name} OK")


def check_monai(folder: Path) -> None:
    import numpy as np
    from monai.data import load_decathlon_datalist
    from monai.transforms import EnsureChannelFirstd, LoadImaged

    items = load_decathlon_datalist(str(folder / "dataset.json"), is_segmentation=True, data_list_key="training")
    if not items:
        raise SystemExit("the datalist has no training items")
    load = LoadImaged(keys=["image", "label"], image_only=False)
    channel_first = EnsureChannelFirstd(keys=["image", "label"])
    for item in items:
        loaded = channel_first(load(item))
        image, label = loaded["image"], loaded["label"]
        if tuple(image.shape) != tuple(label.shape):
            raise SystemExit(f"{item['image']}: image {tuple(image.shape)} and label {tuple(label.shape)} differ")
        if not np.allclose(np.asarray(image.affine), np.asarray(label.affine), atol=1e-4):
            raise SystemExit(f"{item['label']}: the label's affine differs from its image's")
        values = set(np.unique(np.asarray(label)).tolist())
        if not values <= {0, 1}:
            raise SystemExit(f"{item['label']}: labels {sorted(values)} are not 0/1")
        print(f"MONAI LoadImaged: {Path(item['image']).name} {tuple(image.shape)} OK")


def main(argv: list[str]) -> int:
    pairs = list(zip(argv[1::2], argv[2::2], strict=False))
    if not pairs or len(argv) % 2 != 1 or any(layout not in ("nnunet", "monai") for layout, _ in pairs):
        print(__doc__, file=sys.stderr)
        return 2
    for layout, archive in pairs:
        with tempfile.TemporaryDirectory(prefix="readerboard-dataset-check-") as scratch:
            folder = Path(scratch) / "Dataset999_ReaderboardCheck"
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(folder)
            (check_nnunet if layout == "nnunet" else check_monai)(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
