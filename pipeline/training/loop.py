"""What both trainers share: the report and card, and the optimisation loop with validation checks."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.training.data import empty_output_folder


@dataclass
class TrainingReport:
    kind: str
    base_model: str
    data: str
    out: str
    settings: dict[str, Any]
    train_examples: int
    validation_queries: int
    steps: int = 0
    seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def improved(self, point: dict[str, float]) -> bool:
        """Record a validation point; True when it is the best so far (then the caller saves)."""
        self.curve.append(point)
        if not self.best or point["ndcg@10"] > self.best["ndcg@10"]:
            self.best = dict(point)
            return True
        return False


def seeded_start(out: str | Path, seed: int) -> tuple[float, Path, random.Random]:
    """What every training run does first: its start time, an empty output folder, seeded torch and shuffles."""
    import torch

    started = time.perf_counter()
    folder = empty_output_folder(out)
    torch.manual_seed(seed)
    return started, folder, random.Random(seed)


def new_report(
    kind: str, base_model: str, dataset: Any, folder: Path, settings: dict[str, Any], examples: int, queries: int
) -> TrainingReport:
    """The report a training run fills in: what was trained from what, with which settings."""
    data = f"{dataset.name} ({dataset.split})"
    return TrainingReport(kind, base_model, data, str(folder), settings, examples, queries)


@dataclass(frozen=True)
class Schedule:
    epochs: int
    learning_rate: float
    warmup_share: float
    evaluations_per_epoch: int
    patience: int

    @classmethod
    def of(cls, settings: Any) -> Schedule:
        """The schedule part of a trainer's settings (``EmbedderTraining``, ``RerankerTraining``)."""
        return cls(
            settings.epochs,
            settings.learning_rate,
            settings.warmup_share,
            settings.evaluations_per_epoch,
            settings.patience,
        )


def optimise(
    parameters: Iterable[Any],
    epochs: Callable[[], Sequence[Any]],
    batch_loss: Callable[[Any], Any],
    check: Callable[[int], None],
    schedule: Schedule,
    report: TrainingReport,
    progress: bool,
    desc: str,
    deadline: float | None = None,
) -> None:
    """AdamW with linear warm-up and decay, gradient clipping at 1.0, a validation ``check``
    ``evaluations_per_epoch`` times an epoch and after the last step, and early stopping once
    ``patience`` checks in a row brought no gain. ``epochs()`` gives one epoch's batches. Past ``deadline``
    (a ``time.perf_counter()`` value) it checks once more and stops: a budget is kept, not overrun. So that
    this last check ends by the deadline too, training stops once one more step and a check (as long as the
    last ones took) would pass it."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    params = list(parameters)
    plan = [epochs() for _ in range(schedule.epochs)]
    per_epoch = max(len(plan[0]), 1)
    total = sum(len(batches) for batches in plan)
    optimizer = torch.optim.AdamW(params, lr=schedule.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * schedule.warmup_share), total)
    every = max(1, per_epoch // max(1, schedule.evaluations_per_epoch))
    bar = _bar(progress, total, desc)
    budget = _Budget(deadline)
    step = 0

    def stalled() -> bool:
        return len([p for p in report.curve if p["step"] > report.best["step"]]) >= schedule.patience

    for batch in itertools.chain.from_iterable(plan):
        began = time.perf_counter()
        loss = batch_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        report.losses.append(round(float(loss.item()), 5))
        _tick(bar, float(loss.item()))
        budget.step = time.perf_counter() - began
        late = budget.over()
        if step % every == 0 or step == total or late:
            checked = time.perf_counter()
            check(step)
            budget.check = time.perf_counter() - checked
            late = late or budget.over()  # no step after this check if it leaves no time for one more
            stop = "the time budget was spent" if late else "no validation gain" if stalled() else ""
            if stop and step < total:
                report.notes.append(f"stopped at step {step} of {total}: {stop}")
                break
    if bar is not None:
        bar.close()
    report.steps = step


@dataclass
class _Budget:
    """Whether one more step and one more check, as long as the last ones took, would pass ``deadline``."""

    deadline: float | None
    step: float = 0.0
    check: float = 0.0

    def over(self) -> bool:
        return self.deadline is not None and time.perf_counter() + self.step + self.check >= self.deadline


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def _tick(bar: Any, loss: float) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")


def write_card(out: Path, report: TrainingReport, title: str) -> None:
    (out / "ragline_training.json").write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    curve = "\n".join(f"| {p['step']:.0f} | {p.get('epoch', 0):.2f} | {p['ndcg@10']:.4f} |" for p in report.curve)
    settings = "\n".join(f"- {k}: {v}" for k, v in report.settings.items())
    notes = "\n".join(f"- {n}" for n in report.notes) or "- none"
    best = report.best
    (out / "README.md").write_text(
        f"# {title}\n\nTrained by ragline from `{report.base_model}` on `{report.data}` "
        f"({report.train_examples} training examples, {report.validation_queries} held-out validation queries).\n\n"
        f"## Settings\n{settings}\n\n## Run\n- steps: {report.steps}\n- seconds: {report.seconds:.0f}\n"
        f"- best validation nDCG@10: {best.get('ndcg@10', float('nan')):.4f} at step {best.get('step', 0):.0f}\n\n"
        f"## Validation curve\n| step | epoch | nDCG@10 |\n|---:|---:|---:|\n{curve}\n\n## Notes\n{notes}\n",
        encoding="utf-8",
    )
