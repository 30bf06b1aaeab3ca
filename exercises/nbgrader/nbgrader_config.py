"""nbgrader configuration of the notebook versions of grader's exercises (run nbgrader from this folder)."""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - nbgrader (traitlets) defines get_config when it loads this file

c.CourseDirectory.course_id = "grader-keras"
# Everything nbgrader reads and writes lives beside this file, wherever the course is copied.
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"

# A test cell trains through grader (one job capped by the exercises' [profiles.notebook]
# max_wall_seconds = 300), and the first one in a fresh grader home also measures the reference
# solutions it is compared with (`grader references compute` beforehand avoids that; see
# docs/notebooks.md). nbgrader's 30 s default would time such a cell out and give it 0.
c.Execute.timeout = 900
c.ExecutePreprocessor.timeout = 900

# A graded cell earns 0 if it writes anything to stderr, even when every assert passes. TensorFlow 2.21
# writes log lines to stderr when it loads, and TF_CPP_MIN_LOG_LEVEL=3 alone does not stop all of them:
# the oneDNN notice is logged before absl is initialised and goes away only with TF_ENABLE_ONEDNN_OPTS=0
# (measured). That setting changes nothing that is graded: the kernel only builds models for the
# structure checks, and grader trains in its own sandboxed job, whose environment is scrubbed.
# Keras and NumPy also emit Python warnings on stderr. The kernel inherits this process's environment,
# and the exec line sets the same inside the kernel before any cell runs, for kernels started from an
# environment that differs (e.g. a Jupyter server started before this file was read).
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONWARNINGS": "ignore"}
os.environ.update(KERNEL_ENV)
c.Execute.extra_arguments = [
    "--IPKernelApp.exec_lines=import os, warnings; "
    f"os.environ.update({KERNEL_ENV!r}); warnings.simplefilter('ignore')",
]
