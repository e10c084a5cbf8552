"""The batched arc engine: many stamps at once in PyTorch, on the CPU or CUDA.

The physics is caustics' (SIE and external-shear deflections, the Sérsic profile, in its
functional form, broadcast over a batch instead of vmapped one stamp at a time); the numerics
are jobs/lensing.py's, so that it equals `LenstronomyEngine` pixel for pixel: pixel centres
everywhere, ss × ss sub-pixels inside each task's fine square, mean × pixel area. PSF
convolution is one batched FFT for all tasks and bands (kernels zero-padded to a common
size, centred, as scipy's `fftconvolve(mode="same")` does).

Conventions (caustics vs lenstronomy): the SIE's `Rein` is lenstronomy's `theta_E` and its `phi`
the major-axis angle in the stamp frame; the Sérsic's `Re` is the semi-major axis, R_eff/√q,
with lenstronomy's k(n) and `Ie` its amplitude."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.lensing import ArcParams, sersic_k
from jobs.survey_layout import PIXSCALE

CPU_SAMPLES = 1 << 21  # ray-traced samples per chunk: ~ 200 MB of float32 temporaries
CUDA_SAMPLES = 1 << 26


class BatchedEngine:
    """`ArcEngine` on PyTorch; tasks are grouped by supersampling and rendered in chunks."""

    name = "batched"

    def __init__(self, size: int, device: str = "cpu", dtype: Any = None) -> None:
        import torch

        self.size, self.device = size, torch.device(device)
        self.dtype = dtype or torch.float32
        self.budget = CUDA_SAMPLES if self.device.type == "cuda" else CPU_SAMPLES
        c = size // 2
        axis = (torch.arange(size, dtype=torch.float64) - c) * PIXSCALE
        self._coarse = [t.to(self.device, self.dtype) for t in torch.meshgrid(axis, axis, indexing="xy")]

    def arcs(
        self,
        params: ArcParams,
        fluxes: np.ndarray,
        kernels: list[tuple[np.ndarray, ...]],
        supersample: np.ndarray,
        half: np.ndarray,
    ) -> np.ndarray:
        out = np.empty((len(params), fluxes.shape[1], self.size, self.size))
        for ss in np.unique(supersample):
            chosen = np.flatnonzero(supersample == ss)
            chosen = chosen[np.argsort(half[chosen], kind="stable")]  # similar fine squares together
            start = 0
            while start < chosen.size:
                width = (2 * int(half[chosen[start]]) + 1) * int(ss)
                stop = start + 1
                while stop < chosen.size:
                    width = (2 * int(half[chosen[stop]]) + 1) * int(ss)
                    if (stop - start + 1) * max(width**2, self.size**2) > self.budget:
                        break
                    stop += 1
                chunk = chosen[start:stop]
                out[chunk] = self.render(
                    params.take(chunk), fluxes[chunk], [kernels[i] for i in chunk], int(ss), half[chunk]
                )
                start = stop
        return out

    def render(
        self,
        params: ArcParams,
        fluxes: np.ndarray,
        kernels: list[tuple[np.ndarray, ...]],
        ss: int,
        half: np.ndarray,
    ) -> np.ndarray:
        """One chunk, all at one supersampling: (b, bands, size, size)."""
        import torch

        with torch.inference_mode():
            image = self.lensed(params, ss, half)
            stack = self._kernels(kernels)
            arcs = self._convolve(image, stack) * self._tensor(fluxes)[:, :, None, None]
            return arcs.double().cpu().numpy()

    def _tensor(self, values: Any) -> Any:
        import torch

        return torch.as_tensor(np.asarray(values, dtype=float), device=self.device).to(self.dtype)

    def lensed(self, params: ArcParams, ss: int, half: np.ndarray) -> Any:
        """Unit-flux lensed sources, unconvolved, (b, size, size)."""
        import torch

        coarse = self._brightness(params, *self._coarse) * PIXSCALE**2
        big = int(half.max())
        c, width = self.size // 2, 2 * big + 1
        sub = ((torch.arange(width * ss, dtype=torch.float64) + 0.5) / ss - 0.5 - big) * PIXSCALE
        fx, fy = (t.to(self.device, self.dtype) for t in torch.meshgrid(sub, sub, indexing="xy"))
        fine = self._brightness(params, fx, fy)
        fine = fine.reshape(len(params), width, ss, width, ss).mean(dim=(2, 4)) * PIXSCALE**2
        # each task's own square inside the chunk's largest one
        offset = torch.arange(width, device=self.device) - big
        inside = offset.abs()[None, :] <= self._tensor(half)[:, None]
        mask = inside[:, :, None] & inside[:, None, :]
        lo, hi = c - big, min(c + big + 1, self.size)  # an even stamp has one pixel less above
        fine, mask = fine[:, : hi - lo, : hi - lo], mask[:, : hi - lo, : hi - lo]
        coarse[:, lo:hi, lo:hi] = torch.where(mask, fine, coarse[:, lo:hi, lo:hi])
        return coarse

    def _brightness(self, params: ArcParams, x: Any, y: Any) -> Any:
        """Surface brightness of the lensed unit-flux sources at (x, y): (b, *x.shape)."""
        import torch
        from caustics.lenses.func import (
            reduced_deflection_angle_external_shear,
            reduced_deflection_angle_sie,
        )
        from caustics.light.func import brightness_sersic

        def p(values: Any) -> Any:
            return self._tensor(values)[:, None, None]

        x0, y0 = p(params.lens_x), p(params.lens_y)
        ax, ay = reduced_deflection_angle_sie(
            x0, y0, p(params.lens_q), p(params.lens_phi), p(params.theta_e), x, y
        )
        # the deflection is undefined at the lens's exact centre (0/0): no deflection there
        ax, ay = torch.nan_to_num(ax), torch.nan_to_num(ay)
        sx, sy = reduced_deflection_angle_external_shear(x0, y0, p(params.gamma1), p(params.gamma2), x, y)
        q = p(params.src_q)
        return brightness_sersic(
            p(params.src_x),
            p(params.src_y),
            q,
            p(params.src_phi),
            p(params.src_n),
            p(params.src_reff) / torch.sqrt(q),
            p(params.unit_amp()),
            x - ax - sx,
            y - ay - sy,
            p(sersic_k(params.src_n)),
        )

    def _kernels(self, kernels: list[tuple[np.ndarray, ...]]) -> Any:
        """(b, bands, k, k): each kernel centred in the largest one's frame."""
        k = max(kern.shape[0] for per_task in kernels for kern in per_task)
        stack = np.zeros((len(kernels), len(kernels[0]), k, k))
        for i, per_task in enumerate(kernels):
            for b, kern in enumerate(per_task):
                pad = (k - kern.shape[0]) // 2
                stack[i, b, pad : pad + kern.shape[0], pad : pad + kern.shape[1]] = kern
        return self._tensor(stack)

    def _convolve(self, image: Any, kernels: Any) -> Any:
        """`fftconvolve(image, kernel, mode="same")` for every task and band at once."""
        import torch

        size, k = self.size, kernels.shape[-1]
        n = size + k - 1
        spectrum = torch.fft.rfft2(image[:, None], s=(n, n)) * torch.fft.rfft2(kernels, s=(n, n))
        full = torch.fft.irfft2(spectrum, s=(n, n))
        start = (k - 1) // 2
        return full[..., start : start + size, start : start + size]
