"""The Celery application; tasks live in each app's tasks.py."""

import os

from celery import Celery

from readerboard.allocator import tune_for_image_work

tune_for_image_work()  # workers decode and render too (cache warming, thumbnails, exports)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")

app = Celery("readerboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
