"""The metadata leakage guard: metadata fusion may use observing conditions only.

Any column derived from the label or the injection (arc_snr, theta_e*, src_*, is_control…)
would let the model read the answer, as the seed's `--meta_cols arc_snr` could have."""

from __future__ import annotations

from core.errors import UsageError

# Observing conditions from the Tractor catalogue, per band.
ALLOWED_PREFIXES = ("psfsize_", "psfdepth_", "galdepth_", "nobs_")
ALLOWED = frozenset(f"{prefix}{band}" for prefix in ALLOWED_PREFIXES for band in ("g", "r", "z")) | frozenset(
    {"ebv"}
)

# Named explicitly so the refusal says why, not just "not allowed".
LEAKY_PREFIXES = ("theta_e", "src_", "arc_", "lens_", "shear", "mu", "magnification", "inj_")
LEAKY = frozenset({"is_control", "label", "arc_snr", "ok", "fail_reason", "split", "supersample"})


def check_meta_cols(columns: list[str]) -> list[str]:
    """Return `columns` if every one is an observing condition, else raise naming the leak."""
    for column in columns:
        if column in LEAKY or column.startswith(LEAKY_PREFIXES):
            raise UsageError(
                f"metadata column {column!r} is derived from the label or the injection and "
                "would leak it; use observing conditions only (e.g. psfsize_r, psfdepth_r)"
            )
        if column not in ALLOWED:
            raise UsageError(
                f"metadata column {column!r} is not an observing condition; "
                f"allowed: {', '.join(sorted(ALLOWED))}"
            )
    return columns
