"""Zip archives of a task's exports: DICOM SR / SEG sets, and the bundle of everything with a README.txt.

Every archive lists its DICOM files in manifest.csv (file, case, read, reader,
UIDs) so a script finds what it needs without parsing DICOM. DICOM files hold the
latest version of each reader's read; the CSV keeps every version. This module
writes into an open zip file it is given and must never choose where archives go
or touch ExportJob rows (service.py does both).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from annotations.exports import csv_export, sanitise, seg_export, sr_export
from annotations.exports.sources import SeriesCache, reader_label, software_version
from annotations.models import CaseConsensus, Mark, MaskSlice, Read, Task
from viewer.dicom_files import READERBOARD_UID_ROOT

DicomKind = Literal["sr", "seg"]
Tick = Callable[[int], None]

MANIFEST_COLUMNS = (
    "file",
    "kind",
    "case_id",
    "case_label",
    "read_id",
    "read_version",
    "reader",
    "consensus_id",
    "algorithm_version",
    "n_lesions",
    "sop_instance_uid",
    "series_instance_uid",
    "source_series_instance_uid",
)


@dataclass(frozen=True)
class ManifestEntry:
    file: str
    kind: str
    case_id: int
    case_label: str
    read_id: int | str
    read_version: int | str
    reader: str
    consensus_id: int | str
    algorithm_version: str
    n_lesions: int
    sop_instance_uid: str
    series_instance_uid: str
    source_series_instance_uid: str


def latest_reads(task: Task) -> QuerySet[Read]:
    """Each reader's latest read of each case of the task (skips left out), in case order."""
    later = Read.objects.filter(
        case_id=OuterRef("case_id"), reader_id=OuterRef("reader_id"), version__gt=OuterRef("version")
    )
    return (
        Read.objects.filter(case__task=task, skip=False)
        .exclude(Exists(later))
        .select_related("case__series__study", "reader")
        .order_by("case_id", "id")
    )


def reads_for(task: Task, kind: DicomKind) -> QuerySet[Read]:
    """The reads that give a DICOM file of this kind: lines for SR, masks for SEG."""
    rows = Mark if kind == "sr" else MaskSlice
    return latest_reads(task).filter(Exists(rows.objects.filter(read_id=OuterRef("pk")))).select_related("question_set")


def consensus_for(task: Task) -> QuerySet[CaseConsensus]:
    return csv_export.current_consensus(task)


def dicom_steps(task: Task, kind: DicomKind) -> int:
    """How many documents a DICOM set may hold (reads plus case consensus), for progress."""
    return reads_for(task, kind).count() + consensus_for(task).values("case_id").distinct().count()


class SegmentLinks:
    """The UIDs of the SEG documents an archive will hold, chosen before the SRs that point at them.

    A bundle writes SRs first; each SR lesion with a mask references its segment in the
    SEG of the same read (or case consensus), so both sides take their UIDs from here.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[int, str], str] = {}
        self._instances: dict[tuple[str, int], str] = {}

    def series_uid(self, case_id: int, role: str) -> str:
        """The SEG series of a case's reads (role "reads") or consensus (role "consensus")."""
        return self._series.setdefault((case_id, role), generate_uid(prefix=READERBOARD_UID_ROOT))

    def instance_uid(self, owner: str, pk: int) -> str:
        """The SEG instance of one read (owner "read") or one consensus (owner "consensus")."""
        return self._instances.setdefault((owner, pk), generate_uid(prefix=READERBOARD_UID_ROOT))

    def _segments(self, numbers: dict[int, int], *, series, case_id: int, role: str, owner: str, pk: int) -> dict:
        if not numbers:
            return {}
        place = dict(
            study_instance_uid=series.study.study_instance_uid,
            series_instance_uid=self.series_uid(case_id, role),
            sop_instance_uid=self.instance_uid(owner, pk),
            source_series_instance_uid=series.series_instance_uid,
        )
        return {index: sr_export.SegmentInSeg(segment_number=number, **place) for index, number in numbers.items()}

    def read_segments(self, read: Read) -> dict[int, sr_export.SegmentInSeg]:
        """Lesion number -> its segment in the read's SEG; empty when the read painted no mask."""
        numbers = seg_export.read_segment_numbers(read)
        return self._segments(
            numbers, series=read.case.series, case_id=read.case_id, role="reads", owner="read", pk=read.pk
        )

    def consensus_segments(self, consensus: CaseConsensus) -> dict[int, sr_export.SegmentInSeg]:
        numbers = seg_export.consensus_segment_numbers(consensus)
        return self._segments(
            numbers,
            series=consensus.case.series,
            case_id=consensus.case_id,
            role="consensus",
            owner="consensus",
            pk=consensus.pk,
        )


def dicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def iter_dicom_documents(
    *, task: Task, kind: DicomKind, pseudonymise: bool, tick: Tick | None = None, links: SegmentLinks | None = None
) -> Iterator[tuple[ManifestEntry, Dataset]]:
    """Yield (manifest entry, dataset) for each read's and each case consensus's SR or SEG, case by case.

    With `links` (an archive holding both SR and SEG), SR lesions reference their SEG segments.
    """
    series_cache = SeriesCache()
    series = _DocumentSeries(kind=kind, links=links)
    yield from _read_documents(
        task=task,
        kind=kind,
        pseudonymise=pseudonymise,
        tick=tick,
        links=links,
        series_cache=series_cache,
        series=series,
    )
    yield from _consensus_documents(
        task=task, kind=kind, tick=tick, links=links, series_cache=series_cache, series=series
    )


class _DocumentSeries:
    """One DICOM series per case and kind of document, its instances numbered from 1."""

    def __init__(self, *, kind: DicomKind, links: SegmentLinks | None) -> None:
        self._kind = kind
        self._links = links
        self._series_uids: dict[tuple[int, str], str] = {}
        self._numbers: dict[tuple[int, str], int] = {}

    def place(self, *, case_id: int, role: str) -> tuple[str, int]:
        """Return the series UID and next instance number of a case's read (role "reads") or consensus document."""
        key = (case_id, role)
        if key not in self._series_uids:
            self._series_uids.clear()  # cases come in order; keep only the current one
            linked = self._links is not None and self._kind == "seg"
            self._series_uids[key] = (
                self._links.series_uid(case_id, role) if linked else generate_uid(prefix=READERBOARD_UID_ROOT)
            )
        self._numbers[key] = self._numbers.pop(key, 0) + 1
        return self._series_uids[key], self._numbers[key]


def _link_arguments(*, links: SegmentLinks | None, kind: DicomKind, owner: str, item: Read | CaseConsensus) -> dict:
    """Extra arguments that tie an SR to its SEG segments, or a SEG to the UID its SR points at."""
    if links is None:
        return {}
    if kind == "seg":
        return {"sop_instance_uid": links.instance_uid(owner, item.pk)}
    return {"segments": links.read_segments(item) if owner == "read" else links.consensus_segments(item)}


def _archive_folder(*, kind: DicomKind) -> str:
    """Return the archive folder that holds documents of this kind."""
    return "sr" if kind == "sr" else "seg"


def _read_documents(
    *,
    task: Task,
    kind: DicomKind,
    pseudonymise: bool,
    tick: Tick | None,
    links: SegmentLinks | None,
    series_cache: SeriesCache,
    series: _DocumentSeries,
) -> Iterator[tuple[ManifestEntry, Dataset]]:
    """Yield (manifest entry, dataset) for the SR or SEG of each reader's latest read, case by case."""
    build_read = sr_export.sr_for_read if kind == "sr" else seg_export.seg_for_read
    for read in reads_for(task, kind).iterator(chunk_size=200):
        sources = series_cache.get(read.case.series)
        series_uid, number = series.place(case_id=read.case_id, role="reads")
        ds = sanitise.or_skip(
            build_read,
            what=f"the DICOM document of read {read.pk}",
            kind=sanitise.DOCUMENTS_SKIPPED,
            read=read,
            task=task,
            sources=sources,
            series_instance_uid=series_uid,
            instance_number=number,
            pseudonymise=pseudonymise,
            **_link_arguments(links=links, kind=kind, owner="read", item=read),
        )
        if tick:
            tick(1)  # a left-out document still counts as a step done
        if ds is None:
            continue
        yield _read_entry(read=read, ds=ds, kind=kind, pseudonymise=pseudonymise), ds


def _read_entry(*, read: Read, ds: Dataset, kind: DicomKind, pseudonymise: bool) -> ManifestEntry:
    """Return the manifest entry of one read's SR or SEG."""
    return ManifestEntry(
        file=f"{_archive_folder(kind=kind)}/case-{read.case_id}/read-{read.pk}-v{read.version}.dcm",
        kind=f"{kind}_read",
        case_id=read.case_id,
        case_label=read.case.label,
        read_id=read.pk,
        read_version=read.version,
        reader=reader_label(read.reader, pseudonymise=pseudonymise),
        consensus_id="",
        algorithm_version="",
        n_lesions=count_lesions(ds, kind),
        sop_instance_uid=ds.SOPInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
        source_series_instance_uid=read.case.series.series_instance_uid,
    )


def _current_consensus_per_case(*, task: Task) -> Iterator[CaseConsensus]:
    """Yield the newest current consensus of each case of the task, in case order."""
    last_case_id = None
    for consensus in consensus_for(task).iterator(chunk_size=200):
        if consensus.case_id == last_case_id:  # an older "current" row left by a crashed rerun
            continue
        last_case_id = consensus.case_id
        yield consensus


