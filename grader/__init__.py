"""grader: automated grading of hands-on Keras exercises (no heavy imports here)."""

__version__ = "0.1.0"
