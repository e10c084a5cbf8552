import shutil
from pathlib import Path

import pytest

from core import config as config_mod
from core.config import load
from core.errors import ConfigError


def _ws(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "halo.toml").write_text(toml)
    return tmp_path


def _error(tmp_path: Path, toml: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(_ws(tmp_path, toml), environ=environ or {})
    return str(info.value)


def test_shipped_config_holds_the_seed_tables() -> None:
    cfg = load(None, environ={})
    assert cfg.grids["grid_small"].n_configs == 48
    assert cfg.grids["grid_sota"].n_configs == 1008
    sota = cfg.grids["grid_sota"]
    assert sota.theta_e_arcsec == [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5]
    assert (sota.n_total_per_split, sota.control_frac, sota.control_mode) == (200000, 0.5, "unpaired")
    v3 = cfg.variants["v3_color_relaxed"]
    assert (v3.cuts.z_mag_max, v3.cuts.rz_min, v3.cuts.zw1_min) == (20.4, 0.4, 0.8)
    assert v3.cuts.exclude_types == ["PSF"] and v3.cuts.positive_flux == ["r", "z", "w1"]
    assert v3.splits == {"train": 0.259, "val": 0.395, "test": 0.346}
    assert cfg.variants["v4_sota"].parent_sample == "v3_color_relaxed"
    r18, cnx = cfg.presets["resnet18_v3"], cfg.presets["convnext_v4sota"]
    assert (r18.arch, r18.lr, r18.weight_decay, r18.batch_size, r18.epochs, r18.precision) == (
        "resnet18",
        3e-4,
        1e-4,
        32,
        10,
        "fp16",
    )
    assert (cnx.arch, cnx.lr, cnx.weight_decay, cnx.batch_size, cnx.epochs, cnx.precision) == (
        "convnext_tiny",
        3e-4,
        1e-2,
        512,
        12,
        "bf16",
    )
    assert cfg.presets["demo_cpu"].precision == "fp32"
    targets = {name: (t.op, t.value) for name, t in cfg.targets.items()}
    assert targets == {
        "auroc": (">", 0.99),
        "tpr@fpr1e-4": (">", 0.70),
        "tpr@fpr1e-3": (">", 0.80),
        "fpr@tpr0.85": ("<", 0.01),
    }
    assert cfg.targets["fpr@tpr0.85"].met(0.0017) and not cfg.targets["auroc"].met(0.9894)
    assert cfg.backends.default == "local"


def test_workspace_overrides_and_adds(tmp_path: Path) -> None:
    cfg = load(
        _ws(
            tmp_path,
            """
[grids.grid_sota]
control_frac = 0.4
[grids.tiny]
theta_e_arcsec = [1.0]
src_dmag = [1.0]
src_reff_arcsec = [0.1]
src_e = [0.0]
shear = [0.0]
n_total_per_split = 100
control_frac = 0.5
[backends.emr]
cluster_id = "j-ABC123"
""",
        ),
        environ={},
    )
    assert cfg.grids["grid_sota"].control_frac == 0.4
    assert cfg.grids["grid_sota"].n_configs == 1008  # the rest of the shipped grid stays
    assert cfg.grids["tiny"].n_configs == 1
    assert cfg.backends.emr.cluster_id == "j-ABC123"


def test_error_in_workspace_file_names_file_and_key_path(tmp_path: Path) -> None:
    msg = _error(tmp_path, "[grids.grid_sota]\ntheta_e_arcsec = [0.5, 1.0, -2.0]\n")
    assert msg == f"{tmp_path / 'halo.toml'}: grids.grid_sota.theta_e_arcsec[2]: must be > 0"


def test_error_in_a_shipped_file_names_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "config"
    shutil.copytree(config_mod.SHIPPED, shipped)
    grid = shipped / "grids" / "grid_sota.toml"
    grid.write_text(grid.read_text().replace("[0.5, 0.75, 1.0,", "[0.5, 0.75, 0.0,"))
    monkeypatch.setattr(config_mod, "SHIPPED", shipped)
    with pytest.raises(ConfigError) as info:
        load(None, environ={})
    assert str(info.value) == "grids/grid_sota.toml: theta_e_arcsec[2]: must be > 0"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[grids.grid_small]\nthetae = [1.0]\n", "grids.grid_small.thetae: is not a known key"),
        ("[grids.grid_small]\ncontrol_frac = 1.5\n", "grids.grid_small.control_frac: must be <= 1"),
        (
            "[grids.grid_small]\ncontrol_mode = 'twin'\n",
            "grids.grid_small.control_mode: must be one of 'unpaired' or 'paired'",
        ),
        ("[grids.grid_small]\nsrc_e = [0.2, 'round']\n", "grids.grid_small.src_e[1]: must be a number"),
        (
            "[grids.grid_small]\nn_total_per_split = 2.5\n",
            "grids.grid_small.n_total_per_split: must be an integer",
        ),
        ("[grids.grid_small]\nshear = []\n", "grids.grid_small.shear: must have at least 1 item(s)"),
        ("[grids.new]\ntheta_e_arcsec = [1.0]\n", "grids.new.src_reff_arcsec: is required but missing"),
        (
            "[grids.new]\ntheta_e_arcsec = [1.0]\nsrc_reff_arcsec = [0.1]\nsrc_e = [0.0]\nshear = [0.0]\n"
            "n_total_per_split = 10\ncontrol_frac = 0.5\n",
            "grids.new: src_dmag is required in source mode 'relative'",
        ),
        ("[variants.v4_sota.splits]\ntrain = 0.5\n", "variants.v4_sota.splits: fractions must add up to 1"),
        (
            "[variants.v4_sota]\ndefault_grid = 'grid_huge'\n",
            "variants.v4_sota.default_grid: 'grid_huge' is not defined",
        ),
        (
            "[presets.demo_cpu]\nmeta_cols = ['psfsize_r', 'arc_snr']\n",
            "metadata column 'arc_snr' is derived from the label",
        ),
        ("[presets.demo_cpu]\nmeta_cols = ['theta_e_arcsec']\n", "would leak it"),
        (
            "[presets.demo_cpu]\narch = 'vit'\n",
            "presets.demo_cpu.arch: must be one of 'resnet18', 'convnext_tiny' or 'small_cnn'",
        ),
        ("[targets.'tpr@fpr1e-9']\nop = '>'\nvalue = 0.5\n", "unknown metric 'tpr@fpr1e-9'"),
        ("[backends]\ndefault = 'slurm'\n", "backends.default: must be one of 'local' or 'emr'"),
        (
            "[backends.emr]\ns3_prefix = 'http://bucket'\n",
            "backends.emr.s3_prefix: does not have the expected form",
        ),
        ("[variants.'v4; rm -rf /']\nparent_sample = 'v3_color_relaxed'\n", "is not a valid name"),
        ("[stages.evil]\nmodule = 'os; rm -rf /'\n", "is not a dotted Python module name"),
        # [training] (issue 23): a bad key of a keyed table is blamed on the file that set it
        (
            "[variants.v4_sota.training]\ntier_weights = { gold = 1.0 }\n",
            "variants.v4_sota.training.tier_weights.gold: not a key here: must be one of 'confirmed'",
        ),
        (
            "[variants.v4_sota.training]\npositives = 'foo'\n",
            "variants.v4_sota.training.positives: must be one of",
        ),
        (
            "[variants.v4_sota.training]\nknown_share = 2\n",
            "variants.v4_sota.training.known_share: must be < 1",
        ),
        ("[presets.demo_cpu]\narch = 'resnet18'\nwidth = 16\n", "width is small_cnn's"),
    ],
)
def test_each_validation_error_is_named(tmp_path: Path, toml: str, expected: str) -> None:
    msg = _error(tmp_path, toml)
    assert msg.startswith(str(tmp_path / "halo.toml")), msg
    assert expected in msg


