"""Readerboard project package: settings, URLs, ASGI/WSGI and the Celery app."""

from readerboard.celery import app as celery_app

__all__ = ["celery_app"]
