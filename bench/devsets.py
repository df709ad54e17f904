"""The development sets the ranking scripts read, from one command line: ``--folder DIR=QUESTIONS.tsv``
(repeatable) and ``--beir DIR --split train``. Shared so every script that chooses something on them reads
them alike and refuses a test split alike (choices are made on training data; test is reported once)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pipeline.config import AppConfig, load_config

T = TypeVar("T")


def development_sets(
    description: str,
    folder_set: Callable[[Path, Path, AppConfig], T],
    beir_set: Callable[[Path, str, AppConfig], T],
    parser: argparse.ArgumentParser | None = None,
) -> tuple[argparse.Namespace, AppConfig, list[T]]:
    """Parse the command line (``parser`` may hold a script's own arguments) and load each named set with
    ``folder_set`` or ``beir_set``."""
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="ragline config (TOML) the indexes are built with")
    parser.add_argument("--folder", action="append", default=[], help="DIR=QUESTIONS.tsv (repeatable)")
    parser.add_argument("--beir", help="a BEIR dataset folder")
    parser.add_argument("--split", default="train", help="the BEIR split to choose on (not test)")
    args = parser.parse_args()
    if args.split == "test":
        sys.exit("choose on a training split, not on test")
    if not args.folder and not args.beir:
        sys.exit("give at least one --folder DIR=QUESTIONS.tsv or --beir DIR")
    config = load_config(args.config)
    sets = [folder_set(Path(d), Path(q), config) for d, q in (spec.split("=", 1) for spec in args.folder)]
    if args.beir:
        sets.append(beir_set(Path(args.beir), args.split, config))
    return args, config, sets
