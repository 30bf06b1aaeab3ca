"""`python -m grader` runs the CLI."""

from grader.cli.app import main

main()
