"""Training-ready NIfTI datasets of a task's lesion masks: nnU-Net v2 raw datasets and MONAI datalists.

Each case with masks becomes one image (the case's series, real values, HU for CT) and one label
map on exactly its voxel grid (1 = lesion, 0 = background), both RAS-oriented NIfTI written by
`viewer.nifti.from_dicom`. A gold case's label map is its answer key's masks (the expert reference);
any other case's is the union of its current consensus lesions' masks (STAPLE or majority, as the
task's consensus method says). Beside each label map an agreement map holds, per voxel, the
fraction of the case's crowd reads that painted it. This module must never name readers (no
reader appears in a dataset) and never write an empty dataset: a task without masks is refused with
`NoTrainingLabels` before anything is written.
"""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import nibabel as nib
import numpy as np

from annotations.core import mask_rle
from annotations.exports import bundle, csv_export
from annotations.exports.sources import SeriesSources, software_version
from annotations.models import Case, CaseConsensus, MaskSlice, Read, Task
from annotations.reading.answer_keys import answer_keys_of_task
from viewer.models import Instance
from viewer.nifti.from_dicom import masks_to_label_nifti, series_to_nifti
from viewer.services.stored_files import local_path

Layout = Literal["nnunet", "monai"]
LabelSource = Literal["answer_key", "consensus"]
LESION_LABEL = 1
CASES_COLUMNS = ("case_name", "case_id", "case_label", "series_instance_uid", "label_source", "n_reads", "lesions")


class NoTrainingLabels(ValueError):
    """A dataset export of a task that has nothing to learn from (no masks, or a follow-up task)."""


@dataclass(frozen=True)
class LabelledCase:
    """A case that has masks, and where they come from (its answer key read, or its current consensus)."""

    case: Case
    source: LabelSource
    answer_key: Read | None = None
    consensus: CaseConsensus | None = None

    @property
    def name(self) -> str:
        """The case's file stem in the dataset, e.g. `case_00012` (nnU-Net's `<prefix>_<id>` identifiers)."""
        return f"case_{self.case.pk:05d}"


def labelled_cases(task: Task) -> list[LabelledCase]:
    """Return the task's cases that have masks, in case order: answer key masks first, else consensus masks."""
    if task.is_follow_up:
        return []
    keys = {
        case_id: read
        for case_id, read in answer_keys_of_task(task_id=task.pk).items()
        if MaskSlice.objects.filter(read=read).exists()
    }
    consensus: dict[int, CaseConsensus] = {}
    for row in csv_export.current_consensus(task).prefetch_related("lesions"):
        if row.case_id in consensus:
            continue
        if any(lesion.accepted and lesion.mask_slices for lesion in row.lesions.all()):
            consensus[row.case_id] = row
    cases = Case.objects.filter(task=task, pk__in=set(keys) | set(consensus)).select_related("series__study")
    result = []
    for case in cases.order_by("id"):
        if case.pk in keys:
            result.append(LabelledCase(case=case, source="answer_key", answer_key=keys[case.pk]))
        else:
            result.append(LabelledCase(case=case, source="consensus", consensus=consensus[case.pk]))
    return result


def check_has_labels(task: Task) -> None:
    """Raise NoTrainingLabels naming the task when a dataset export of it would be empty."""
    if task.is_follow_up:
        raise NoTrainingLabels(
            f"task {task.pk} ({task.name}) is a follow-up task: training datasets are made from the masks of "
            "single-time-point tasks"
        )
    if not labelled_cases(task):
        raise NoTrainingLabels(
            f"task {task.pk} ({task.name}) has no lesion masks (no consensus masks and no answer-key masks): "
            "nothing to train on. Give the task the mask tool and compute consensus, or import label maps as "
            "answer keys (manage.py import_nifti_labels)."
        )


def channel_name(cases: Iterable[LabelledCase]) -> str:
    """Return the dataset's one channel name, the series' modality ('CT', 'MR'); refuse mixed modalities."""
    modalities = {(item.case.series.modality or "MR").upper() for item in cases}
    if len(modalities) > 1:
        raise ValueError(f"the task's labelled cases mix modalities {sorted(modalities)}: one channel per dataset")
    return modalities.pop() if modalities else "MR"


def _slice_masks(rows: Iterable[tuple[str, int, list[int]]], sources: SeriesSources) -> dict[int, np.ndarray]:
    """Union of run-length masks by slice index: rows are (SOP instance UID, frame, counts)."""
    masks: dict[int, np.ndarray] = {}
    for uid, frame, counts in rows:
        instance = sources.by_uid(uid)
        index = sources.slice_index(instance_id=instance.pk, frame=frame)
        plane = mask_rle.decode(counts, rows=instance.rows, columns=instance.columns)
        masks[index] = masks[index] | plane if index in masks else plane
    return masks


