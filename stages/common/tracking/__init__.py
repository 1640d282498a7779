"""Tracking: every run, param, metric and model in MLflow, behind a small interface stages receive.

``tracker`` holds the run plan (a pure description of what to log), the MLflow tracker that logs
it, registers the best model, and keeps the writes that concurrent workers repeat idempotent.
"""
