"""Long-format CSV of a task's reads and of its consensus: one row per mark, streamed.

Rows are produced by generators that walk the database in chunks, so an export of
100,000 marks never holds them all; `iter_csv_lines` turns rows into CSV text for
a file or a streaming HTTP response. The columns are documented in docs/exports.md
and must never change meaning silently: add columns at the end instead. Reader
identities appear only as pseudonyms unless the caller asks otherwise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from itertools import islice

from django.db.models import Exists, F, OuterRef, QuerySet

from annotations.exports import answer_columns as answer_cols
from annotations.exports import sanitise
from annotations.exports.answer_columns import AnswerColumn
from annotations.exports.sources import SeriesCache, SeriesSources, reader_label, team_label
from annotations.models import (
    Case,
    CaseConsensus,
    ConsensusLesion,
    Mark,
    MaskProvenance,
    MaskSlice,
    QuestionSet,
    Read,
    Reader,
    SuggestionReview,
    Task,
)
from viewer.models import Instance

# Where a row's mark is: the same leading columns in both CSVs, so they join on them.
LOCATION_COLUMNS: tuple[str, ...] = (
    "task_id",
    "task_name",
    "case_id",
    "case_label",
    "is_gold",
    "patient_id",
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "frame",
    "slice_index",
)

READ_COLUMNS: tuple[str, ...] = (
    *LOCATION_COLUMNS,
    "read_id",
    "read_version",
    "is_latest_version",
    "reader",
    "reader_role",
    "reader_years_experience",
    "mark_kind",
    "lesion_index",
    "consensus_lesion_index",
    "start_col",
    "start_row",
    "end_col",
    "end_row",
    "start_x_mm",
    "start_y_mm",
    "start_z_mm",
    "end_x_mm",
    "end_y_mm",
    "end_z_mm",
    "length_mm",
    "mask_pixels",
    "mask_area_mm2",
    "no_lesion",
    "skip",
    "quality_problem",
    "comment",
    "started_at",
    "submitted_at",
    "duration_s",
    "reader_team",
    "question_version",
    "mask_source",
    "mask_algorithm",
    "mask_edit_dice",
    # Check-the-model tasks: where the lesion came from (SuggestionReview, computed by the server at submit).
    "model_origin",
    "model_name",
    "model_lesion",
    "model_dice",
    "model_long_axis_change_mm",
)

CONSENSUS_COLUMNS: tuple[str, ...] = (
    *LOCATION_COLUMNS,
    "consensus_id",
    "algorithm_version",
    "consensus_method",
    "n_reads",
    "case_agreement",
    "low_agreement",
    "mark_kind",
    "lesion_index",
    "accepted",
    "support",
    "support_fraction",
    "supporting_readers",
    "start_col",
    "start_row",
    "end_col",
    "end_row",
    "start_x_mm",
    "start_y_mm",
    "start_z_mm",
    "end_x_mm",
    "end_y_mm",
    "end_z_mm",
    "length_mm",
    "long_axis_median_mm",
    "long_axis_iqr_mm",
    "long_axis_cv",
    "short_axis_median_mm",
    "mask_method",
    "mask_pixels",
    "mask_area_mm2",
    "case_summary_json",
    "computed_at",
    "answer_flags",
)


def task_answer_columns(task: Task) -> list[AnswerColumn]:
    """The answer columns of every question the task ever asked (all versions)."""
    sets = QuestionSet.objects.filter(task=task).order_by("version").values_list("lesion_questions", "case_questions")
    return answer_cols.answer_columns(sets)


def consensus_columns(task: Task) -> tuple[str, ...]:
    """CONSENSUS_COLUMNS, then the consensus answer columns of every question of the task."""
    return (*CONSENSUS_COLUMNS, *answer_cols.consensus_column_names(task_answer_columns(task)))


def read_columns(task: Task) -> tuple[str, ...]:
    """READ_COLUMNS, then one column (two for coded choices) per question of the task."""
    return (*READ_COLUMNS, *answer_cols.column_names(task_answer_columns(task)))


# Reads per database round trip: bounds memory whatever the task's size.
READ_CHUNK = 500


def iter_csv_lines(rows: Iterable[dict], *, columns: Iterable[str], raw_cells: bool = False) -> Iterator[str]:
    """Yield the header line, then one CSV line per row (RFC 4180 quoting, CRLF line ends).

    Every cell goes through `sanitise.csv_cell`: text encodable as UTF-8, and formula-like text
    neutralised with a leading quote unless `raw_cells`.
    """
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise")
    writer.writerow({name: sanitise.csv_cell(name, raw=raw_cells) for name in columns})
    yield _drain(buffer)
    for row in rows:
        writer.writerow({name: sanitise.csv_cell(value, raw=raw_cells) for name, value in row.items()})
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


def _case_fields(case, task: Task) -> dict:
    series = case.series
    return {
        "task_id": task.pk,
        "task_name": task.name,
        "case_id": case.pk,
        "case_label": case.label,
        "is_gold": case.is_gold,
        "patient_id": series.study.patient_id,
        "study_instance_uid": series.study.study_instance_uid,
        "series_instance_uid": series.series_instance_uid,
    }


def _line_fields(
    *, sources: SeriesSources, instance: Instance, frame: int, start: tuple[float, float], end: tuple[float, float]
) -> dict:
    """Image and patient coordinates of a line's end points; patient columns stay blank without geometry."""
    fields = {"start_col": start[0], "start_row": start[1], "end_col": end[0], "end_row": end[1]}
    geometry = sources.frame_geometry(instance, frame)
    for name, (col, row) in (("start", start), ("end", end)):
        x = y = z = ""
        if geometry is not None:
            x, y, z = (float(v) for v in geometry.to_patient_mm(col, row))
        fields.update({f"{name}_x_mm": x, f"{name}_y_mm": y, f"{name}_z_mm": z})
    return fields