def label_masks(item: LabelledCase, sources: SeriesSources) -> dict[int, np.ndarray]:
    """Return the case's lesion mask by slice index (bool [rows, columns]), from its answer key or consensus."""
    if item.answer_key is not None:
        rows = (
            (mask.instance.sop_instance_uid, mask.frame, mask.counts)
            for mask in item.answer_key.mask_slices.select_related("instance")
        )
        return _slice_masks(rows, sources)
    lesions = [lesion for lesion in item.consensus.lesions.all() if lesion.accepted and lesion.mask_slices]
    rows = (
        (entry["sop_instance_uid"], int(entry.get("frame", 1)), entry["counts"])
        for lesion in lesions
        for entry in lesion.mask_slices
    )
    return _slice_masks(rows, sources)


def agreement_masks(case: Case, sources: SeriesSources) -> tuple[dict[int, np.ndarray], int]:
    """Return (per slice index, the fraction of the case's crowd reads that painted each pixel; how many reads).

    The reads are each reader's latest non-skip read of the case, as the consensus counts them; a read
    that painted nothing counts as a vote for background.
    """
    reads = list(bundle.latest_reads(case.task).filter(case=case).values_list("pk", flat=True))
    if not reads:
        return {}, 0
    votes: dict[int, np.ndarray] = {}
    for read_id in reads:
        rows = (
            (mask.instance.sop_instance_uid, mask.frame, mask.counts)
            for mask in MaskSlice.objects.filter(read_id=read_id).select_related("instance")
        )
        for index, plane in _slice_masks(rows, sources).items():
            votes.setdefault(index, np.zeros(plane.shape, dtype=np.float32))
            votes[index] += plane
    return {index: count / len(reads) for index, count in votes.items()}, len(reads)


def _single_frame(sources: SeriesSources, case: Case) -> list[Instance]:
    multi = [instance for instance in sources.instances if instance.number_of_frames > 1]
    if multi:
        raise ValueError(
            f"case {case.pk} is a multi-frame series ({multi[0].sop_instance_uid}): NIfTI datasets are made "
            "from single-frame series"
        )
    return sources.instances


def _agreement_nifti(fractions: dict[int, np.ndarray], *, paths: list, shape_like: nib.Nifti1Image) -> nib.Nifti1Image:
    """A float32 image of reader agreement (0..1) on the label map's grid and affine."""
    # masks_to_label_nifti keeps integer values, so per-mille votes are laid out there and scaled back.
    per_mille = {index: np.rint(plane * 1000).astype(np.uint16) for index, plane in fractions.items()}
    grid = masks_to_label_nifti(per_mille, instances=paths) if per_mille else shape_like
    values = np.asarray(grid.dataobj, dtype=np.float32) / 1000 if per_mille else np.zeros(shape_like.shape, np.float32)
    image = nib.Nifti1Image(values, shape_like.affine, header=shape_like.header)
    image.set_data_dtype(np.float32)
    image.set_qform(shape_like.affine, code=1)
    image.set_sform(shape_like.affine, code=1)
    return image


def nifti_gz_bytes(image: nib.Nifti1Image) -> bytes:
    """The image as .nii.gz bytes (no timestamp in the gzip header, so the same data gives the same bytes)."""
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


@dataclass(frozen=True)
class CaseFiles:
    item: LabelledCase
    image: nib.Nifti1Image
    label: nib.Nifti1Image
    agreement: nib.Nifti1Image | None
    n_reads: int
    n_lesion_voxels: int


def case_files(item: LabelledCase) -> CaseFiles:
    """Build one case's image, label map and (with crowd reads) agreement map, on one voxel grid."""
    sources = SeriesSources.load(item.case.series)
    paths = [local_path(instance) for instance in _single_frame(sources, item.case)]
    image = series_to_nifti(paths)
    masks = label_masks(item, sources)
    label = masks_to_label_nifti(masks, instances=paths, label=LESION_LABEL)
    fractions, n_reads = agreement_masks(item.case, sources)
    agreement = _agreement_nifti(fractions, paths=paths, shape_like=label) if n_reads else None
    return CaseFiles(
        item=item,
        image=image,
        label=label,
        agreement=agreement,
        n_reads=n_reads,
        n_lesion_voxels=int(np.count_nonzero(np.asarray(label.dataobj))),
    )


def entry_names(layout: Layout, case_name: str) -> dict[str, str]:
    """The archive names of one case's files: image, label and agreement."""
    image = f"imagesTr/{case_name}_0000.nii.gz" if layout == "nnunet" else f"imagesTr/{case_name}.nii.gz"
    return {
        "image": image,
        "label": f"labelsTr/{case_name}.nii.gz",
        "agreement": f"agreementTr/{case_name}.nii.gz",
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:50] or "Task"


def nnunet_dataset_json(*, task: Task, channel: str, n_training: int) -> dict:
    """nnU-Net v2's dataset.json: channel names, labels, numTraining and file ending (extra keys are ignored)."""
    return {
        "channel_names": {"0": channel},
        "labels": {"background": 0, "lesion": LESION_LABEL},
        "numTraining": n_training,
        "file_ending": ".nii.gz",
        "name": _slug(task.name),
        "description": f"Readerboard task {task.pk}: {task.name} ({task.finding})",
        "reference": "Readerboard crowd consensus and answer keys",
        "release": software_version(),
    }


