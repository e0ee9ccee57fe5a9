"""The synthetic CT is valid DICOM with exact geometry."""

import shutil
import subprocess

import pydicom
import pytest

from viewer.services.synthetic_ct import demo_patients


@pytest.mark.dicomtools
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) is not installed")
def test_dciodvfy_finds_no_errors_in_the_synthetic_ct(small_ct_files):
    for path in small_ct_files.files[:3]:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        assert "Error" not in output, output
        assert "CTImage" in output


def test_slices_are_evenly_spaced_along_the_normal(small_ct_files):
    positions = [
        float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in small_ct_files.files
    ]
    steps = {round(b - a, 6) for a, b in zip(positions, positions[1:], strict=False)}
    assert steps == {2.5}


def test_demo_patients_have_one_to_three_lesions_of_known_size_on_a_slice():
    for patient in demo_patients(count=5):
        assert 1 <= len(patient.lesions) <= 3
        assert 60 <= patient.slices <= 120
        slice_z = [-(patient.slices - 1) * 2.5 / 2.0 + k * 2.5 for k in range(patient.slices)]
        for lesion in patient.lesions:
            assert lesion.center_mm[2] in slice_z
            assert lesion.long_axis_mm >= lesion.short_axis_mm > 0
