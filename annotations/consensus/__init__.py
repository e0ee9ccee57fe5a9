"""Consensus: loads a case's current reads, runs the pure cores of annotations.core and stores the results; the
Celery tasks and the queueing API that reading calls.
"""