def monai_datalist(*, task: Task, channel: str, entries: list[dict]) -> dict:
    """A Medical Segmentation Decathlon-style dataset.json, as `monai.data.load_decathlon_datalist` reads it."""
    return {
        "name": _slug(task.name),
        "description": f"Readerboard task {task.pk}: {task.name} ({task.finding})",
        "reference": "Readerboard crowd consensus and answer keys",
        "release": software_version(),
        "tensorImageSize": "3D",
        "modality": {"0": channel},
        "labels": {"0": "background", str(LESION_LABEL): "lesion"},
        "numTraining": len(entries),
        "numTest": 0,
        "training": entries,
        "test": [],
    }


def _write_nifti(archive: zipfile.ZipFile, name: str, image: nib.Nifti1Image) -> None:
    # Already gzipped: storing avoids deflating twice.
    archive.writestr(name, nifti_gz_bytes(image), compress_type=zipfile.ZIP_STORED)


def _cases_rows(written: list[CaseFiles]) -> Iterator[dict]:
    for files in written:
        item = files.item
        if item.answer_key is not None:
            lesions = len(set(item.answer_key.mask_slices.values_list("lesion_index", flat=True)))
        else:
            lesions = sum(1 for lesion in item.consensus.lesions.all() if lesion.accepted and lesion.mask_slices)
        yield {
            "case_name": item.name,
            "case_id": item.case.pk,
            "case_label": item.case.label,
            "series_instance_uid": item.case.series.series_instance_uid,
            "label_source": item.source,
            "n_reads": files.n_reads,
            "lesions": lesions,
        }


def write_dataset(archive: zipfile.ZipFile, *, task: Task, layout: Layout, tick: Callable[[], None]) -> int:
    """Write the task's dataset in `layout` into the archive, ticking once per case; return the cases written."""
    check_has_labels(task)
    cases = labelled_cases(task)
    channel = channel_name(cases)
    written: list[CaseFiles] = []
    entries = []
    for item in cases:
        files = case_files(item)
        names = entry_names(layout, item.name)
        _write_nifti(archive, names["image"], files.image)
        _write_nifti(archive, names["label"], files.label)
        entry = {"image": f"./{names['image']}", "label": f"./{names['label']}"}
        if files.agreement is not None:
            _write_nifti(archive, names["agreement"], files.agreement)
            entry["agreement"] = f"./{names['agreement']}"
        entries.append(entry)
        written.append(files)
        tick()
    if layout == "nnunet":
        document = nnunet_dataset_json(task=task, channel=channel, n_training=len(written))
    else:
        document = monai_datalist(task=task, channel=channel, entries=entries)
    archive.writestr("dataset.json", json.dumps(document, indent=2) + "\n")
    bundle.write_csv_entry(archive, "cases.csv", csv_export.iter_csv_lines(_cases_rows(written), columns=CASES_COLUMNS))
    archive.writestr("README.txt", readme_text(task=task, layout=layout, cases=len(written), channel=channel))
    return len(written)


def readme_text(*, task: Task, layout: Layout, cases: int, channel: str) -> str:
    """The README.txt of a dataset archive: layout, label sources, geometry and how to use it."""
    image_name = "imagesTr/<case>_0000.nii.gz" if layout == "nnunet" else "imagesTr/<case>.nii.gz"
    lines = [
        f"Readerboard {'nnU-Net v2' if layout == 'nnunet' else 'MONAI'} dataset of task {task.pk}: {task.name}",
        f"Made by Readerboard {software_version()}. Finding: {task.finding}. {cases} cases, channel 0 = {channel}.",
        "",
        f"{image_name:33} the case's series as NIfTI (real values: HU for CT), RAS-oriented.",
        "labelsTr/<case>.nii.gz            1 = lesion, 0 = background, on exactly the image's voxel grid and affine.",
        "                                  Gold cases: the answer key's masks; other cases: the union of the",
        f"                                  accepted consensus lesions' masks ({task.get_consensus_method_display()}).",
        "agreementTr/<case>.nii.gz         float32, per voxel the fraction of the case's crowd reads that painted it",
        "                                  (cases with crowd reads only).",
        "cases.csv                         case name -> Readerboard case id, series UID, label source, reads, lesions.",
    ]
    if layout == "nnunet":
        lines += [
            "dataset.json                      channel_names, labels, numTraining, file_ending (nnU-Net v2).",
            "",
            "Unzip into $nnUNet_raw/Dataset<NNN>_<Name>/ (pick a free dataset id), then run",
            "nnUNetv2_plan_and_preprocess -d <NNN> --verify_dataset_integrity.",
        ]
    else:
        lines += [
            "dataset.json                      Medical Segmentation Decathlon datalist: load it with monai.data.",
            "                                  load_decathlon_datalist('dataset.json', data_list_key='training')",
            "                                  and LoadImaged(keys=['image', 'label']).",
        ]
    return "\n".join(lines) + "\n"
