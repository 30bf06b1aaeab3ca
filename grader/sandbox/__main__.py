"""`python -m grader.sandbox RUN_DIR`: supervise one job (see grader.sandbox.supervisor)."""

import sys

from grader.sandbox.supervisor import main

sys.exit(main(sys.argv[1:]))