def _mask_area_mm2(instance: Instance, pixels: int) -> float | str:
    if not instance.pixel_spacing_mm:
        return ""
    row_spacing_mm, column_spacing_mm = instance.pixel_spacing_mm
    return pixels * float(row_spacing_mm) * float(column_spacing_mm)


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def reads_for_export(task: Task) -> QuerySet[Read]:
    """All reads of a task, every version, in case then submission order, flagged when a later version exists."""
    later = Read.objects.filter(
        case_id=OuterRef("case_id"), reader_id=OuterRef("reader_id"), version__gt=OuterRef("version")
    )
    return (
        Read.objects.filter(case__task=task)
        # The verbatim document can be large and every field it holds is a column already.
        .defer("document")
        .annotate(has_later_version=Exists(later), question_version=F("question_set__version"))
        .order_by("case_id", "id")
    )


def _consensus_lesion_by_mark(case_id: int) -> dict[tuple[int, int], int]:
    """Map (read id, reader's lesion index) to the current consensus lesion index of a case."""
    consensus = CaseConsensus.objects.filter(case_id=case_id, is_current=True).order_by("-computed_at").first()
    if consensus is None:
        return {}
    mapping = {}
    for lesion in consensus.lesions.all():
        for member in lesion.members or []:
            mapping[(int(member["read_id"]), int(member["lesion_index"]))] = lesion.lesion_index
    return mapping


MARK_FIELDS = ("read_id", "lesion_index", "kind", "instance_id", "frame", "start_col", "start_row", "end_col",
               "end_row", "length_mm")  # fmt: skip
MASK_FIELDS = ("read_id", "lesion_index", "instance_id", "frame", "pixel_count")
PROVENANCE_FIELDS = ("read_id", "lesion_index", "source", "algorithm", "algorithm_version", "edited", "edit_dice")
REVIEW_FIELDS = ("read_id", "read_lesion", "verdict", "model_name", "suggested_lesion", "mask_dice",
                 "long_axis_change_mm")  # fmt: skip