def test_a_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, "[grids.grid_small]\ncontrol_frac = = 0.5\n")
    assert msg.startswith(f"{tmp_path / 'halo.toml'}: not valid TOML") and "line 2" in msg


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    msg = _error(tmp_path, "[grids.grid_small]\ncontrol_frac = -1\nshear = [-0.1]\n")
    assert "control_frac: must be >= 0" in msg and "shear[0]: must be >= 0" in msg


def test_environment_overrides_backends(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        environ={
            "HALO_EMR_CLUSTER_ID": "j-XYZ",
            "HALO_EMR_SPARK_EXECUTOR_MEMORY": "32g",
            "HALO_LOCAL_CANCEL_GRACE_SECONDS": "2.5",
            "HALO_BACKEND": "emr",
        },
    )
    assert cfg.backends.emr.cluster_id == "j-XYZ"
    assert cfg.backends.emr.spark.executor_memory == "32g"
    assert cfg.backends.local.cancel_grace_seconds == 2.5
    assert cfg.backends.default == "emr"


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, environ={"HALO_EMR_CLUSTER_ID": "cluster; rm -rf /"})
    assert str(info.value).startswith("HALO_EMR_CLUSTER_ID: does not have the expected form")
    with pytest.raises(ConfigError, match="HALO_LOCAL_CANCEL_GRACE_SECONDS: must be a number"):
        load(tmp_path, environ={"HALO_LOCAL_CANCEL_GRACE_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="HALO_EMR_BOGUS: is not a known key"):
        load(tmp_path, environ={"HALO_EMR_BOGUS": "1"})


def test_unreadable_halo_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "halo.toml").mkdir()
    with pytest.raises(ConfigError, match="halo.toml: cannot be read"):
        load(tmp_path, environ={})


def test_a_run_launched_without_a_name_is_found_by_the_default_name() -> None:
    """The console's monitor and the stages agree on the run a train job writes (it once
    looked for `v4_sota--` when --run, --grid and --preset were left out)."""
    from core.layout import default_run_name, run_name_of

    config = load(Path("/nonexistent"))
    assert run_name_of(config, "v4_sota", {}) == default_run_name("v4_sota", "grid_sota", "convnext_v4sota")
    assert run_name_of(config, "v4_sota", {"preset": "demo_cpu"}) == "v4_sota-grid_sota-demo_cpu"
    assert run_name_of(config, "v3_color_relaxed", {"run": "mine", "grid": "grid_sota"}) == "mine"
