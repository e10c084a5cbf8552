"""`halo` as a real process: JSON output, exit codes, no tracebacks, following logs."""

import json
import os
import subprocess
import time
from pathlib import Path


def test_stage_wait_json_gives_the_job_record_and_exit_code(halo) -> None:
    ok = halo.json("stage", "sleepy", "--seconds", "0.1", "--wait")
    assert ok["state"] == "succeeded" and ok["exit_code"] == 0 and ok["outputs"] == ["result.txt"]
    assert ok["command"] == "halo stage sleepy --seconds 0.1"
    failed = halo("stage", "sleepy", "--code", "4", "--wait", "--json", check=1)
    assert json.loads(failed.stdout)["failure"] == "exited with code 4"


def test_a_failed_job_says_why_where_people_look(halo) -> None:
    """Issue 15: `--wait` and `jobs show` said only "exited with code 1"; the stage's own
    message ("no checkpoint; train the run first") was in the log alone."""
    reason = "no_checkpoint:train_the_run_first"
    waited = halo("stage", "sleepy", "--code", "1", "--error", reason, "--wait", check=1)
    said = f"exited with code 1: sleepy: error: {reason}"
    assert said in " ".join((waited.stdout + waited.stderr).split())
    job = halo.json("jobs", "list")[0]
    assert job["failure"] == said
    shown = halo("jobs", "show", str(job["id"]))
    assert said in " ".join(shown.stdout.split())


def test_stage_without_wait_returns_at_once_and_lists_the_job(halo) -> None:
    started = time.monotonic()
    job = halo.json("stage", "sleepy", "--seconds", "30")
    assert time.monotonic() - started < 10 and job["state"] == "running"
    listed = halo.json("jobs", "list")
    assert [j["id"] for j in listed] == [job["id"]]
    assert halo.json("jobs", "list", "--state", "succeeded") == []
    cancelled = halo.json("jobs", "cancel", str(job["id"]))
    assert cancelled["state"] == "cancelled"
    assert halo("jobs", "cancel", str(job["id"]), check=2).stderr.startswith("halo: error: job")


def test_human_output_shows_a_table(halo) -> None:
    halo("stage", "sleepy", "--wait", check=0)
    out = halo("jobs", "list", check=0).stdout
    assert "sleepy" in out and "succeeded" in out
    shown = halo("jobs", "show", "1", check=0).stdout
    assert "halo stage sleepy" in shown and "result.txt" in shown
    # bug 12 of issue 14: a filter matching nothing said "no jobs yet" in a workspace with jobs
    none = halo("jobs", "list", "--state", "running", check=0)
    assert "no running jobs (1 job(s) in all)" in none.stderr and "yet" not in none.stderr
    assert none.stdout == ""  # stdout is data; what is said about it goes to stderr


def test_headless_errors_are_one_line_or_one_json_object(halo) -> None:
    """Issue 22 item 13: --json errors were prose on stderr with nothing on stdout; a command
    line that did not parse printed Typer's three-line usage; `jobs show` piped padded every
    line to 240 columns; `halo stage train --help` listed --force twice."""
    for args, code in (
        (("jobs", "show", "999", "--json"), 2),
        (("jobs", "show", "abc", "--json"), 2),
        (("jobs", "watch", "--json"), 2),
        (("stage", "nosuch", "--json"), 2),
    ):
        proc = halo(*args, check=code)
        error = json.loads(proc.stdout)
        assert error["exit"] == code and error["error"] and set(error) == {"error", "exit"}, proc.stdout
    for args in (("jobs", "watch"), ("jobs", "show", "abc"), ("nosuch",)):
        said = halo(*args, check=2).stderr
        assert said.startswith("halo: error: ") and said.count("\n") == 1, said
    assert "which jobs?" in halo("jobs", "watch", check=2).stderr
    halo("stage", "sleepy", "--seconds", "0.1", "--code", "3", "--wait", check=1)
    shown = halo("jobs", "show", "1", check=0).stdout.splitlines()
    assert shown and all(line == line.rstrip() for line in shown)
    assert next(line for line in shown if line.startswith("failure")).endswith("exited with code 3")
    helped = halo("stage", "train", "--help", check=0).stdout
    assert sum(line.split()[0] == "--force" for line in helped.splitlines() if line.split()) == 1


def test_logs_follow_until_the_job_ends(halo, workspace: Path) -> None:
    job = halo.json("stage", "sleepy", "--seconds", "1.0")
    followed = halo("jobs", "logs", "-f", str(job["id"]), check=0)
    assert "sleepy: start" in followed.stdout and "sleepy: done" in followed.stdout
    assert halo("jobs", "logs", str(job["id"]), check=0).stdout == followed.stdout
    failing = halo.json("stage", "sleepy", "--code", "2")
    assert "exit code 2" in halo("jobs", "logs", "--follow", str(failing["id"]), check=1).stdout


