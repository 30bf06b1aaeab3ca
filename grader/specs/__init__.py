"""Declarative specs (exercise and rubric files), validated by pydantic."""
