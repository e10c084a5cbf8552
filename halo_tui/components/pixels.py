"""Real pixels for the zoomed stamp in terminals that draw images — Kitty's graphics protocol
or Sixel, through textual-image — and half blocks (components/stamp.py) everywhere else.

The terminal is asked once, before the console starts (it cannot be asked while Textual owns
it). `HALO_PIXELS` chooses: `auto` (ask the terminal), `off` (half blocks), `sixel` or
`kitty` (use that protocol without asking)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import UsageError

CHOICES = ("auto", "off", "sixel", "kitty")
_chosen: str | None = None


def detect(environ: Mapping[str, str] = os.environ) -> str | None:
    """Choose how the zoomed stamp is drawn: "sixel", "kitty" or None (half blocks)."""
    global _chosen
    wanted = environ.get("HALO_PIXELS", "auto")
    if wanted not in CHOICES:
        raise UsageError(f"HALO_PIXELS={wanted!r} is not one of {', '.join(CHOICES)}")
    _chosen = None
    if wanted in ("sixel", "kitty"):
        _chosen = wanted
    elif wanted == "auto" and sys.__stdout__ is not None and sys.__stdout__.isatty():
        try:  # importing it asks the terminal (and measures its cells)
            import textual_image.widget  # noqa: F401
            from textual_image.renderable import Image, SixelImage, TGPImage
        except Exception:  # noqa: BLE001 - a terminal that does not answer: half blocks
            return None
        _chosen = "sixel" if Image is SixelImage else "kitty" if Image is TGPImage else None
    return _chosen


def protocol() -> str | None:
    """What `detect` chose (None before it ran)."""
    return _chosen


def image(rgb: np.ndarray) -> Any:
    """A widget drawing the (H, W, 3) uint8 image with the chosen protocol."""
    from PIL import Image as PILImage
    from textual_image.widget import SixelImage, TGPImage

    kind = SixelImage if _chosen == "sixel" else TGPImage
    return kind(PILImage.fromarray(np.ascontiguousarray(rgb)), classes="pixels")
