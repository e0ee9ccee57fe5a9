"""Recompute consensus for one task, or every task, from the command line."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from annotations.consensus.case_consensus import recompute_task_consensus
from annotations.consensus.longitudinal_consensus import recompute_follow_up_task
from annotations.models import Task


class Command(BaseCommand):
    help = "Bring every case of a task (or all tasks) to a current consensus and refresh reader quality."

    def add_arguments(self, parser):
        parser.add_argument("--task", type=int, action="append", help="Task id (repeatable); default: all tasks.")
        parser.add_argument("--weighted", action="store_true", help="Weight readers by their gold-standard accuracy.")
        parser.add_argument("--workers", type=int, default=1, help="Processes for the numerical work (default 1).")

    def handle(self, *args, task=None, weighted=False, workers=1, **options):
        tasks = Task.objects.order_by("pk")
        if task:
            tasks = tasks.filter(pk__in=task)
            missing = set(task) - set(tasks.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no task with id {', '.join(map(str, sorted(missing)))}")
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        for item in tasks:
            started = time.perf_counter()
            if item.is_follow_up:
                computed = recompute_follow_up_task(task=item)
                self.stdout.write(
                    f"{item.name}: follow-up task, {computed} cases with a consensus over time "
                    f"({time.perf_counter() - started:.1f} s)"
                )
                continue
            report = recompute_task_consensus(task=item, use_reader_weights=weighted, workers=workers)
            self.stdout.write(
                f"{item.name}: {report.cases} cases, {report.computed} computed, {report.unchanged} unchanged, "
                f"{report.without_reads} without reads, {report.low_agreement} flagged for review "
                f"({time.perf_counter() - started:.1f} s)"
            )
