"""Evaluation: BEIR datasets (beir), trec_eval metrics (metrics), and the runs of each retrieval mode over
an index of the corpus built through the normal sync (evaluate).

May import: ``pipeline.app``, ``retrieval``, ``models``, ``sync`` and below.
"""
