"""Annotation records, one module per concern; import them from here."""

from annotations.models.consensus import CaseConsensus, ConsensusLesion, ReaderQuality
from annotations.models.exports import ExportJob
from annotations.models.questions import QuestionSet
from annotations.models.reads import Mark, MaskSlice, Read
from annotations.models.tasks import Case, Lease, Reader, ReferenceLesion, Task

__all__ = [
    "Case",
    "CaseConsensus",
    "ConsensusLesion",
    "ExportJob",
    "Lease",
    "Mark",
    "MaskSlice",
    "QuestionSet",
    "Read",
    "Reader",
    "ReaderQuality",
    "ReferenceLesion",
    "Task",
]
