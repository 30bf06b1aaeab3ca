"""Reports: plots of stored results as inline SVG (matplotlib, imported lazily). HTML lives in grader.web."""
