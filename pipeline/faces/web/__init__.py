"""The page ``ragline serve`` shows at ``/`` (served by ``pipeline/faces/http/web.py``): plain HTML, CSS and
JavaScript that call the HTTP API from the browser; package data, no Python.

May import: nothing (it holds no code).
"""
