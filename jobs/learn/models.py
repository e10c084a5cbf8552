"""The lens classifiers: ResNet18 adapted to 64×64 stamps and ConvNeXt-Tiny (timm), each with
one logit and an optional metadata head (observing conditions only, see core.leakage).

torch, torchvision and timm are imported here, by the stages that need a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

FEATURES = {"resnet18": 512, "convnext_tiny": 768, "small_cnn": 128}
SMALL_CNN_WIDTH = 32  # small_cnn's first block's channels (the others 2×, 4×, 4×)


def features(arch: str, width: int | None = None) -> int:
    """The backbone's feature count (small_cnn's grows with its width)."""
    return 4 * (width or SMALL_CNN_WIDTH) if arch == "small_cnn" else FEATURES[arch]


def backbone(arch: str, width: int | None = None) -> nn.Module:
    """A feature extractor returning (batch, features(arch, width))."""
    if arch == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        # the seed's 64×64 adaptation: a 3×3 stride-1 first convolution and no max-pool
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        return net
    if arch == "small_cnn":
        return small_cnn(width or SMALL_CNN_WIDTH)
    if arch == "convnext_tiny":
        import timm

        return timm.create_model("convnext_tiny", pretrained=False, in_chans=3, num_classes=0)
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(FEATURES)}")


def small_cnn(width: int = SMALL_CNN_WIDTH) -> nn.Module:
    """Four conv blocks (width-2w-4w-4w channels: 32-64-128-128, ~0.3 M parameters, ~40x
    cheaper than ResNet18-64; 16 is ~4x cheaper again): not a seed architecture; it lets the
    demo train on two CPU cores."""

    def block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
        return [*layers, nn.MaxPool2d(2)] if pool else layers

    return nn.Sequential(
        *block(3, width, True),
        *block(width, 2 * width, True),
        *block(2 * width, 4 * width, True),
        *block(4 * width, 4 * width, False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


class LensClassifier(nn.Module):
    """Backbone features (+ a small metadata MLP) -> one logit."""

    def __init__(
        self,
        arch: str,
        n_meta: int = 0,
        stretch: str = "clip",
        width: int | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.arch, self.n_meta, self.width = arch, n_meta, width
        self.channels_last = channels_last  # how `features` lays out its input (see `build`)
        self.stretch = stretch  # how its stamps are normalised (jobs.learn.dataset.robust_normalise)
        self.backbone = backbone(arch, width)
        width = features(arch, width)
        self.meta = (
            nn.Sequential(nn.Linear(n_meta, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU()) if n_meta else None
        )
        self.head = nn.Linear(width + (32 if n_meta else 0), 1)

    def features(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """The penultimate features: what the head weighs into the logit (the realism probe's
        input, jobs/learn/realism.py)."""
        if self.channels_last:  # the weights are laid out so by `build`
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone(images)
        if self.meta is not None:
            if meta is None:
                raise ValueError("this model was built with a metadata head: pass the metadata columns")
            features = torch.cat([features, self.meta(meta)], dim=1)
        return features

    def forward(self, images: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(images, meta)).squeeze(1)


def build(
    arch: str, n_meta: int = 0, stretch: str = "clip", width: int | None = None, channels_last: bool = True
) -> LensClassifier:
    """A classifier, channels-last unless asked otherwise (a benchmark's baseline): oneDNN's
    convolutions and pooling on the CPU (small_cnn trains 1.2x and infers 1.4x faster on two
    cores) and tensor cores on the GPU."""
    model = LensClassifier(arch, n_meta, stretch, width, channels_last)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def load_checkpoint(path: Path, device: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's tensors and plain containers (`weights_only`: a planted checkpoint cannot
    run code); a damaged file, or one holding anything else, is a StageError naming it."""
    import pickle

    from jobs.runtime.stage import StageError

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:  # PyTorch's own words suggest weights_only=False: never
        raise StageError(
            f"{path}: holds objects other than weights; halo loads weights only and never runs"
            " code from a file (retrain, or delete it)"
        ) from None
    except Exception as err:  # truncated, or not a checkpoint at all
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise StageError(
            f"{path}: not a loadable checkpoint, damaged or truncated ({type(err).__name__}: {first[:160]});"
            " retrain, or delete it"
        ) from None


def load_run(run_dir: Path) -> tuple[LensClassifier, list[str]]:
    """A run's best model (else its last checkpoint), in eval mode, and its metadata columns."""
    from core.layout import run_checkpoint
    from jobs.runtime.stage import StageError

    checkpoint = run_checkpoint(run_dir)
    if checkpoint is None:
        raise StageError(f"{run_dir}: no checkpoint; train the run first")
    state = load_checkpoint(checkpoint)
    # checkpoints from before the stretch was a choice were trained on the seed's clipping
    model = build(state["arch"], len(state["meta_cols"]), state.get("stretch", "clip"), state.get("width"))
    model.load_state_dict(state["model"])
    return model.eval(), list(state["meta_cols"])
