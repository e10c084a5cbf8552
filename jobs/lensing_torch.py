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


def lensed_brightness(
    x: Any, y: Any, x0: Any, y0: Any, q: Any, phi: Any, rein: Any, g1: Any, g2: Any,
    sx: Any, sy: Any, sq: Any, sphi: Any, n: Any, re: Any, amp: Any, k: Any,
) -> Any:  # fmt: skip
    """caustics: ray-trace (x, y) through SIE + shear, the Sérsic's brightness there."""
    import torch
    from caustics.lenses.func import reduced_deflection_angle_external_shear, reduced_deflection_angle_sie
    from caustics.light.func import brightness_sersic

    ax, ay = reduced_deflection_angle_sie(x0, y0, q, phi, rein, x, y)
    # the deflection is undefined at the lens's exact centre (0/0): no deflection there
    ax, ay = torch.nan_to_num(ax), torch.nan_to_num(ay)
    gx, gy = reduced_deflection_angle_external_shear(x0, y0, g1, g2, x, y)
    return brightness_sersic(sx, sy, sq, sphi, n, re, amp, x - ax - gx, y - ay - gy, k)


class BatchedEngine:
    """`ArcEngine` on PyTorch; tasks are grouped by supersampling and rendered in chunks."""

    name = "batched"

    def __init__(self, size: int, device: str = "cpu", dtype: Any = None, compile: bool = False) -> None:
        import torch

        self.size, self.device = size, torch.device(device)
        self._compiled = torch.compile(lensed_brightness, dynamic=True) if compile else None
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
            samples = np.maximum(((2 * half[chosen] + 1) * ss) ** 2, self.size**2)  # ascending
            for run in self._chunks(samples):
                chunk = chosen[run]
                out[chunk] = self.render(
                    params.take(chunk), fluxes[chunk], [kernels[i] for i in chunk], int(ss), half[chunk]
                )
        return out

    def _chunks(self, samples: np.ndarray) -> Any:
        """Consecutive runs of tasks (ascending samples each) whose count × largest fits the budget."""
        start = 0
        while start < samples.size:
            stop = start + 1
            while stop < samples.size and (stop - start + 1) * samples[stop] <= self.budget:
                stop += 1
            yield slice(start, stop)
            start = stop

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

        def p(values: Any) -> Any:
            return self._tensor(values)[:, None, None]

        columns = (
            params.lens_x,
            params.lens_y,
            params.lens_q,
            params.lens_phi,
            params.theta_e,
            params.gamma1,
            params.gamma2,
            params.src_x,
            params.src_y,
            params.src_q,
            params.src_phi,
            params.src_n,
            params.src_reff / np.sqrt(params.src_q),  # caustics' Re: the semi-major axis
            params.unit_amp(),
            sersic_k(params.src_n),
        )
        return self._trace(x, y, *(p(c) for c in columns))

    def _trace(self, *tensors: Any) -> Any:
        """`lensed_brightness`, compiled (elementwise ops fused: ~3x on the CPU) where
        torch.compile works here, eager where it does not (said once)."""
        if self._compiled is not None:
            try:
                return self._compiled(*tensors)
            except Exception as err:  # noqa: BLE001 - no C++ compiler, an unsupported platform
                print(f"inject: torch.compile failed ({type(err).__name__}); the batched engine runs eager")
                self._compiled = None
        return lensed_brightness(*tensors)

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
        n = 1 << (size + k - 2).bit_length()  # >= size + k - 1 (no wrap-around), a fast FFT size
        spectrum = torch.fft.rfft2(image[:, None], s=(n, n)) * torch.fft.rfft2(kernels, s=(n, n))
        full = torch.fft.irfft2(spectrum, s=(n, n))
        start = (k - 1) // 2
        return full[..., start : start + size, start : start + size]
