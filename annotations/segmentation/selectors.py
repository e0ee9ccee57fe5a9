"""How readers use mask proposals in a task: how many masks started from one, and how much readers changed them.

Reads the stored MaskProvenance rows of the task's crowd reads (answer keys left out); the edit Dice was
computed at submit (annotations.reading.documents). It never recomputes a Dice and never names a reader.
"""

from __future__ import annotations

import statistics

from annotations.models import MaskProvenance, MaskSource, Task


def proposal_use(*, task: Task) -> dict:
    """Lesion masks of the task's reads: how many, the share that started from a proposal, how much was edited.

    ``median_edit_dice`` is the median Dice between proposal and submitted mask over proposed masks (1.0 =
    accepted as proposed); ``edited_share`` the share of proposed masks the reader changed at all.
    """
    rows = list(
        MaskProvenance.objects.filter(read__case__task=task, read__is_answer_key=False).values_list(
            "source", "edited", "edit_dice"
        )
    )
    proposed = [row for row in rows if row[0] != MaskSource.HAND]
    dice = [row[2] for row in proposed if row[2] is not None]
    by_source = {source: sum(1 for row in rows if row[0] == source) for source in MaskSource.values}
    return {
        "masks": len(rows),
        "proposed": len(proposed),
        "proposed_share": len(proposed) / len(rows) if rows else None,
        "edited_share": sum(1 for row in proposed if row[1]) / len(proposed) if proposed else None,
        "median_edit_dice": statistics.median(dice) if dice else None,
        "by_source": by_source,
    }
