"""Composition root: CLI, task supervision, shutdown, demo."""
