"""train, eval and score on real injected stamps: a tiny CPU run, resuming, the outputs."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.runs import read_metrics
from jobs import eval as eval_stage
from jobs import score, train
from jobs.inject import stamps_dir

ARGS = ["--variant", "v4_sota", "--preset", "test_cpu"]


def _train_argv(workspace: Path, run: str, *extra: str) -> list[str]:
    """`python -m jobs.train` on the test preset, as the engine would launch it."""
    return [sys.executable, "-m", "jobs.train", "--workspace", str(workspace), *ARGS, "--run", run, *extra]


@pytest.fixture(scope="module")
def trained(stamps_ws: Path) -> Path:
    train.run(stamps_ws, "v4_sota", preset_name="test_cpu", run_name="tiny")
    return stamps_ws


def test_a_tiny_cpu_run_lowers_its_loss_and_writes_its_metrics(trained: Path) -> None:
    run_dir = train.runs_dir(trained) / "tiny"
    lines, bad = read_metrics(run_dir / "metrics.jsonl")
    assert bad == [] and [line["epoch"] for line in lines] == [0, 1, 2]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    for line in lines:
        for key in (
            "train_loss",
            "val_loss",
            "auroc",
            "tpr@fpr1e-2",
            "fpr@tpr0.85",
            "n_pos",
            "n_neg",
            "lr",
            "seconds",
            "images/s",
        ):
            assert key in line
        assert line["tpr@fpr1e-4"] is None and "not measurable" in line["unmeasured"]["tpr@fpr1e-4"]
        assert line["n_pos"] + line["n_neg"] == 240
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "best.pt").exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["preset"] == "test_cpu" and info["preset_values"]["arch"] == "small_cnn"
    again = train.run(trained, "v4_sota", preset_name="test_cpu", run_name="tiny")
    assert again["skipped"] is True


def test_a_run_killed_mid_epoch_resumes_without_duplicate_or_missing_lines(stamps_ws: Path) -> None:
    argv = _train_argv(stamps_ws, "killed", "--epochs", "4")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = train.runs_dir(stamps_ws) / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with metrics.open("a") as out:
        out.write('{"epoch": 1, "train_loss": 0.5')  # a line torn by the kill
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "use --resume" in refused.stderr and "Traceback" not in refused.stderr
    done = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    assert "resuming killed after epoch" in done.stdout
    lines, bad = read_metrics(metrics)
    assert bad == [] and [line["epoch"] for line in lines] == [0, 1, 2, 3]


def test_a_corrupt_stamps_file_is_reported_and_training_goes_on(stamps_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(
        stamps_ws, ws, ignore=shutil.ignore_patterns("runs", "candidates", "coadd_cache", "survey")
    )
    (stamps_dir(ws, "v4_sota", "grid_sota") / "part-99999.parquet").write_bytes(b"garbage, not parquet")
    summary = train.run(ws, "v4_sota", preset_name="test_cpu", run_name="c", epochs=1)
    assert any(s["file"].endswith("part-99999.parquet") for s in summary["skipped_files"])
    assert summary["epochs"] == 1


def test_eval_writes_the_seed_tables(trained: Path) -> None:
    summary = eval_stage.run(trained, "v4_sota", run_name="tiny")
    result = json.loads(Path(summary["outputs"][0]).read_text())
    overall = result["tables"]["overall"]
    assert overall["n_pos"] + overall["n_neg"] == 240
    assert sum(t["n_pos"] for t in result["tables"]["theta_e"].values()) == overall["n_pos"]
    assert sum(t["n_pos"] for t in result["tables"]["theta_over_psf"].values()) == overall["n_pos"]
    assert set(overall["fpr_at_completeness"]) == {"0.99", "0.95", "0.90", "0.85", "0.80", "0.70"}
    assert overall["completeness_at_fpr"]["1e-05"]["value"] is None
    text = Path(summary["outputs"][1]).read_text()
    assert "| Completeness (TPR) | FPR |" in text and "θE / PSF FWHM" in text


def test_score_ranks_every_parent_galaxy_once(trained: Path) -> None:
    summary = score.run(trained, "v4_sota", run_name="tiny", hard_negatives=10)
    table = pq.read_table(summary["outputs"][0])
    parent = pq.read_table(trained / "data/parent/v3_color_relaxed/parent.parquet")
    assert table.num_rows == parent.num_rows
    keys = set(zip(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), strict=True))
    assert keys == set(
        zip(parent.column("brickname").to_pylist(), parent.column("objid").to_pylist(), strict=True)
    )
    ok = np.array(table.column("ok").to_pylist())
    scores = np.array([s for s, good in zip(table.column("score").to_pylist(), ok, strict=True) if good])
    assert np.all(np.diff(scores) <= 0) and ok[: len(scores)].all()  # sorted, flagged rows last
    assert table.column("rank").to_pylist() == list(range(1, table.num_rows + 1))
    hard = pq.read_table(summary["outputs"][1])
    assert hard.num_rows == 10 and np.all(np.diff(hard.column("score").to_numpy()) <= 0)


def test_runs_compare_through_the_cli(trained: Path, halo) -> None:
    out = subprocess.run(
        [halo.executable, "runs", "compare", "tiny", "--workspace", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "| auroc |" in out.stdout and "> 0.99" in out.stdout
    table = json.loads(
        subprocess.run(
            [halo.executable, "runs", "compare", "tiny", "--json", "-w", str(trained)],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert table["runs"] == ["tiny"] and any(r["metric"] == "tpr@fpr1e-4" for r in table["rows"])
    missing = subprocess.run(
        [halo.executable, "runs", "compare", "nope", "-w", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr


def test_ddp_on_two_cpu_processes_validates_on_the_whole_split(stamps_ws: Path) -> None:
    argv = _train_argv(stamps_ws, "ddp", "--epochs", "1", "--nproc", "2")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    lines, bad = read_metrics(train.runs_dir(stamps_ws) / "ddp" / "metrics.jsonl")
    assert bad == [] and [line["epoch"] for line in lines] == [0]
    assert lines[0]["n_pos"] + lines[0]["n_neg"] == 240  # both ranks' validation shards gathered
    assert json.loads((train.runs_dir(stamps_ws) / "ddp" / "run.json").read_text())["world_size"] == 2
    assert done.stdout.count('"run": "ddp"') == 1  # one summary, from rank 0


def test_runs_and_candidates_on_s3(trained: Path, s3_env: str, halo) -> None:
    import os

    import boto3

    from core.candidates import CandidateTable
    from core.runs import load

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="halo-runs")
    run_dir = train.runs_dir(trained) / "tiny"
    for name in ("run.json", "metrics.jsonl"):
        s3.upload_file(str(run_dir / name), "halo-runs", f"team/runs/tiny/{name}")
    run = load(trained, "s3://halo-runs/team/runs/tiny")
    assert run.name == "tiny" and [e["epoch"] for e in run.epochs] == [0, 1, 2]
    out = subprocess.run(
        [halo.executable, "runs", "compare", "s3://halo-runs/team/runs/tiny", "--json", "-w", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert out.returncode == 0 and json.loads(out.stdout)["runs"] == ["tiny"]
    missing = subprocess.run(
        [halo.executable, "runs", "compare", "s3://halo-runs/nothing/here", "-w", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert missing.returncode == 2 and "no run at s3://halo-runs/nothing/here" in missing.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.score",
            "--workspace",
            str(trained),
            "--variant",
            "v4_sota",
            "--run",
            "tiny",
            "--hard-negatives",
            "5",
            "--mirror",
            "s3://halo-runs/team",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    uri = "s3://halo-runs/team/data/candidates/tiny/candidates.parquet"
    assert uri in done.stdout
    table = CandidateTable(uri)
    local = CandidateTable(trained / "data/candidates/tiny/candidates.parquet")
    assert len(table) == len(local) and table.row(0) == local.row(0)
    assert np.array_equal(table.stamps([0, len(table) - 1]), local.stamps([0, len(local) - 1]))
