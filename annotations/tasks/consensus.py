"""Consensus Celery tasks."""