def _consensus_documents(
    *,
    task: Task,
    kind: DicomKind,
    tick: Tick | None,
    links: SegmentLinks | None,
    series_cache: SeriesCache,
    series: _DocumentSeries,
) -> Iterator[tuple[ManifestEntry, Dataset]]:
    """Yield (manifest entry, dataset) for the SR or SEG of each case's current consensus."""
    build_consensus = sr_export.sr_for_consensus if kind == "sr" else seg_export.seg_for_consensus
    for consensus in _current_consensus_per_case(task=task):
        sources = series_cache.get(consensus.case.series)
        series_uid, number = series.place(case_id=consensus.case_id, role="consensus")
        ds = sanitise.or_skip(
            build_consensus,
            what=f"the DICOM document of consensus {consensus.pk}",
            kind=sanitise.DOCUMENTS_SKIPPED,
            consensus=consensus,
            task=task,
            sources=sources,
            series_instance_uid=series_uid,
            instance_number=number,
            **_link_arguments(links=links, kind=kind, owner="consensus", item=consensus),
        )
        if tick:
            tick(1)  # a left-out document still counts as a step done
        if ds is None:
            continue
        yield _consensus_entry(consensus=consensus, ds=ds, kind=kind), ds


def _consensus_entry(*, consensus: CaseConsensus, ds: Dataset, kind: DicomKind) -> ManifestEntry:
    """Return the manifest entry of one case consensus's SR or SEG."""
    return ManifestEntry(
        file=f"{_archive_folder(kind=kind)}/case-{consensus.case_id}/consensus.dcm",
        kind=f"{kind}_consensus",
        case_id=consensus.case_id,
        case_label=consensus.case.label,
        read_id="",
        read_version="",
        reader="",
        consensus_id=consensus.pk,
        algorithm_version=consensus.algorithm_version,
        n_lesions=count_lesions(ds, kind),
        sop_instance_uid=ds.SOPInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
        source_series_instance_uid=consensus.case.series.series_instance_uid,
    )


def count_lesions(ds: Dataset, kind: DicomKind) -> int:
    if kind == "seg":
        return len(ds.SegmentSequence)
    # TID 1500: the "Imaging Measurements" container holds a group per lesion's lines and per lesion's
    # mask; both groups of one lesion share its tracking UID.
    measurements = [item for item in ds.ContentSequence if item.ValueType == "CONTAINER"]
    return len(
        {
            entry.UID
            for container in measurements
            for group in container.get("ContentSequence", [])
            if group.ValueType == "CONTAINER"
            for entry in group.get("ContentSequence", [])
            if entry.ValueType == "UIDREF" and entry.ConceptNameCodeSequence[0].CodeValue == "112040"
        }
    )


def write_dicom_set(
    archive: zipfile.ZipFile,
    *,
    task: Task,
    kind: DicomKind,
    pseudonymise: bool,
    tick: Tick | None = None,
    links: SegmentLinks | None = None,
) -> list[ManifestEntry]:
    """Write the task's SR or SEG documents into the archive; return their manifest entries."""
    entries = []
    for entry, ds in iter_dicom_documents(task=task, kind=kind, pseudonymise=pseudonymise, tick=tick, links=links):
        if write_dicom_entry(archive, entry, ds):
            entries.append(entry)
    return entries


def write_dicom_entry(archive: zipfile.ZipFile, entry: ManifestEntry, ds: Dataset) -> bool:
    """Write one document into the archive; False (counted) when its values cannot be encoded after all."""
    data = sanitise.or_skip(dicom_bytes, what=entry.file, kind=sanitise.DOCUMENTS_SKIPPED, ds=ds)
    if data is None:
        return False
    archive.writestr(entry.file, data)
    return True


def csv_entry_name(task: Task, part: str) -> str:
    """The CSV's name inside an archive: reads/consensus, or follow-up lesions/responses for follow-up tasks."""
    if task.is_follow_up:
        return "follow-up-lesions.csv" if part == "csv" else "follow-up-responses.csv"
    return "reads.csv" if part == "csv" else "consensus.csv"


def write_csv_entry(archive: zipfile.ZipFile, name: str, lines: Iterable[str]) -> None:
    """Stream CSV text into an archive member without building it in memory."""
    with archive.open(name, "w", force_zip64=True) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        for line in lines:
            text.write(line)


def manifest_lines(entries: Iterable[ManifestEntry], *, raw_cells: bool = False) -> Iterator[str]:
    return csv_export.iter_csv_lines(
        (asdict(entry) for entry in entries), columns=MANIFEST_COLUMNS, raw_cells=raw_cells
    )


