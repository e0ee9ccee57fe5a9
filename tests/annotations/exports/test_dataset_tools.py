"""Our nnU-Net and MONAI exports pass the frameworks' own checks (nnU-Net's verify_dataset_integrity, MONAI's
load_decathlon_datalist + LoadImaged), run in the throw-away venv of scripts/check-nnunet-export.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from annotations.exports import export_to_path
from annotations.reading.label_maps import import_label_map_answer_key
from tests.annotations.export_data import build_scene
from tests.annotations.exports.test_export_datasets import volume_and_labels

pytestmark = [pytest.mark.django_db, pytest.mark.datasettools]

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("READERBOARD_DATASET_CHECK_VENV", "/tmp/readerboard-dataset-check"))
CHECK_TIMEOUT_S = 120


def check_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        message = f"no dataset-check venv at {VENV}: run scripts/check-nnunet-export.sh --venv-only"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def run_check(exports: list[tuple[str, Path]]) -> str:
    arguments = [str(part) for layout_and_archive in exports for part in layout_and_archive]
    completed = subprocess.run(
        [str(check_python()), str(ROOT / "scripts" / "check_dataset_export.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


@pytest.fixture
def demo_like_task(small_ct_series, tmp_path):
    """A CT task with a consensus mask, plus a NIfTI volume whose label map is a gold case's answer key...

    ...in its own MR task: one dataset has one channel, so the CT and MR cases are two exports."""
    scene = build_scene(small_ct_series)
    image, label_map, _, _ = volume_and_labels(tmp_path)
    mr_task = type(scene.task).objects.create(name="ATLAS-like MR")
    import_label_map_answer_key(task=mr_task, image_path=image, label_path=label_map)
    return scene.task, mr_task


def test_nnunet_and_monai_exports_pass_the_frameworks_own_checks(demo_like_task, tmp_path):
    exports = [
        (layout, export_to_path(task=task, fmt=layout, out=tmp_path / f"{task.pk}-{layout}.zip").path)
        for task in demo_like_task
        for layout in ("nnunet", "monai")
    ]

    output = run_check(exports)

    assert output.count("verify_dataset_integrity: Dataset999_ReaderboardCheck OK") == 2, output
    assert output.count("MONAI LoadImaged:") == 2, output
