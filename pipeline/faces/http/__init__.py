"""The HTTP API (FastAPI + uvicorn): one router per endpoint group over :class:`pipeline.app.Ragline`.

May import: ``pipeline.app``, ``pipeline.faces`` (render, jobs, guards) and the ground floor.
"""

from pipeline.faces.http.app import create_app
from pipeline.faces.http.serve import running_server, serve

__all__ = ["create_app", "running_server", "serve"]