def test_user_errors_exit_2_with_one_message(halo, workspace: Path) -> None:
    for args, message in [
        (("stage", "sleepy", "--variant", "v4; rm -rf /"), "is not a valid name"),
        (("stage", "sleepy", "--out", "../x"), "is not an acceptable path"),
        (("stage", "sleepy", "stray"), "unexpected argument 'stray'"),
        (("stage", "sleepy", "--seconds"), "option --seconds needs a value"),
        (("stage", "nosuch"), "unknown stage 'nosuch'"),
        (("stage", "ghost"), "not built yet"),
        (("jobs", "show", "42"), "no job 42"),
        (("jobs", "list", "--state", "sleeping"), "unknown state"),
        (("jobs", "show", "forty-two"), "Invalid value"),
        (("nosuchcommand",), "No such command"),
        (("--workspace", str(workspace / "missing"), "jobs", "list"), "is not a folder"),
        (("--blind-rate", "0.9", "jobs", "list"), "0.9 is not in the range"),
        (("--blind-rate", "many", "jobs", "list"), "is not a valid float"),
    ]:
        proc = halo(*args, check=2)
        assert message in proc.stderr, (args, proc.stderr)
    assert halo.json("jobs", "list") == []  # nothing ran


def test_a_broken_halo_toml_is_named_with_exit_2(halo, workspace: Path) -> None:
    (workspace / "halo.toml").write_text("[grids.grid_sota]\ntheta_e_arcsec = [0.5, 1.0, -2.0]\n")
    proc = halo("config", "check", check=2)
    assert (
        proc.stderr.strip()
        == f"halo: error: {workspace / 'halo.toml'}: grids.grid_sota.theta_e_arcsec[2]: must be > 0"
    )
    halo("stage", "sleepy", check=2)
    (workspace / "halo.toml").write_text("[triage]\nblind_rate = 0.8\n")
    assert "triage.blind_rate: must be <= 0.5" in halo("config", "check", check=2).stderr


def test_config_show_json_counts_grid_configurations(halo) -> None:
    cfg = halo.json("config", "show")
    assert cfg["grids"]["grid_small"]["n_configs"] == 48 and cfg["grids"]["grid_sota"]["n_configs"] == 1008
    assert halo.json("config", "check")["ok"] is True


def test_stages_json_lists_availability(halo) -> None:
    stages = {s["name"]: s for s in halo.json("stages")}
    assert stages["sleepy"]["available"] is True
    assert stages["triage"]["available"] is True and stages["ghost"]["available"] is False
    assert {o["flag"] for o in stages["sleepy"]["options"]} == {
        "--seconds",
        "--code",
        "--stubborn",
        "--out",
        "--error",
    }


