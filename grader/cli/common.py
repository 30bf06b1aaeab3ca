"""Shared CLI plumbing: build the service Context from global options."""

from __future__ import annotations

import typer

from grader.service.context import Context
from grader.settings import Settings


def context(ctx: typer.Context) -> Context:
    root = ctx.find_root()
    overrides = dict(root.obj or {})
    return Context(settings=Settings(**overrides))
