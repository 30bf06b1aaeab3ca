"""Server-rendered web pages (Jinja2, autoescape on) and their static export; the pages are in grader.web.pages.

Importing this package is cheap: the server mounts STATIC_DIR (grader.css, live.js) at `Links.static` ("/static").
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
