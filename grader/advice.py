"""One message table per error kind: what a participant reads when a job fails, and the tip after it.

The supervisor, the coordinator's reconciliation (scheduler verdicts), the rubric engine and the
notebook helper all phrase failures from here, so a timeout reads the same wherever it is caught.
"""

from __future__ import annotations

from typing import Any

from grader.outcomes import ErrorKind

# {minutes}, {seconds}, {memory_mb}, {quota_mb}, {phase}, {exit} are filled in by `message`.
MESSAGES: dict[ErrorKind, str] = {
    ErrorKind.TIMEOUT: "{phase} did not finish within the {minutes:g}-minute limit: use fewer epochs, a smaller "
                       "model or a larger batch size",
    ErrorKind.BUILD_TIMEOUT: "{phase} did not finish within {seconds:g} s (is there an endless loop, or training "
                             "inside build_model?): build_model() must only build and return the model",
    ErrorKind.OUT_OF_MEMORY: "the job exceeded its {memory_mb} MB memory limit: use a smaller model (fewer units "
                             "after Flatten) or a smaller batch size",
    ErrorKind.DISK_QUOTA: "the job wrote more than its {quota_mb} MB disk quota; a submission only needs to build "
                          "a model, grader saves what is needed",
    ErrorKind.CANCELLED: "the job was cancelled",
    ErrorKind.NO_RESULT: "the job ended (exit {exit}) without sending a result",
    ErrorKind.INFRASTRUCTURE: "the job failed outside your code ({detail}); it does not count against your quota",
}

TIPS: dict[ErrorKind, str] = {
    ErrorKind.NAN_LOSS: "A NaN loss usually means the learning rate is too high: try 10x smaller.",
    ErrorKind.TIMEOUT: "Fewer epochs, a smaller model, or a larger batch size make training faster.",
    ErrorKind.BUILD_TIMEOUT: "build_model() should only create (and optionally compile) the model; grader trains it.",
    ErrorKind.OUT_OF_MEMORY: "Smaller Dense layers after Flatten, or a smaller batch size, use less memory.",
    ErrorKind.WRONG_OUTPUT_SIZE: "The last layer needs one unit per class, with a softmax activation.",
    ErrorKind.KERAS2_API: "Course material written for Keras 2 needs small renames in Keras 3 (lr → learning_rate).",
    ErrorKind.LOGITS_WITHOUT_FROM_LOGITS: "Either softmax on the last layer, or from_logits=True in the loss.",
    ErrorKind.TOO_MANY_PARAMS: "Most parameters usually sit in the first Dense layer after Flatten: pool more, or "
                               "use fewer units there.",
}

PHASES = {
    "start": "starting the job",
    "loading data": "loading the data",
    "importing submission": "importing your file",
    "building model": "build_model()",
    "training": "training",
    "predicting": "predicting the held-out images",
}


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def message(kind: ErrorKind, **fields: Any) -> str:
    """The participant-facing sentence for a failure of this kind."""
    template = MESSAGES.get(kind, "the job failed ({detail})")
    phase = fields.get("phase")
    values = _Defaults(fields, phase=PHASES.get(str(phase), "the job") if phase else "the job")
    return template.format_map(values)


def tip(kind: ErrorKind | None) -> str | None:
    return TIPS.get(kind) if kind is not None else None
