"""Export Celery tasks."""
