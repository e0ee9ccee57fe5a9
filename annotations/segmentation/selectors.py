"""How readers use mask proposals in a task: how many masks started from one, and how much readers changed them.

Counts the task's crowd reads' lesion masks (MaskSlice) and their MaskProvenance rows (a mask without one
was painted by hand; answer keys left out); the edit Dice was computed at submit
(annotations.reading.documents). It never recomputes a Dice and never names a reader.
"""

from __future__ import annotations

import statistics

from annotations.models import MaskProvenance, MaskSlice, MaskSource, Task


def proposal_use(*, task: Task) -> dict:
    """Lesion masks of the task's reads: how many, the share that started from a proposal, how much was edited.

    ``median_edit_dice`` is the median Dice between proposal and submitted mask over proposed masks (1.0 =
    accepted as proposed); ``edited_share`` the share of proposed masks the reader changed at all.
    """
    crowd = {"read__case__task": task, "read__is_answer_key": False}
    masks = MaskSlice.objects.filter(**crowd).values("read_id", "lesion_index").distinct().count()
    proposed = [
        row
        for row in MaskProvenance.objects.filter(**crowd).values_list("source", "edited", "edit_dice")
        if row[0] != MaskSource.HAND
    ]
    dice = [row[2] for row in proposed if row[2] is not None]
    by_source = {source: sum(1 for row in proposed if row[0] == source) for source in MaskSource.values}
    by_source[MaskSource.HAND] = max(0, masks - len(proposed))
    return {
        "masks": masks,
        "proposed": len(proposed),
        "proposed_share": len(proposed) / masks if masks else None,
        "edited_share": sum(1 for row in proposed if row[1]) / len(proposed) if proposed else None,
        "median_edit_dice": statistics.median(dice) if dice else None,
        "by_source": by_source,
    }
