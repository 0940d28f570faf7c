"""Celery workers' entry points (tasks.py), on the base task of base.py."""