def iter_read_rows(
    *, task: Task, pseudonymise: bool = True, identify_teams: bool = False, reads: QuerySet[Read] | None = None
) -> Iterator[dict]:
    """Yield one row per mark, mask slice, or no-lesion/skip read of the task, in `read_columns(task)`.

    Teams are named by pseudonym unless `identify_teams` (or readers are identified: pseudonymise=False).
    Case answers go on every row of their read, lesion answers on the rows of their lesion.
    """
    reads = reads_for_export(task) if reads is None else reads
    columns = task_answer_columns(task)
    series_cache = SeriesCache()
    readers: dict[int, dict] = {}
    case_id, case_fields, lesion_map, sources = None, {}, {}, None
    # Plain tuples, not model instances: a 100,000-mark export spends its time writing, not building objects.
    for chunk in _chunks(reads.iterator(chunk_size=READ_CHUNK), READ_CHUNK):
        read_ids = [read.pk for read in chunk]
        marks_by_read: dict[int, list] = {}
        for mark in Mark.objects.filter(read_id__in=read_ids).values_list(*MARK_FIELDS, named=True):
            marks_by_read.setdefault(mark.read_id, []).append(mark)
        provenance_by_read: dict[int, dict[int, dict]] = {}
        for provenance in MaskProvenance.objects.filter(read_id__in=read_ids).values(*PROVENANCE_FIELDS):
            provenance_by_read.setdefault(provenance["read_id"], {})[provenance["lesion_index"]] = provenance
        reviews_by_read: dict[int, dict[int, dict]] = {}
        # Rejected suggestions have no read lesion, hence no row here: model_review.csv in the bundle lists them.
        for review in SuggestionReview.objects.filter(read_id__in=read_ids, read_lesion__isnull=False).values(
            *REVIEW_FIELDS
        ):
            reviews_by_read.setdefault(review["read_id"], {})[review["read_lesion"]] = review
        masks_by_read: dict[int, list] = {}
        for mask in MaskSlice.objects.filter(read_id__in=read_ids).order_by("id").values_list(*MASK_FIELDS, named=True):
            masks_by_read.setdefault(mask.read_id, []).append(mask)
        missing = {read.reader_id for read in chunk} - readers.keys()
        for reader in Reader.objects.filter(pk__in=missing).select_related("team"):
            readers[reader.pk] = _reader_fields(reader, pseudonymise=pseudonymise, identify_teams=identify_teams)
        for read in chunk:
            if read.case_id != case_id:
                case = Case.objects.select_related("series__study").get(pk=read.case_id)
                case_id, case_fields = case.pk, _case_fields(case, task)
                lesion_map, sources = _consensus_lesion_by_mark(case.pk), series_cache.get(case.series)
            # A read whose stored rows cannot make its lines (say, a mark on an image of another series)
            # is left out and counted, never fatal.
            yield from sanitise.rows_or_skip(
                _rows_of_read,
                what=f"the CSV rows of read {read.pk}",
                kind=sanitise.READS_SKIPPED,
                read=read,
                base={**case_fields, **readers[read.reader_id]},
                sources=sources,
                marks=marks_by_read.get(read.pk, []),
                masks=masks_by_read.get(read.pk, []),
                provenances=provenance_by_read.get(read.pk, {}),
                reviews=reviews_by_read.get(read.pk, {}),
                lesion_map=lesion_map,
                answer_columns=columns,
            )


def _reader_fields(reader: Reader, *, pseudonymise: bool, identify_teams: bool) -> dict:
    return {
        "reader": reader_label(reader, pseudonymise=pseudonymise),
        "reader_role": reader.role,
        "reader_years_experience": reader.years_experience,
        "reader_team": team_label(reader.team, identify=identify_teams or not pseudonymise),
    }


_BLANK_READ_ROW = dict.fromkeys(READ_COLUMNS, "")


