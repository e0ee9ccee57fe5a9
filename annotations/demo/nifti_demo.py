"""The NIfTI demo: an ATLAS-like MR stroke-lesion task whose gold cases' answer keys are NIfTI label maps.

Writes a few small synthetic T1-weighted brain volumes with one hypointense lesion each as NIfTI
(`case<n>_t1.nii.gz` + `case<n>_seg.nii.gz`, as ATLAS and BraTS ship them), imports them the way
`manage.py import_nifti_labels` does, so each becomes a gold case whose answer key is its label map.
Readers then paint masks on them in the booth, and the task exports as nnU-Net or MONAI datasets. A
"demo-model" prediction of each case (the lesion shifted by two voxels, as a slightly wrong model would
draw it) is imported too, so the results page's model-vs-crowd report has something to show, and a second
task, "Check the model", shows readers that prediction of the same series to keep, edit or erase. The model is
wrong in the ways a reader must catch, one per case in turn (`MODEL_FLAWS`): a lesion drawn two voxels off,
a lesion missed, a false positive beside the true lesion, an undersized mask. Dev and demo data only:
nothing in the product imports this module.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from scipy import ndimage

from annotations.models import Case, Task
from annotations.predictions.services import show_to_readers, store_prediction
from annotations.reading.label_maps import import_label_map_answer_key

NIFTI_DEMO_TASK = "Stroke lesions (ATLAS-like MR, NIfTI)"
NIFTI_DEMO_INSTRUCTIONS = (
    "T1-weighted brain MR converted from NIfTI, as research datasets like ATLAS ship it. Paint the stroke "
    "lesion (the dark region in the white matter) on every slice it shows, with the mask tool. The answer "
    "keys came in as NIfTI label maps."
)
CHECK_MODEL_TASK = "Check the model (ATLAS-like MR)"
CHECK_MODEL_INSTRUCTIONS = (
    "A model drew the stroke lesions on each case, and it makes mistakes. Accept each of its lesions that is "
    "right, correct it with the brush and eraser, reject it if there is no lesion where it drew one, and paint "
    "any lesion it missed."
)
DEMO_MODEL = "demo-model"
# What the demo model gets wrong, by case in turn.
MODEL_FLAWS = ("shifted", "missed lesion", "false positive", "undersized")
SHAPE = (96, 112, 24)
VOXEL_MM = (1.5, 1.5, 4.0)


def synthetic_t1(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (int16 T1-like volume, uint8 lesion label map, RAS affine) of an ellipsoid brain with one lesion."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij"), axis=-1) * VOXEL_MM
    centre = (np.array(SHAPE) - 1) * VOXEL_MM / 2
    radii = np.array([62.0, 76.0, 40.0])
    brain = (((grid - centre) / radii) ** 2).sum(axis=-1) <= 1
    white = (((grid - centre) / (radii * 0.7)) ** 2).sum(axis=-1) <= 1
    ventricles = (((grid - centre) / np.array([8.0, 22.0, 12.0])) ** 2).sum(axis=-1) <= 1
    lesion_centre = centre + rng.uniform([-35, -35, -12], [-12, 30, 12]) * rng.choice([-1, 1], size=3) * [1, 1, 0.5]
    lesion_radii = rng.uniform([7, 9, 6], [12, 16, 10])
    lesion = ((((grid - lesion_centre) / lesion_radii) ** 2).sum(axis=-1) <= 1) & white & ~ventricles
    volume = np.where(brain, 620.0, 40.0)
    volume[white] = 820.0
    volume[ventricles] = 180.0
    volume[lesion] = 330.0
    volume += rng.normal(0, 25, size=SHAPE)
    affine = np.diag([*VOXEL_MM, 1.0])
    affine[:3, 3] = -centre
    return np.clip(volume, 0, None).astype(np.int16), lesion.astype(np.uint8), affine


def flawed_prediction(labels: np.ndarray, volume: np.ndarray, *, flaw: str) -> np.ndarray:
    """Return the demo model's uint8 label map of a case: the truth with one of MODEL_FLAWS."""
    if flaw == "shifted":
        return np.roll(labels, 2, axis=0)
    if flaw == "missed lesion":
        return np.zeros_like(labels)
    if flaw == "undersized":
        # In-plane only: with 4 mm slices a 3-D erosion would take the lesion's few slices away entirely.
        in_plane = ndimage.generate_binary_structure(2, 1)[:, :, np.newaxis]
        return ndimage.binary_erosion(labels, structure=in_plane, iterations=2).astype(np.uint8)
    if flaw == "false positive":
        # A blob in healthy white matter (bright, far from the lesion) that a careless model would call a lesion.
        grid = np.stack(np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij"), axis=-1)
        lesion_centre = np.argwhere(labels).mean(axis=0)
        deep_white = ndimage.binary_erosion(volume > 700, iterations=4)
        candidates = np.argwhere(deep_white & (ndimage.distance_transform_edt(labels == 0) > 12))
        spot = candidates[np.argmax(np.linalg.norm(candidates - lesion_centre, axis=1))] if len(candidates) else None
        blob = np.zeros_like(labels)
        if spot is not None:
            blob = ((((grid - spot) * VOXEL_MM / np.array([5.0, 5.0, 5.0])) ** 2).sum(axis=-1) <= 1).astype(np.uint8)
        return np.maximum(labels, blob)
    raise ValueError(f"unknown flaw {flaw!r}: one of {MODEL_FLAWS}")


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def make_nifti_demo(*, cases: int = 4, user: AbstractBaseUser | None = None) -> Task:
    """Create the ATLAS-like MR task (and its "check the model" sibling), or return it when it exists."""
    existing = Task.objects.filter(name=NIFTI_DEMO_TASK).first()
    if existing is not None:
        return existing
    task = Task.objects.create(
        name=NIFTI_DEMO_TASK,
        instructions_md=NIFTI_DEMO_INSTRUCTIONS,
        tools=["mask", "no_lesion", "skip", "quality_problem"],
        reads_per_case=3,
        finding="Cerebral infarction",
        created_by=user,
    )
    check = Task.objects.create(
        name=CHECK_MODEL_TASK,
        instructions_md=CHECK_MODEL_INSTRUCTIONS,
        tools=["mask", "no_lesion", "skip", "quality_problem"],
        reads_per_case=3,
        finding="Cerebral infarction",
        created_by=user,
    )
    folder = settings.DATA_DIR / "demo-source" / "nifti"
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, cases + 1):
        volume, labels, affine = synthetic_t1(seed=2700 + number)
        image = _save(folder / f"case{number}_t1.nii.gz", volume, affine)
        label_map = _save(folder / f"case{number}_seg.nii.gz", labels, affine)
        result = import_label_map_answer_key(
            task=task, image_path=image, label_path=label_map, user=user, modality="MR", patient_id=f"ATLAS-{number}"
        )
        # The demo files are RAS, as the nnunet export writes them, so a file on their grid is on the export's.
        flaw = MODEL_FLAWS[(number - 1) % len(MODEL_FLAWS)]
        predicted = _save(folder / f"case{number}_pred.nii.gz", flawed_prediction(labels, volume, flaw=flaw), affine)
        store_prediction(case=result.case, model_name=DEMO_MODEL, path=predicted)
        # The same series in a task of its own: reads that start from the model are not independent of it.
        checked = Case.objects.create(task=check, series=result.case.series, label=f"Case {number}")
        store_prediction(case=checked, model_name=DEMO_MODEL, path=predicted)
    show_to_readers(task=check, model_name=DEMO_MODEL)
    return task
