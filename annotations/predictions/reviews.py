"""Suggestion reviews: what a read of a "check the model" task made of each lesion the model suggested.

`record_suggestion_review` runs inside the read's storing transaction, as the receiver of reading's
`read_stored` signal (connected in AnnotationsConfig.ready): it rebuilds the suggestion the reader was shown
from the stored prediction (`suggestion_document`), pairs its lesions with the stored read's lesions
(core.model_review, the consensus matching rule) and writes one SuggestionReview per suggested lesion
(accepted, edited, rejected) and one per read lesion that matches none (added). Everything comes from
stored rows; nothing the page says about the model is taken. It must never change the read, and costs no
query for a task without a suggestion model.
"""

from __future__ import annotations

from annotations.core.model_review import lesions_from_document, review_suggestion
from annotations.models import Case, Read, SuggestionReview
from annotations.predictions.lesions import case_geometry
from annotations.predictions.suggestions import suggestion_document


def record_suggestion_review(*, read: Read, case: Case) -> list[SuggestionReview]:
    """Store and return the read's SuggestionReview rows; none outside check-the-model tasks or for a skip.

    Each version of a read gets its own rows (a new version is a new Read); the caller's transaction makes a
    retried submit, which stores no new read, store no new rows either.
    """
    if not case.task.suggestion_model or read.skip:
        return []
    suggestion = suggestion_document(case=case)
    if suggestion is None:
        return []
    geometry = case_geometry(case)
    suggested = lesions_from_document(suggestion["lesions"], geometry=geometry)
    drawn = lesions_from_document((read.document or {}).get("lesions") or [], geometry=geometry)
    verdicts = review_suggestion(suggested, drawn, slice_spacing_mm=geometry.slice_spacing_mm)
    return SuggestionReview.objects.bulk_create(
        SuggestionReview(
            read=read,
            model_name=suggestion["model_name"],
            suggested_lesion=verdict.suggested_lesion,
            read_lesion=verdict.read_lesion,
            verdict=verdict.verdict,
            mask_dice=verdict.mask_dice,
            long_axis_change_mm=verdict.long_axis_change_mm,
        )
        for verdict in verdicts
    )


def on_read_stored(sender, *, read: Read, case: Case, **kwargs) -> None:
    """The `read_stored` receiver: record what the read made of the model's suggestion."""
    record_suggestion_review(read=read, case=case)
