"""Annotation records, one module per concern; import them from here."""

from annotations.models.consensus import CaseConsensus, ConsensusLesion, ReaderQuality
from annotations.models.exports import ExportJob
from annotations.models.follow_up import BaselineLesion, CaseTimePoint, FollowUpMeasurement
from annotations.models.predictions import ModelPrediction, PredictionImportJob, SuggestionReview, SuggestionVerdict
from annotations.models.questions import QuestionSet
from annotations.models.reads import Mark, MaskProvenance, MaskSlice, MaskSource, Read
from annotations.models.tasks import Case, Lease, Reader, ReferenceLesion, Task, Team

__all__ = [
    "BaselineLesion",
    "Case",
    "CaseConsensus",
    "CaseTimePoint",
    "ConsensusLesion",
    "ExportJob",
    "FollowUpMeasurement",
    "Lease",
    "Mark",
    "MaskProvenance",
    "MaskSlice",
    "MaskSource",
    "ModelPrediction",
    "PredictionImportJob",
    "QuestionSet",
    "Read",
    "Reader",
    "ReaderQuality",
    "ReferenceLesion",
    "SuggestionReview",
    "SuggestionVerdict",
    "Task",
    "Team",
]
