"""Stages: pure steps with no store and no weights: chunking, BM25 vectors, cited prompts, the LLM call.

May import: the ground floor only (types, errors, config, globs, filters).
"""
