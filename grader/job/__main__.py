"""`python -m grader.job RUN_DIR`: run one job (see grader.job.run)."""

import sys

from grader.job.run import main

sys.exit(main(sys.argv[1:]))
