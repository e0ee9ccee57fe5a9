"""The one error a proposal raises when the prompt does not point at a lesion."""

from __future__ import annotations


class NoLesionFound(ValueError):
    """No lesion found at the prompt: it lies on air, fat or bone, or nothing there stands out from its surroundings.

    ``reason`` is a short sentence a reader can be shown as is.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"no lesion found here: {reason}")
        self.reason = reason
