"""Command-line interface (Typer): parses, calls the service layer, renders with rich."""
