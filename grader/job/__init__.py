"""The grading job: the only code that imports TensorFlow or runs participant code.

Runs as `python -m grader.job RUN_DIR` inside the sandbox; nothing imports this package.
"""