def _rows_of_read(
    *,
    read: Read,
    base: dict,
    sources: SeriesSources,
    marks: list,
    masks: list,
    lesion_map: dict[tuple[int, int], int],
    answer_columns: list[AnswerColumn],
    provenances: dict[int, dict] | None = None,
    reviews: dict[int, dict] | None = None,
) -> Iterator[dict]:
    answers = sanitise.mapping(read.answers)
    lesion_answers = sanitise.mapping(answers.get("lesions"))
    base = {
        **_BLANK_READ_ROW,
        **base,
        "read_id": read.pk,
        "read_version": read.version,
        "is_latest_version": not getattr(read, "has_later_version", False),
        "no_lesion": read.no_lesion,
        "skip": read.skip,
        "quality_problem": read.quality_problem,
        "comment": read.comment,
        "started_at": _iso(read.started_at),
        "submitted_at": _iso(read.submitted_at),
        "duration_s": read.duration_s if read.duration_s is not None else "",
        "question_version": _blank_none(getattr(read, "question_version", None)),
        **answer_cols.answer_fields(answer_columns, scope=answer_cols.CASE, answers=answers.get("case")),
    }
    if not marks and not masks:
        yield {**base, "mark_kind": "skip" if read.skip else "no_lesion" if read.no_lesion else "none"}
        return
    items = [(mark.lesion_index, 0 if mark.kind == "long_axis" else 1, 0, mark) for mark in marks]
    for mask in masks:
        items.append((mask.lesion_index, 2, sources.slice_index(instance_id=mask.instance_id, frame=mask.frame), mask))
    items.sort(key=lambda entry: entry[:3])
    for lesion_index, order, _, item in items:
        instance = sources.instance(item.instance_id)
        row = {
            **base,
            "sop_instance_uid": instance.sop_instance_uid,
            "frame": item.frame,
            "slice_index": sources.slice_index(instance_id=instance.pk, frame=item.frame),
            "lesion_index": lesion_index,
            "consensus_lesion_index": lesion_map.get((read.pk, lesion_index), ""),
            **answer_cols.answer_fields(
                answer_columns, scope=answer_cols.LESION, answers=lesion_answers.get(str(lesion_index))
            ),
            **_review_fields((reviews or {}).get(lesion_index)),
        }
        if order < 2:
            row["mark_kind"] = item.kind
            row["length_mm"] = item.length_mm
            row.update(
                _line_fields(
                    sources=sources,
                    instance=instance,
                    frame=item.frame,
                    start=(item.start_col, item.start_row),
                    end=(item.end_col, item.end_row),
                )
            )
        else:
            row["mark_kind"] = "mask"
            row["mask_pixels"] = item.pixel_count
            row["mask_area_mm2"] = _mask_area_mm2(instance, item.pixel_count)
            row.update(_provenance_fields((provenances or {}).get(lesion_index)))
        yield row


def _provenance_fields(provenance: dict | None) -> dict:
    """mask_source (hand, line, tap; _edited when the reader changed the proposal), algorithm, edit Dice."""
    if provenance is None:
        return {"mask_source": "hand"}
    source = provenance["source"]
    if source == "hand":
        return {"mask_source": "hand"}
    return {
        "mask_source": f"{source}_edited" if provenance["edited"] else source,
        "mask_algorithm": f"{provenance['algorithm']} {provenance['algorithm_version']}".strip(),
        "mask_edit_dice": _blank_none(provenance["edit_dice"]),
    }


def _review_fields(review: dict | None) -> dict:
    """model_origin (accepted, edited, added) and what changed, for a lesion of a check-the-model read."""
    if review is None:
        return {}
    return {
        "model_origin": review["verdict"],
        "model_name": review["model_name"],
        "model_lesion": _blank_none(review["suggested_lesion"]),
        "model_dice": _blank_none(review["mask_dice"]),
        "model_long_axis_change_mm": _blank_none(review["long_axis_change_mm"]),
    }


MODEL_REVIEW_COLUMNS: tuple[str, ...] = (
    "task_id",
    "case_id",
    "case_label",
    "read_id",
    "read_version",
    "is_latest_version",
    "reader",
    "model_name",
    "suggested_lesion",
    "read_lesion",
    "verdict",
    "mask_dice",
    "long_axis_change_mm",
)


def has_model_reviews(task: Task) -> bool:
    """Whether any read of the task recorded what it made of a model's suggestion."""
    return SuggestionReview.objects.filter(read__case__task=task).exists()


