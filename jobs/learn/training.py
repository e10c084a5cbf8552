"""`train` (seed Phase 5): stamps -> a lens classifier, its checkpoints and per-epoch metrics.

AdamW with the preset's learning rate (cosine-annealed over the epochs: lr·½(1 + cos πe/E),
computed from the epoch and the run's current length, so a resume with another `--epochs`
follows the new schedule), weight decay, batch size and epochs; BCE or focal loss;
bf16/fp16 autocast on CUDA for training (channels-last everywhere), float32 always for validation (bf16
collapses distinct scores into ties). After each epoch: validation on the `val` split, one
JSON line appended to `metrics.jsonl` (epoch, train_loss, val_loss, auroc, pauc, tpr@fpr…,
fpr@tpr…, n_pos, n_neg and their independent counts, intervals, lr, seconds, images/s; a
figure that cannot be measured is null, its reason under `unmeasured`), and a checkpoint
written atomically, holding the metric history too. `best.pt` is the epoch with the highest
partial AUROC up to FPR max(1e-3, 3/n_neg_independent), a figure val's galaxies can measure
(tpr@fpr1e-3 on 80 galaxies is TPR at zero false positives, and swings with one galaxy),
AUROC breaking ties. `--resume` continues from the last checkpoint and rewrites
`metrics.jsonl` from that history, so a run killed mid-epoch leaves no duplicated or missing
lines; `run.json` keeps every launch's settings under `history`. `--nproc N` runs N DDP
processes through torchrun (one per GPU; gloo on CPU).

    python -m jobs.stages.train --workspace DIR --variant V [--grid G] [--preset P] [--run NAME] [--resume]
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import naming
from core.layout import BEST_CHECKPOINT, LAST_CHECKPOINT, run_name_of, runs_dir
from jobs.runtime import stage as stage_runtime

NPROC = stage_runtime.declared_default("train", "nproc")

PROGRESS_EVERY_S = 10.0
SELECT_ON = ("pauc", "auroc")  # best.pt: partial AUROC at low FPR, then AUROC


def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """The cosine-annealed learning rate of `epoch` (0-based) in a run of `epochs`."""
    return base * 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))


def focal_loss(logits: Any, targets: Any, gamma: float, weights: Any = None) -> Any:
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = (-bce).exp()
    loss = (1 - p_t) ** gamma * bce
    return (loss if weights is None else loss * weights).mean()


def cpus_here() -> int:
    """The CPUs this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Trainer:
    """One training run: model, optimiser, data, the loop and what it writes."""

    def __init__(
        self,
        run_dir: Path,
        stamps: Path | list[str],
        preset: Any,
        rank: int,
        world: int,
        max_epochs: int,
        training: Any = None,
    ) -> None:
        import torch

        from core.config import Training
        from jobs.learn.dataset import StampStream, row_weights
        from jobs.learn.models import build

        self.run_dir, self.preset, self.rank, self.world = run_dir, preset, rank, world
        self.epochs = max_epochs
        self.cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if self.cuda else "cpu")
        if not self.cuda and not os.environ.get("OMP_NUM_THREADS"):  # a user's own setting stands
            torch.set_num_threads(max(1, cpus_here() // world))
        torch.manual_seed(preset.seed)
        common = {
            "min_theta_over_psf": preset.min_theta_over_psf,
            "meta_cols": list(preset.meta_cols),
            "rank": rank,
            "world_size": world,
            "seed": preset.seed,
            "batch_size": preset.batch_size,
            # on the GPU, batches are normalised and augmented there (`_to_device`)
            "prepare_in_worker": not self.cuda,
            "positives": (training or Training()).positives,
            "stretch": preset.stretch,
        }
        where = stamps if isinstance(stamps, list) else str(stamps)
        self.train_data = StampStream(
            where, "train", augment=preset.augment, shuffle_buffer=preset.shuffle_buffer, **common
        )
        self.val_data = StampStream(where, "val", **{**common, "min_theta_over_psf": 0.0})
        self.weights = row_weights(where, "train", training or Training())
        model = build(preset.arch, len(preset.meta_cols), preset.stretch, preset.width).to(self.device)
        self.model = model
        self.net = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(model, device_ids=[self.device.index] if self.cuda else None)
        self.opt = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
        self.amp = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(preset.precision) if self.cuda else None
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.amp is torch.float16 else None
        if not self.cuda and preset.precision != "fp32" and rank == 0:
            print(
                f"train: warning: this preset asks for {preset.precision} on a GPU; there is none here,"
                " so it trains in float32 on the CPU, slowly (the progress lines give the time left)",
                flush=True,
            )
        # DataLoader workers: the preset's, at most the CPUs this rank has (more only thrash,
        # and torch warns about each); said once where that changes the preset's number
        cpus = max(1, cpus_here() // world)
        self.workers = min(preset.num_workers, cpus)
        if self.workers < preset.num_workers and rank == 0:
            print(
                f"train: the preset asks for {preset.num_workers} loader workers per process;"
                f" this machine has {cpus} CPU(s) for each: using {self.workers}",
                flush=True,
            )
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0

    # -- state -----------------------------------------------------------------------

    def load(self, path: Path) -> None:
        from jobs.learn.models import load_checkpoint

        state = load_checkpoint(path, self.device)  # never unpickles code; names a damaged file
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.history = state["history"]
        self.start_epoch = state["epoch"] + 1

    def start_from(self, path: Path) -> None:
        """Begin from another run's weights (its model only: a new optimiser and schedule)."""
        from jobs.learn.models import load_checkpoint

        state = load_checkpoint(path, self.device)
        self.model.load_state_dict(state["model"])

    def save(self, epoch: int, path: Path) -> None:
        import torch

        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": epoch,
            "history": self.history,
            "arch": self.preset.arch,
            "meta_cols": list(self.preset.meta_cols),
            "stretch": self.preset.stretch,
            "width": self.preset.width,
        }
        buffer = io.BytesIO()  # torch.save writes through C++: a full disk there is no OSError
        torch.save(state, buffer)
        _replace(path, buffer.getvalue())

    # -- the loop --------------------------------------------------------------------

    def _loss(self, logits: Any, labels: Any, weights: Any = None) -> Any:
        import torch.nn.functional as F

        if self.preset.loss == "focal":
            return focal_loss(logits, labels, self.preset.focal_gamma, weights)
        return F.binary_cross_entropy_with_logits(logits, labels, weight=weights)

    def _batches(self, data: Any, shuffle_epoch: int | None = None) -> Any:
        import torch

        if shuffle_epoch is not None:
            data.set_epoch(shuffle_epoch)
        # the augmentation's draws where batches are prepared here (on the GPU)
        self.rng = np.random.default_rng([self.preset.seed, shuffle_epoch or 0, self.rank, 1 << 20])
        return torch.utils.data.DataLoader(
            data, batch_size=None, num_workers=self.workers, pin_memory=self.cuda
        )

    def _to_device(self, batch: Any, data: Any) -> tuple[Any, Any, Any]:
        images, labels, meta, _ = batch
        images = images.to(self.device, non_blocking=True)
        if not data.prepare_in_worker:
            images = data.prepare(images, self.rng)
        meta = meta.to(self.device) if self.preset.meta_cols else None
        return images, labels.to(self.device), meta

    def train_epoch(self, epoch: int) -> tuple[float, float, int]:
        import contextlib

        import torch

        self.net.train()
        total, seen, started, last_note = 0.0, 0, time.monotonic(), time.monotonic()
        cap = self.preset.max_train_rows
        join: Any = contextlib.nullcontext()
        if self.world > 1:
            from torch.distributed.algorithms.join import Join

            join = Join([self.net])  # ranks may hold different numbers of batches
        loader = self._batches(self.train_data, epoch)
        steps = self.train_data.batches(self.workers)
        with join:
            for step, batch in enumerate(loader):
                images, labels, meta = self._to_device(batch, self.train_data)
                weights = None
                if self.weights is not None:  # known lenses by tier (`[training]`)
                    weights = torch.from_numpy(self.weights(batch[3].numpy()).astype(np.float32))
                    weights = weights.to(self.device)
                self.opt.zero_grad(set_to_none=True)
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    loss = self._loss(self.net(images, meta).float(), labels, weights)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.opt)
                    self.scaler.update()
                else:
                    loss.backward()
                    self.opt.step()
                total += float(loss.detach()) * len(labels)
                seen += len(labels)
                if self.rank == 0 and time.monotonic() - last_note > PROGRESS_EVERY_S:
                    took = time.monotonic() - started
                    left = (steps - step - 1) + (self.epochs - epoch - 1) * steps  # training steps
                    print(  # the console's jobs table shows "epoch 3/6 · step 23/31" from this
                        f"train: epoch {epoch + 1}/{self.epochs} step {step + 1}/{steps}"
                        f" loss {total / seen:.4f} {seen / took:.0f} images/s"
                        f" · about {time_left(left * took / (step + 1))} of training left",
                        flush=True,
                    )
                    last_note = time.monotonic()
                if cap is not None and seen * self.world >= cap:
                    break
        elapsed = time.monotonic() - started
        per_rank = [seen]
        if self.world > 1:  # the epoch's loss and rate over every rank, not rank 0's alone
            import torch.distributed as dist

            sums = torch.tensor([total], dtype=torch.float64, device=self.device)
            longest = torch.tensor([elapsed], dtype=torch.float64, device=self.device)
            rows = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world)]
            dist.all_reduce(sums)
            dist.all_reduce(longest, op=dist.ReduceOp.MAX)
            dist.all_gather(rows, torch.tensor([seen], dtype=torch.int64, device=self.device))
            total, elapsed = float(sums[0]), float(longest[0])
            per_rank = [int(r) for r in rows]
        everyone = sum(per_rank)
        return total / max(everyone, 1), everyone / max(elapsed, 1e-9), per_rank

    def validate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        import torch
        import torch.nn.functional as F

        self.net.eval()
        scores, labels, tasks, losses = [], [], [], []
        with torch.no_grad():  # float32 always: bf16 turns distinct scores into ties
            for batch in self._batches(self.val_data):
                images, y, meta = self._to_device(batch, self.val_data)
                logits = self.model(images.float(), meta).float()
                losses.append(float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum")))
                scores.append(logits.cpu().numpy())
                labels.append(y.cpu().numpy())
                tasks.append(batch[3].numpy())
        local = tuple(np.concatenate(v) if v else np.zeros(0) for v in (scores, labels, tasks))
        local = (*local, sum(losses))
        if self.world > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, local)
            local = (
                *(np.concatenate([g[i] for g in gathered]) for i in range(3)),
                sum(g[3] for g in gathered),
            )
        s, y, task, loss_sum = local
        return s, y, task, loss_sum / max(len(y), 1)

    def fit(self) -> dict[str, Any]:
        from jobs.stats.operating_points import EPOCH_N_BOOT, operating_points, pauc_max_fpr

        metrics_path = self.run_dir / "metrics.jsonl"
        if self.rank == 0:
            _rewrite(metrics_path, self.history)  # a resumed run: exactly the checkpoint's lines
        from jobs.learn.dataset import task_galaxies

        galaxies = task_galaxies(self.val_data.location, "val") if self.rank == 0 else None
        for epoch in range(self.start_epoch, self.epochs):
            started = time.monotonic()
            lr = cosine_lr(self.preset.lr, epoch, self.epochs)
            for group in self.opt.param_groups:
                group["lr"] = lr
            train_loss, rate, rank_rows = self.train_epoch(epoch)
            scores, labels, task, val_loss = self.validate()
            if self.rank != 0:
                continue
            groups = galaxies(task) if galaxies is not None else None
            n_neg_ind = (
                len(np.unique(groups[labels < 0.5])) if groups is not None else int((labels < 0.5).sum())
            )
            line = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                **operating_points(
                    labels, scores, groups, n_boot=EPOCH_N_BOOT, pauc_max_fpr=pauc_max_fpr(n_neg_ind)
                ),
                "lr": lr,
                "seconds": round(time.monotonic() - started, 2),
                "images/s": round(rate, 1),
                "train_rows": sum(rank_rows),
                "train_rows_per_rank": rank_rows,
            }
            line = _finite(line)
            self.history.append(line)
            self.save(epoch, self.run_dir / LAST_CHECKPOINT)
            if _is_best(line, self.history):
                best = self.run_dir / BEST_CHECKPOINT
                _replace(best, (self.run_dir / LAST_CHECKPOINT).read_bytes())  # a kill: the old best.pt
            with metrics_path.open("a") as out:
                out.write(json.dumps(line) + "\n")
            shown = ", ".join(
                f"{k} {line[k]:.4g}"
                for k in ("train_loss", "val_loss", "auroc", "pauc")
                if isinstance(line.get(k), float)
            )
            print(f"train: epoch {epoch + 1}/{self.epochs} done in {line['seconds']}s: {shown}", flush=True)
        return {"epochs": len(self.history), "last": self.history[-1] if self.history else None}


