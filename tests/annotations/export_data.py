"""Reads, marks, masks and a consensus built directly as rows on the small synthetic CT, for the export tests."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
from dataclasses import dataclass, field

import numpy as np
from django.utils import timezone

from annotations.models import CaseConsensus, ConsensusLesion, Mark, MaskSlice, Read, Task
from tests.factories import CaseFactory, ReaderFactory, ReadFactory, TaskFactory
from viewer.models import Instance, Series


def encode_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a boolean mask, row-major, starting with a run of zeros (the read format)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return [int(run) for run in runs]


def disc(rows: int, columns: int, *, center: tuple[float, float], radius: float) -> np.ndarray:
    """A filled disc of pixels (column, row centre) as a boolean mask."""
    rr, cc = np.mgrid[0:rows, 0:columns]
    return (cc - center[0]) ** 2 + (rr - center[1]) ** 2 <= radius**2


def line_length_mm(instance: Instance, start, end) -> float:
    row_spacing, column_spacing = instance.pixel_spacing_mm
    return math.hypot((end[0] - start[0]) * column_spacing, (end[1] - start[1]) * row_spacing)


@dataclass
class ExportScene:
    task: Task
    case: object
    series: Series
    instances: list[Instance]
    readers: list = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    masks: dict = field(default_factory=dict)
    consensus: CaseConsensus | None = None


def add_line(read: Read, *, lesion: int, kind: str, instance: Instance, start, end, frame: int = 1) -> Mark:
    return Mark.objects.create(
        read=read,
        lesion_index=lesion,
        kind=kind,
        instance=instance,
        frame=frame,
        start_col=start[0],
        start_row=start[1],
        end_col=end[0],
        end_row=end[1],
        length_mm=line_length_mm(instance, start, end),
    )


def add_mask(read: Read, *, lesion: int, instance: Instance, mask: np.ndarray) -> MaskSlice:
    return MaskSlice.objects.create(
        read=read,
        lesion_index=lesion,
        instance=instance,
        frame=1,
        counts=encode_counts(mask),
        pixel_count=int(mask.sum()),
    )


def build_scene(series: Series, *, finding: str = "Neoplasm") -> ExportScene:
    """One case, three readers: a bidirectional lesion with a mask, a corrected long axis, a no-lesion vote."""
    task = TaskFactory(finding=finding)
    case = CaseFactory(task=task, series=series)
    instances = list(Instance.objects.filter(series=series).order_by(*Instance._meta.ordering))
    middle = instances[len(instances) // 2]
    above = instances[len(instances) // 2 + 1]
    scene = ExportScene(task=task, case=case, series=series, instances=instances)
    alice, bob, carol = (ReaderFactory(role=role, years_experience=years) for role, years in
                         (("attending", 12), ("trainee", 3), ("student", 0)))  # fmt: skip
    scene.readers = [alice, bob, carol]
    started = timezone.now() - dt.timedelta(minutes=5)

    read_a = ReadFactory(
        case=case, reader=alice, started_at=started, duration_s=41.5, comment='margin "ill-defined", ok'
    )
    add_line(read_a, lesion=1, kind="long_axis", instance=middle, start=(15.5, 38.0), end=(31.25, 37.5))
    add_line(read_a, lesion=1, kind="short_axis", instance=middle, start=(23.0, 33.0), end=(23.5, 42.75))
    mask_middle = disc(64, 64, center=(23.5, 38.0), radius=6)
    mask_above = disc(64, 64, center=(23.5, 38.0), radius=4)
    add_mask(read_a, lesion=1, instance=middle, mask=mask_middle)
    add_mask(read_a, lesion=1, instance=above, mask=mask_above)
    add_line(read_a, lesion=2, kind="long_axis", instance=above, start=(40.0, 20.0), end=(46.0, 24.0))
    scene.masks = {(read_a.pk, 1, middle.pk): mask_middle, (read_a.pk, 1, above.pk): mask_above}

    read_b1 = ReadFactory(case=case, reader=bob, version=1, started_at=started, duration_s=20.0)
    add_line(read_b1, lesion=1, kind="long_axis", instance=middle, start=(16.0, 38.0), end=(30.0, 38.0))
    read_b2 = ReadFactory(case=case, reader=bob, version=2, supersedes=read_b1, duration_s=12.25, quality_problem=True)
    add_line(read_b2, lesion=1, kind="long_axis", instance=middle, start=(15.0, 38.5), end=(31.5, 38.0))
    read_c = ReadFactory(case=case, reader=carol, no_lesion=True, duration_s=9.0)
    scene.reads = [read_a, read_b1, read_b2, read_c]

    consensus = CaseConsensus.objects.create(
        case=case,
        algorithm_version="1.2.0",
        params={"method": "staple", "min_support": 2},
        inputs_hash="a" * 64,
        n_reads=3,
        summary={"agreement": 0.82, "no_lesion_votes": 1},
    )
    long_axis = {"sop_instance_uid": middle.sop_instance_uid, "frame": 1, "start": [15.5, 38.0], "end": [31.25, 37.5]}
    long_axis["length_mm"] = line_length_mm(middle, long_axis["start"], long_axis["end"])
    short_axis = {"sop_instance_uid": middle.sop_instance_uid, "frame": 1, "start": [23.0, 33.0], "end": [23.5, 42.75]}
    short_axis["length_mm"] = line_length_mm(middle, short_axis["start"], short_axis["end"])
    ConsensusLesion.objects.create(
        consensus=consensus,
        lesion_index=1,
        support=2,
        support_fraction=2 / 3,
        long_axis=long_axis,
        short_axis=short_axis,
        long_axis_median_mm=16.1,
        long_axis_iqr_mm=0.4,
        long_axis_cv=0.02,
        short_axis_median_mm=9.76,
        mask_slices=[
            {"sop_instance_uid": above.sop_instance_uid, "frame": 1, "counts": encode_counts(mask_above)},
            {"sop_instance_uid": middle.sop_instance_uid, "frame": 1, "counts": encode_counts(mask_middle)},
        ],
        mask_method="staple",
        members=[
            {"read_id": read_a.pk, "reader_id": alice.pk, "lesion_index": 1},
            {"read_id": read_b2.pk, "reader_id": bob.pk, "lesion_index": 1},
        ],
    )
    ConsensusLesion.objects.create(
        consensus=consensus,
        lesion_index=2,
        support=1,
        support_fraction=1 / 3,
        accepted=False,
        long_axis={"sop_instance_uid": above.sop_instance_uid, "frame": 1, "start": [40.0, 20.0],
                   "end": [46.0, 24.0], "length_mm": line_length_mm(above, (40.0, 20.0), (46.0, 24.0))},
        members=[{"read_id": read_a.pk, "reader_id": alice.pk, "lesion_index": 2}],
    )  # fmt: skip
    scene.consensus = consensus
    return scene


def dicom_tool_errors(tool: list[str], path) -> list[str]:
    """Run a dicom3tools/dcmtk command on a file; return its error lines (and a bad exit status)."""
    result = subprocess.run([*tool, str(path)], capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if "error" in line.lower()] + (
        [f"exit {result.returncode}"] if result.returncode else []
    )


def scene_questions() -> tuple[list[dict], list[dict]]:
    """Lesion questions (the type and site presets, a malignancy Likert) and case questions of every kind."""
    from pydicom.sr.codedict import codes

    from annotations.core.answers import validate_questions
    from annotations.questions.presets import lesion_site_question, lesion_type_question

    def coded(code) -> dict:
        return {"value": code.value, "scheme": code.scheme_designator, "meaning": code.meaning}

    lesion = [
        lesion_type_question(),
        lesion_site_question(),
        {"key": "malignancy", "kind": "likert", "label": "Malignancy", "required": False,
         "scale": {"min": 1, "max": 5, "min_label": "Benign", "max_label": "Malignant"}},
    ]  # fmt: skip
    case = [
        {"key": "metastases", "kind": "single_choice", "label": "Metastases", "required": True,
         "options": [{"value": "present", "label": "Present", "code": coded(codes.SCT.Present)},
                     {"value": "absent", "label": "Absent", "code": coded(codes.SCT.Absent)}]},
        {"key": "artefacts", "kind": "multiple_choice", "label": "Artefacts", "required": False,
         "options": [{"value": "motion", "label": "Motion"}, {"value": "metal", "label": "Metal"},
                     {"value": "noise", "label": "Noise"}]},
        {"key": "contrast", "kind": "yes_no", "label": "Contrast enhanced", "required": False},
        {"key": "confidence", "kind": "likert", "label": "Confidence", "required": False,
         "scale": {"min": 1, "max": 5}},
        {"key": "liver_span", "kind": "number", "label": "Liver span", "required": False,
         "number": {"min": 0, "max": 400, "integer": False,
                    "unit": {"value": "mm", "scheme": "UCUM", "meaning": "millimeter"}}},
        {"key": "impression", "kind": "text", "label": "Impression", "required": False, "max_length": 200},
    ]  # fmt: skip
    return validate_questions(lesion, case)


# Answers of the scene's reads: Alice answers everything, Bob's correction answers a few, Carol's
# no-lesion read answers case questions only.
SCENE_ANSWERS = {
    "alice": {
        "case": {"metastases": "present", "artefacts": ["motion", "noise"], "contrast": True, "confidence": 4,
                 "liver_span": 162.5, "impression": "Two hepatic lesions"},
        "lesions": {"1": {"lesion_type": "liver", "lesion_site": "liver", "malignancy": 5},
                    "2": {"lesion_type": "lung", "lesion_site": "lung"}},
    },
    "bob": {"case": {"metastases": "absent", "contrast": False},
            "lesions": {"1": {"lesion_type": "liver", "lesion_site": "liver", "malignancy": 3}}},
    "carol": {"case": {"metastases": "absent"}, "lesions": {}},
}  # fmt: skip


def add_scene_answers(scene: ExportScene):
    """Give the scene's task questions (version 1) and its reads the SCENE_ANSWERS; return the QuestionSet."""
    from annotations.models import QuestionSet

    lesion, case = scene_questions()
    question_set = QuestionSet.objects.create(task=scene.task, version=1, lesion_questions=lesion, case_questions=case)
    read_a, read_b1, read_b2, read_c = scene.reads
    for read, answers in ((read_a, "alice"), (read_b2, "bob"), (read_c, "carol")):
        read.question_set = question_set
        read.answers = SCENE_ANSWERS[answers]
        read.save(update_fields=["question_set", "answers"])
    return question_set