def iter_model_review_rows(*, task: Task, pseudonymise: bool = True) -> Iterator[dict]:
    """Yield one row per SuggestionReview of the task (every read version), in `MODEL_REVIEW_COLUMNS`.

    Rejected suggestions (no read lesion) are only here; the reads CSV carries the other verdicts per lesion.
    """
    later = Read.objects.filter(
        case_id=OuterRef("read__case_id"), reader_id=OuterRef("read__reader_id"), version__gt=OuterRef("read__version")
    )
    reviews = (
        SuggestionReview.objects.filter(read__case__task=task)
        .select_related("read__case", "read__reader")
        .annotate(has_later_version=Exists(later))
        .order_by("read__case_id", "read_id", "id")
    )
    for review in reviews.iterator(chunk_size=READ_CHUNK):
        read = review.read
        yield {
            "task_id": task.pk,
            "case_id": read.case_id,
            "case_label": read.case.label,
            "read_id": read.pk,
            "read_version": read.version,
            "is_latest_version": not review.has_later_version,
            "reader": reader_label(read.reader, pseudonymise=pseudonymise) if read.reader else "",
            "model_name": review.model_name,
            "suggested_lesion": _blank_none(review.suggested_lesion),
            "read_lesion": _blank_none(review.read_lesion),
            "verdict": review.verdict,
            "mask_dice": _blank_none(review.mask_dice),
            "long_axis_change_mm": _blank_none(review.long_axis_change_mm),
        }


def current_consensus(task: Task) -> QuerySet[CaseConsensus]:
    """The current consensus of every case of a task, in case order."""
    return (
        CaseConsensus.objects.filter(case__task=task, is_current=True)
        .select_related("case__series__study")
        .order_by("case_id", "-computed_at")
    )


def iter_consensus_rows(*, task: Task, pseudonymise: bool = True) -> Iterator[dict]:
    """Yield one row per consensus line or mask slice (or one no_lesion row per case without lesions).

    Consensus answers to case questions go on every row of the case, to lesion questions on the rows
    of their consensus lesion; `answer_flags` lists the case's low-agreement questions.
    """
    series_cache = SeriesCache()
    columns = task_answer_columns(task)
    pseudonyms = dict(Reader.objects.filter(reads__case__task=task).distinct().values_list("pk", "pseudonym"))
    names = (
        pseudonyms if pseudonymise else dict(Reader.objects.filter(pk__in=pseudonyms).values_list("pk", "display_name"))
    )
    blank = dict.fromkeys(CONSENSUS_COLUMNS, "")
    last_case_id = None
    for consensus in current_consensus(task).iterator(chunk_size=200):
        if consensus.case_id == last_case_id:  # an older "current" row left by a crashed rerun
            continue
        last_case_id = consensus.case_id
        yield from sanitise.rows_or_skip(
            _consensus_rows,
            what=f"the CSV rows of consensus {consensus.pk}",
            kind=sanitise.CONSENSUS_SKIPPED,
            consensus=consensus,
            task=task,
            sources=series_cache.get(consensus.case.series),
            columns=columns,
            names=names,
            blank=blank,
        )


def _consensus_rows(
    *, consensus: CaseConsensus, task: Task, sources: SeriesSources, columns: list[AnswerColumn], names: dict,
    blank: dict,
) -> Iterator[dict]:  # fmt: skip
    """Yield one case consensus's rows: one per lesion line or mask slice, or one no_lesion row."""
    summary = sanitise.mapping(consensus.summary)
    answers = sanitise.mapping(consensus.answers)
    base = _consensus_case_fields(consensus=consensus, task=task, columns=columns, summary=summary, answers=answers)
    lesion_blocks = sanitise.mapping(answers.get("lesions"))
    lesions = list(consensus.lesions.all())
    if not lesions:
        yield {**blank, **base, "mark_kind": "no_lesion"}
        return
    for lesion in lesions:
        lesion_base = {
            **blank,
            **base,
            **_consensus_lesion_fields(lesion=lesion, columns=columns, names=names, lesion_blocks=lesion_blocks),
        }
        yield from _consensus_line_rows(lesion=lesion, lesion_base=lesion_base, sources=sources)
        yield from _consensus_mask_rows(lesion=lesion, lesion_base=lesion_base, sources=sources)


