"""The demo's real-size CT: at least 500 slices at 1.25 mm or finer, its own collection and task, idempotent."""

import pytest

from annotations.demo import real_size_demo as demo_real_size
from annotations.demo.real_size_demo import REAL_SIZE_COLLECTION, REAL_SIZE_TASK, make_real_size_demo
from annotations.models import Case, ReferenceLesion, Task
from viewer.dicomweb.delivery import LOSSLESS_CACHE, frame_key
from viewer.models import Collection, Instance
from viewer.services import image_cache

pytestmark = pytest.mark.django_db


def test_the_real_size_patient_is_a_full_length_thin_slice_ct_with_its_lesion_inside():
    patient = demo_real_size.real_size_patient()
    extent_mm = (patient.slices - 1) * patient.slice_spacing_mm

    assert patient.slices >= 500 and patient.slice_spacing_mm <= 1.25
    assert (patient.rows, patient.columns) == (512, 512)
    (lesion,) = patient.lesions
    assert abs(lesion.center_mm[2]) < extent_mm / 2 - lesion.diameters_mm[2]
    assert lesion.center_mm[2] < 0  # where the synthetic liver is


def test_real_size_demo_makes_its_own_collection_task_and_ground_truth_and_encodes_the_frames(
    django_capture_on_commit_callbacks,
):
    # A short, small version of the same series keeps the test fast; the code path is the one make run takes.
    with django_capture_on_commit_callbacks(execute=True):
        task = make_real_size_demo(slices=30, size=64)

    (case,) = Case.objects.filter(task=task)
    assert task.name == REAL_SIZE_TASK
    assert case.series.study.collection == Collection.objects.get(name=REAL_SIZE_COLLECTION)
    assert case.series.instances.count() == 30
    lesion = ReferenceLesion.objects.get(series=case.series)
    assert lesion.long_axis_mm == 28.0
    assert all(image_cache.contains(LOSSLESS_CACHE, frame_key(instance, 1)) for instance in case.series.instances.all())


def test_a_second_or_interrupted_run_adds_nothing_twice(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = make_real_size_demo(slices=12, size=32)
    Task.objects.filter(pk=first.pk).delete()  # as if the first run stopped after importing

    second = make_real_size_demo(slices=12, size=32)

    assert Instance.objects.count() == 12
    assert ReferenceLesion.objects.count() == 1
    assert Task.objects.get(name=REAL_SIZE_TASK) == second