def _finite(line: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities are not JSON: record them as null with a reason."""
    unmeasured = dict(line.get("unmeasured", {}))
    for key, value in line.items():
        if isinstance(value, float) and not math.isfinite(value):
            line[key] = None
            unmeasured[key] = f"not finite ({value})"
    line["unmeasured"] = unmeasured
    return line


def _selection(line: dict[str, Any]) -> tuple[float, ...]:
    return tuple(-math.inf if line.get(k) is None else float(line[k]) for k in SELECT_ON)


def _is_best(line: dict[str, Any], history: list[dict[str, Any]]) -> bool:
    """Whether `line` (the newest of `history`) ranks first on SELECT_ON, ties to the newest."""
    return all(_selection(line) >= _selection(h) for h in history)


def _rewrite(path: Path, history: list[dict[str, Any]]) -> None:
    _replace(path, "".join(json.dumps(h) + "\n" for h in history))


def _replace(path: Path, data: bytes | str) -> None:
    """A run's file replaced whole (core.safe_io: a fresh temporary name, never through a
    link), readable as the umask says; a failed write named by the file it was for."""
    from core.safe_io import SHARED_MODE, atomic_write

    try:
        atomic_write(path, data, SHARED_MODE)
    except OSError as err:  # named: a write's own error carries no file name
        raise naming(err, path) from None


def time_left(seconds: float) -> str:
    """A rough remaining time for a person: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run(
    workspace: Path,
    variant: str,
    *,
    grid: str | None = None,
    preset: str | None = None,
    run: str | None = None,
    resume: bool = False,
    force: bool = False,
    epochs: int | None = None,
    extra_stamps: list[str] | None = None,
    init: Path | None = None,
    lineage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a run on the grid's stamps; `extra_stamps` (files with the stamps' columns: a
    round's graded galaxies, jobs/stages/retrain.py) join them, `init` starts from another
    run's weights, `lineage` goes into run.json as the run's provenance."""
    from core.layout import stamps_dir
    from core.names import check_name

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    preset_name = check_name("preset", preset or config.variants[variant].default_preset)
    if preset_name not in config.presets:
        raise stage_runtime.StageError(f"unknown preset {preset_name!r}; known: {', '.join(config.presets)}")
    recipe = config.presets[preset_name]
    training = config.variants[variant].training
    stamps = stamps_dir(workspace, variant, grid)
    if not stamps.exists():
        raise stage_runtime.StageError(f"{stamps}: no stamps; run `halo stage inject` first")
    run_name = check_name(
        "run", run_name_of(config, variant, {"run": run, "grid": grid, "preset": preset_name})
    )
    run_dir = runs_dir(workspace) / run_name
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    checkpoint = run_dir / LAST_CHECKPOINT
    if rank == 0 and checkpoint.exists() and not resume and not force:
        done = _finished(run_dir, recipe, stamps, epochs or recipe.epochs, training)
        if done is not None:
            print(
                f"train: run {run_name!r} is complete and up to date (use --force to train it again)",
                flush=True,
            )
            return {
                "outputs": [str(run_dir)],
                "run": run_name,
                "preset": preset_name,
                "skipped": True,
                **done,
            }
    final_dir = run_dir
    if rank == 0:
        stage_runtime.recover(final_dir)
        if checkpoint.exists() and not resume:
            if not force:
                raise stage_runtime.StageError(
                    f"run {run_name!r} exists in {run_dir}: use --resume, or --force to start over"
                )
            # --force trains the replacement beside the run: the old one stays, whole, until the
            # new one has finished (a cancel or a crash leaves it as it was)
            run_dir = final_dir.parent / f".{run_name}.tmp-{os.getpid()}"
            shutil.rmtree(run_dir, ignore_errors=True)
        if resume and not checkpoint.exists():
            raise stage_runtime.StageError(
                f"run {run_name!r} has no checkpoint to resume from ({checkpoint})"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_run_info(
            run_dir,
            {
                "run": run_name,
                "variant": variant,
                "grid": grid,
                "preset": preset_name,
                "preset_values": recipe.model_dump(mode="json"),
                "stamps": str(stamps),
                "world_size": world,
                "epochs": epochs or recipe.epochs,
                "targets": {k: v.model_dump() for k, v in config.targets.items()},
                "training": training.model_dump(mode="json"),
                "source": config.grids[grid].source.model_dump(mode="json"),  # what it learned from
                **({"extra_stamps": extra_stamps} if extra_stamps else {}),
                **({"init": str(init)} if init else {}),
                **({"lineage": lineage} if lineage else {}),
            },
            resume,
        )
    if world > 1:
        _init_distributed()
    location: Path | list[str] = stamps
    if extra_stamps:
        location = [*(str(p) for p in sorted(stamps.glob("part-*.parquet"))), *extra_stamps]
    trainer = Trainer(run_dir, location, recipe, rank, world, epochs or recipe.epochs, training)
    if init is not None and not (resume and checkpoint.exists()):
        trainer.start_from(init)
    if resume and checkpoint.exists():
        trainer.load(checkpoint)
        print(f"train: resuming {run_name} after epoch {trainer.start_epoch - 1}", flush=True)
    for skipped in trainer.train_data.skipped:
        print(f"train: skipped {skipped['file']}: {skipped['reason']}", flush=True)
    try:
        result = trainer.fit()
    except BaseException:
        if run_dir != final_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # every rank done with the group before any tears it down: under load a
        dist.destroy_process_group()  # rank that raced ahead aborted ("terminate called …")
    if rank == 0 and run_dir != final_dir:
        _swap(run_dir, final_dir)
    return {
        "outputs": [str(final_dir)],
        "run": run_name,
        "preset": preset_name,
        **result,
        "skipped_files": trainer.train_data.skipped + trainer.val_data.skipped,
    }


def _swap(new: Path, final: Path) -> None:
    """Put a finished replacement run in place of the old one, which goes only after."""
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    print(f"train: {final.name} replaced by the new run", flush=True)


def _write_run_info(run_dir: Path, info: dict[str, Any], resume: bool) -> None:
    """run.json: the run's current settings, and under `history` every launch's (a resume
    with another `--epochs` adds a line; nothing earlier is overwritten)."""
    path = run_dir / "run.json"
    history: list[dict[str, Any]] = []
    if resume:
        try:
            history = list(json.loads(path.read_text()).get("history", []))
        except (OSError, ValueError, AttributeError):
            history = []
    launch = {k: info[k] for k in ("preset", "preset_values", "stamps", "world_size", "epochs")}
    history.append({"launched": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resume": resume, **launch})
    _replace(path, json.dumps({**info, "history": history}, indent=2))


def _finished(run_dir: Path, preset: Any, stamps: Path, epochs: int, training: Any) -> dict[str, Any] | None:
    """The run's result if it trained all its epochs with this preset and `[training]` on
    these stamps."""
    from core.runs import read_metrics

    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    lines, _ = read_metrics(run_dir / "metrics.jsonl")
    same = info.get("preset_values") == preset.model_dump(mode="json") and info.get("stamps") == str(stamps)
    same = same and info.get("training") == training.model_dump(mode="json")
    if same and info.get("epochs") == epochs and len(lines) == epochs:
        return {"epochs": epochs, "last": lines[-1]}
    return None


def _init_distributed() -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
