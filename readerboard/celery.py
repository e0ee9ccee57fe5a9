"""The Celery application; tasks live in each capability package's tasks.py."""

import os

from celery import Celery

from readerboard.allocator import tune_for_image_work

tune_for_image_work()  # workers decode and render too (cache warming, thumbnails, exports)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerboard.settings")

app = Celery("readerboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each capability keeps its Celery tasks in its own package's tasks.py.
app.autodiscover_tasks(["viewer", "annotations.consensus", "annotations.exports", "annotations.console"])