def readme_text(
    *, task: Task, parts: Iterable[str], pseudonymise: bool, counts: dict[str, int], identify_teams: bool = False
) -> str:
    """The README.txt of an archive: what each file is, how readers are named, where the columns are documented."""
    parts = list(parts)
    lines = [
        f"Readerboard export of task {task.pk}: {task.name}",
        f"Made {timezone.now().isoformat(timespec='seconds')} by Readerboard {software_version()}.",
        f"Finding: {task.finding}. Consensus method: {task.get_consensus_method_display()}.",
        "",
        "Readers are named by their stable pseudonym (R-XXXXXX)."
        if pseudonymise
        else "Readers are named by their display names: this export identifies people; keep it confidential.",
        "Teams (reads.csv, reader_team) are named by their names."
        if identify_teams or not pseudonymise
        else "Teams (reads.csv, reader_team) are named by their stable pseudonym (T-XXXXXX).",
        "",
        "Contents",
        "--------",
    ]
    if task.is_follow_up:
        return sanitise.text("\n".join(lines + _follow_up_contents(parts, counts)) + "\n")
    if "csv" in parts:
        lines += [
            f"reads.csv       one row per mark of every read, every version ({counts.get('csv', 0)} rows):",
            "                long and short axes (image and patient coordinates, length in mm), mask slices,",
            "                no-lesion and skip votes, and a column per task question (lesion answers on",
            "                lesion rows, case answers on every row of the read). Columns: docs/exports.md in",
            "                the Readerboard repository.",
        ]
    if "model_review" in counts:
        lines += [
            "model_review.csv one row per model lesion a reader of this check-the-model task was shown, and per",
            f"                lesion a reader added ({counts['model_review']} rows): accepted, edited, rejected or",
            "                added, with the mask Dice and long-axis change (mm) between the model and the read.",
        ]
    if "consensus_csv" in parts:
        lines += [
            f"consensus.csv   one row per consensus line or mask slice ({counts.get('consensus_csv', 0)} rows),",
            "                with support, agreement and the consensus algorithm version, and the consensus",
            "                answer of every task question with its support.",
        ]
    if "sr" in parts:
        lines += [
            f"sr/             DICOM Comprehensive 3D SR, TID 1500 Measurement Report ({counts.get('sr', 0)} files):",
            "                sr/case-<case>/read-<read>-v<version>.dcm per read with lines (person observer = reader),",
            "                sr/case-<case>/consensus.dcm per case (device observer = Readerboard consensus).",
            "                Each measured lesion is a measurement group as OHIF reads it: tool tracking",
            "                identifier (Cornerstone3DTools@^0.1.0:Length or :Bidirectional), our tracking UID,",
            "                the lesion's label as Comment, and a Length (or Long Axis and Short Axis) in mm, each",
            "                with its line as an SCOORD POLYLINE under it. In a bundle, a lesion with a mask",
            "                also references its SEG segment. Answers: the coded lesion type is the group's",
            "                Finding, coded sites its Finding Sites; case answers are Qualitative Evaluations.",
        ]
    if "seg" in parts:
        lines += [
            f"seg/            DICOM Segmentation, binary ({counts.get('seg', 0)} files): one per read that painted",
            "                masks (a segment per lesion) and one per case consensus (accepted lesions).",
            "                Segments share tracking UIDs and identifiers with the SR groups of the same lesion.",
        ]
    if {"sr", "seg"} & set(parts):
        lines += [
            "manifest.csv    every DICOM file with its case, read, reader and UIDs.",
            "",
            "DICOM files hold each reader's latest read version; the CSV keeps all versions.",
            "SR and SEG open in OHIF, 3D Slicer (QuantitativeReporting), dcmqi and dcmtk (dsrdump).",
        ]
    return sanitise.text("\n".join(lines) + "\n")


def _follow_up_contents(parts: list[str], counts: dict[str, int]) -> list[str]:
    lines = []
    if "csv" in parts:
        lines += [
            f"follow-up-lesions.csv    one row per lesion per time point per read ({counts.get('csv', 0)} rows).",
        ]
    if "model_review" in counts:
        lines += [
            "model_review.csv one row per model lesion a reader of this check-the-model task was shown, and per",
            f"                lesion a reader added ({counts['model_review']} rows): accepted, edited, rejected or",
            "                added, with the mask Dice and long-axis change (mm) between the model and the read.",
        ]
    if "consensus_csv" in parts:
        lines += [
            f"follow-up-responses.csv  RECIST 1.1 per patient, time point and read, consensus and answer key "
            f"({counts.get('consensus_csv', 0)} rows).",
        ]
    if "sr" in parts:
        lines += [
            f"sr/                      TID 1500 per read and time point, consensus and baseline ({counts.get('sr', 0)}"
            " files): sr/case-<case>/tp-<index>/...; a lesion keeps one tracking UID at every time point.",
            "manifest.csv             every DICOM file with its case, read, reader and UIDs.",
        ]
    return lines + ["Columns: docs/exports.md (Follow-up tasks) in the Readerboard repository."]