def test_workspace_option_works_before_and_after_the_command(halo, workspace: Path, tmp_path: Path) -> None:
    halo("stage", "sleepy", "--wait", check=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    for args in (
        ["-w", str(workspace), "jobs", "list", "--json"],
        ["jobs", "list", "--json", "-w", str(workspace)],
    ):
        proc = subprocess.run([halo.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert len(json.loads(proc.stdout)) == 1


def test_demo_init_creates_a_workspace_and_writes_the_survey_as_a_job(halo, tmp_path: Path) -> None:
    target = tmp_path / "demo"
    out = halo.json("demo", "init", "--workspace", str(target), "--bricks", "1", "--no-images")
    assert out["workspace"] == str(target)
    assert (out["job"]["stage"], out["job"]["state"]) == ("demo", "succeeded")
    assert (target / "halo.toml").exists() and (target / ".halo" / "halo.db").exists()
    assert list((target / "survey" / "tractor").rglob("tractor-*.fits"))
    again = halo("demo", "init", "--workspace", str(target), "--bricks", "1", "--no-images", check=0)
    assert "up to date" in again.stderr  # the job's log is shown while it runs
    listed = halo("jobs", "list", "--workspace", str(target), check=0).stdout
    assert listed.count("demo") == 2


def test_the_demos_next_steps_are_commands_that_run(halo, workspace: Path) -> None:
    """Issue 15: after `make demo` nothing said the workspace was `-w halo-demo`, nor how to
    reopen the console. The report's next steps name it, and each headless command runs."""
    import shlex

    from halo_tui.demo_report import next_steps

    steps = next_steps(workspace, "demo")
    assert f"-w {workspace}" in steps[0] and any("3 candidates" in s for s in steps)
    commands = [shlex.split(s.split("   ")[0].strip()) for s in steps[1:] if s.strip().startswith("halo ")]
    assert ["halo", "-w", str(workspace)] in commands  # the console (not opened here)
    for command in commands:
        if command[1:3] != ["-w", str(workspace)]:
            halo(*command[1:], check=0)
    assert any(s.strip().startswith(f"export HALO_WORKSPACE={workspace.resolve()}") for s in steps)


def test_stage_help_lists_that_stages_options(halo) -> None:
    """Issue 15: `halo stage train --help` showed only the generic options."""
    shown = " ".join(halo("stage", "train", "--help", check=0).stdout.split())
    assert "--wait" in shown and "Options of train" in shown
    assert "--epochs int - 1 to 100000 override the preset's epochs" in shown
    assert "--nproc int 1 1 to 1024" in shown
    assert "halo stage NAME --help" in halo("stage", "--help", check=0).stdout
    assert "which stage?" in halo("stage", check=2).stderr
    assert "unknown stage 'nosuch'" in halo("stage", "nosuch", "--help", check=2).stderr
    # a shipped stage's options need no workspace (one not made yet): help, exit 0
    nowhere = str(halo.root / "not-made-yet")
    shown = " ".join(halo("-w", nowhere, "stage", "score", "--help", check=0).stdout.split())
    assert "Options of score" in shown and "--keep-stamps int 1000" in shown


def test_human_output_reads_well_piped(halo, workspace: Path) -> None:
    """Issue 15: piped output wrapped at 80 columns and split paths; `runs compare` printed raw
    Markdown; a bad state showed a Python list."""
    halo("stage", "sleepy", "--wait", check=0)
    job = halo.json("jobs", "list")[0]
    shown = halo("jobs", "show", str(job["id"])).stdout
    assert job["log_path"] in shown and len(job["log_path"]) > 60  # whole, on one line
    refused = halo("jobs", "list", "--state", "broken", check=2)
    assert "unknown state 'broken'; known: queued" in refused.stderr
    for name, auroc in (("gen1", 0.91), ("gen2", 0.995)):
        run = workspace / "data" / "runs" / name
        run.mkdir(parents=True)
        lineage = {"lineage": {"parent": "gen1"}} if name == "gen2" else {}  # a round of gen1
        (run / "run.json").write_text(json.dumps({"run": name, "variant": "v4_sota", **lineage}))
        line = {"epoch": 0, "auroc": auroc, "tpr@fpr1e-2": auroc / 2, "n_pos": 100, "n_neg": 100}
        if name == "gen2":  # too few negatives for FPR 1e-3: not measurable, not missing
            line |= {"tpr@fpr1e-3": None, "unmeasured": {"tpr@fpr1e-3": "needs 1,000 negatives"}}
            # and no negative above the 85 % completeness threshold: only a bound is known
            line |= {"fpr@tpr0.85": None, "fpr_upper_bounds": {"fpr@tpr0.85": 0.02951}}
            line |= {"n_neg_independent": 100}
        (run / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    # issue 26, item 4: what an interrupted `train --force` leaves is no run
    (workspace / "data" / "runs" / ".gen1.tmp-18071").mkdir()
    listed = [row.split() for row in halo("runs", "list").stdout.splitlines()]
    assert listed[0] == [
        "run",
        "parent",
        "epochs",
        "val",
        "auroc",
        "val",
        "tpr@fpr1e-3",
        "test",
        "auroc",
        "test",
        "tpr@fpr1e-3",
        "real",
        "recall@fpr1e-2",
    ]
    assert listed[1] == ["gen1", "-", "1", "0.9100", "-", "-", "-", "-"] and listed[2] == [
        "gen2",
        "gen1",
        "1",
        "0.9950",
        "n/m",
        "-",
        "-",
        "-",
    ]
    table = halo("runs", "compare", "gen1", "gen2").stdout
    assert "**" not in table and "0.9950 ▲" in table and "0.9100" in table
    assert "**0.9950**" in halo("runs", "compare", "gen1", "gen2", "--markdown").stdout
    assert "< 3.0e-02 (0/100)" in table and "n/m" in table  # a bound with its count; not measurable


def test_a_look_never_makes_a_workspace_and_a_launch_says_where(
    halo, workspace: Path, tmp_path: Path
) -> None:
    """Issue 15: `halo` run in any folder silently created `.halo/` there. Looks (jobs list,
    show, runs, config, the console without a terminal) create nothing and say where the
    workspace is; a refused launch creates nothing; the first launch says where it put it."""
    from core.store import Store

    elsewhere = tmp_path / "clone"
    Store(tmp_path / "clone" / "halo-demo" / ".halo" / "halo.db")  # the demo's workspace beside
    look = type(halo)(elsewhere)
    listed = look("jobs", "list", check=0).stderr
    assert f"{elsewhere} is not a halo workspace yet" in listed and "halo -w halo-demo" in listed
    assert look.json("jobs", "list") == []
    shown = look("jobs", "show", "3", check=2).stderr
    assert shown.startswith("halo: error: no job 3: ") and shown.count("\n") == 1
    look("runs", "list", check=0)
    look("config", "check", check=0)
    console = look(check=2).stderr  # bare `halo`, stdin not a terminal: asks nothing
    assert "is not a halo workspace yet" in console and console.count("\n") == 1
    assert not (elsewhere / ".halo").exists()

    halo("stage", "nosuch", check=2)
    halo("stage", "sleepy", "--seconds", "soon", check=2)
    refused = halo("stage", "inject", "--variant", "v4_sota", check=2).stderr  # no manifest yet
    assert "halo stage manifest --variant v4_sota" in refused and refused.count("\n") == 1
    assert not (workspace / ".halo").exists()  # refused before anything was made
    first = halo("stage", "sleepy", "--seconds", "0.1", "--wait", check=0).stderr
    assert f"{workspace.resolve()} is a new workspace: its job store and logs are in " in first
    assert "new workspace" not in halo("stage", "sleepy", "--seconds", "0.1", "--wait", check=0).stderr