def _consensus_case_fields(
    *, consensus: CaseConsensus, task: Task, columns: list[AnswerColumn], summary: dict, answers: dict
) -> dict:
    """Return the columns every row of a case consensus shares: case, algorithm, agreement and case answers."""
    return {
        **_case_fields(consensus.case, task),
        "consensus_id": consensus.pk,
        "algorithm_version": consensus.algorithm_version,
        "consensus_method": (consensus.params or {}).get("method", task.consensus_method),
        "n_reads": consensus.n_reads,
        "case_agreement": summary.get("agreement", ""),
        "low_agreement": consensus.low_agreement,
        "case_summary_json": json.dumps(summary, sort_keys=True, separators=(",", ":")),
        "computed_at": _iso(consensus.computed_at),
        "answer_flags": answer_cols.LIST_SEPARATOR.join(map(str, answers.get("flags") or [])),
        **answer_cols.consensus_fields(columns, scope=answer_cols.CASE, blocks=answers.get("case")),
    }


def _consensus_lesion_fields(
    *, lesion: ConsensusLesion, columns: list[AnswerColumn], names: dict, lesion_blocks: dict
) -> dict:
    """Return the columns every row of one consensus lesion shares: support, sizes and lesion answers."""
    return {
        "lesion_index": lesion.lesion_index,
        "accepted": lesion.accepted,
        "support": lesion.support,
        "support_fraction": lesion.support_fraction,
        "supporting_readers": ";".join(
            sorted({names.get(int(m["reader_id"]), "") for m in lesion.members or []} - {""})
        ),
        "long_axis_median_mm": _blank_none(lesion.long_axis_median_mm),
        "long_axis_iqr_mm": _blank_none(lesion.long_axis_iqr_mm),
        "long_axis_cv": _blank_none(lesion.long_axis_cv),
        "short_axis_median_mm": _blank_none(lesion.short_axis_median_mm),
        "mask_method": lesion.mask_method,
        **answer_cols.consensus_fields(
            columns, scope=answer_cols.LESION, blocks=lesion_blocks.get(str(lesion.lesion_index))
        ),
    }


def _consensus_line_rows(*, lesion: ConsensusLesion, lesion_base: dict, sources: SeriesSources) -> Iterator[dict]:
    """Yield one row for the consensus lesion's long axis and one for its short axis, when it has them."""
    for kind in ("long_axis", "short_axis"):
        line = getattr(lesion, kind)
        if not line:
            continue
        instance = sources.by_uid(line["sop_instance_uid"])
        frame = int(line.get("frame", 1))
        yield {
            **lesion_base,
            "mark_kind": kind,
            "sop_instance_uid": instance.sop_instance_uid,
            "frame": frame,
            "slice_index": sources.slice_index(instance_id=instance.pk, frame=frame),
            "length_mm": line["length_mm"],
            **_line_fields(
                sources=sources,
                instance=instance,
                frame=frame,
                start=tuple(line["start"]),
                end=tuple(line["end"]),
            ),
        }


def _consensus_mask_rows(*, lesion: ConsensusLesion, lesion_base: dict, sources: SeriesSources) -> Iterator[dict]:
    """Yield one row per slice of the consensus lesion's mask, in slice order."""
    for mask in sorted(
        lesion.mask_slices or [],
        key=lambda s: sources.slice_index(
            instance_id=sources.by_uid(s["sop_instance_uid"]).pk, frame=int(s.get("frame", 1))
        ),
    ):
        instance = sources.by_uid(mask["sop_instance_uid"])
        frame = int(mask.get("frame", 1))
        pixels = sum(mask["counts"][1::2])  # runs alternate zeros and ones, zeros first
        yield {
            **lesion_base,
            "mark_kind": "mask",
            "sop_instance_uid": instance.sop_instance_uid,
            "frame": frame,
            "slice_index": sources.slice_index(instance_id=instance.pk, frame=frame),
            "mask_pixels": pixels,
            "mask_area_mm2": _mask_area_mm2(instance, pixels),
        }


def _blank_none(value):
    return "" if value is None else value
