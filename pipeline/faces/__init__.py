"""Faces: the thin shells people and programs use: the CLI, the HTTP API (http/), its jobs and guards,
and render, where every JSON and text form lives so that the faces agree by construction.

May import: ``pipeline.app``, the ``eval`` and ``training`` entry points, and the ground floor.
"""