def add_scene_consensus_answers(scene: ExportScene) -> dict:
    """Store on the scene's consensus the consensus of SCENE_ANSWERS as the consensus service computes it."""
    from annotations.core.answer_consensus import question_consensus

    lesion_questions, case_questions = scene_questions()
    alice, bob, carol = scene.readers
    by_reader = {alice.pk: SCENE_ANSWERS["alice"], bob.pk: SCENE_ANSWERS["bob"], carol.pk: SCENE_ANSWERS["carol"]}
    case = {
        q["key"]: question_consensus(q, {r: a["case"].get(q["key"]) for r, a in by_reader.items()})
        for q in case_questions
    }
    # Consensus lesion 1 = Alice's and Bob's lesion 1; lesion 2 = Alice's lesion 2 alone.
    members = {"1": [(alice.pk, "1"), (bob.pk, "1")], "2": [(alice.pk, "2")]}
    lesions = {
        index: {
            q["key"]: question_consensus(
                q, {r: by_reader[r]["lesions"].get(lesion, {}).get(q["key"]) for r, lesion in pairs}
            )
            for q in lesion_questions
        }
        for index, pairs in members.items()
    }
    answers = {"version": 1, "case": case, "lesions": lesions, "flags": ["metastases: answers tie"]}
    scene.consensus.answers = answers
    scene.consensus.save(update_fields=["answers"])
    return answers
