"""`grader doctor --json`'s models: apart from the command, so that registering it imports no pydantic."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Layer(BaseModel):
    layer: str
    active: bool
    detail: str


class DoctorReport(BaseModel):
    """`grader doctor --json`: what is active on this machine (schema in docs/json.md)."""

    layers: list[Layer]
    filesystem_view: bool = Field(description="Jobs run with a view that hides labels, database and other runs.")
    permissions: list[str] = Field(description="State files readable by other accounts.")
    datasets: dict[str, bool] = Field(description="Full datasets present in the data folder.")
    course: str
    database: str
    backend: str
    server: str | None
    python: str
    command_server: str = Field(description="Whether read commands go to a per-user command server (docs/cli.md).")
