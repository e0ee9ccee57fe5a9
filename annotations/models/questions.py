"""Task questions: a versioned set per task, so every read keeps the exact questions it answered.

The questions themselves are JSON in the shape of docs/read-format.md ("Question"),
checked by annotations.questions.services before they are saved. A set that reads
already answered is never edited: changing the questions makes the next version.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotations.models.tasks import Task


class QuestionSet(models.Model):
    """One version of a task's questions: those asked per lesion and those asked once per read."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="question_sets")
    # 1, 2, 3 ... within the task; the read document's question_version.
    version = models.PositiveIntegerField()
    lesion_questions = models.JSONField(default=list, blank=True)
    case_questions = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "version"], name="unique_question_set_version")]
        ordering = ["task_id", "version"]

    def __str__(self) -> str:
        return f"questions v{self.version} of task {self.task_id}"

    @property
    def is_empty(self) -> bool:
        return not self.lesion_questions and not self.case_questions
