"""`grader serve`'s HTTP API (FastAPI): thin routes over the service layer, returning its models unchanged."""
