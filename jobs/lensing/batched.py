"""The batched arc engine: many stamps at once in PyTorch, on the CPU or CUDA.

The physics is caustics' (SIE and external-shear deflections, the Sérsic profile, in its
functional form, broadcast over a batch and the source's components instead of vmapped one
stamp at a time); the numerics are jobs/lensing/params.py's and the convolution
jobs/lensing/convolution.py's, so that it equals `LenstronomyEngine` pixel for pixel: pixel
centres everywhere, ss × ss sub-pixels inside each task's fine square, mean × pixel area; the
PSF's core at CONVOLUTION_FACTOR sub-pixels per side on the fine square, the rest at the pixel
scale, all tasks and bands in batched FFTs (kernels zero-padded to a common size, centred).

Conventions (caustics vs lenstronomy): the SIE's `Rein` is lenstronomy's `theta_E` and its `phi`
the major-axis angle in the stamp frame; the Sérsic's `Re` is the semi-major axis, R_eff/√q,
with lenstronomy's k(n) and `Ie` its amplitude."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.lensing.convolution import core_half
from jobs.lensing.params import CONVOLUTION_FACTOR, ArcParams, fine_square, sersic_k
from jobs.lensing.psf import bin_pixels
from jobs.survey.layout import PIXSCALE

CPU_SAMPLES = 1 << 21  # ray-traced samples × components per chunk: ~ 200 MB of float32 temporaries
CUDA_SAMPLES = 1 << 26
PADDING = 1.5  # the most a chunk's largest fine square may outgrow its smallest (in area)
# torch.compile costs seconds with its on-disk cache, tens of seconds without (bench/inject.py):
# a call with fewer arcs than this runs eager until a larger one has paid for the compiling
COMPILE_MIN_TASKS = 256


def lensed_light(
    x: Any, y: Any, x0: Any, y0: Any, q: Any, phi: Any, rein: Any, g1: Any, g2: Any,
    sx: Any, sy: Any, sq: Any, sphi: Any, n: Any, re: Any, amp: Any, k: Any, flux: Any,
) -> Any:  # fmt: skip
    """caustics: ray-trace (x, y) through SIE + shear (lens parameters (b, 1, 1, 1)), the
    source components' brightness there (their parameters (b, C, 1, 1)), summed with the
    weights `flux` (b, C, bands): (b, bands, *x.shape)."""
    import torch
    from caustics.lenses.func import reduced_deflection_angle_external_shear, reduced_deflection_angle_sie
    from caustics.light.func import brightness_sersic

    ax, ay = reduced_deflection_angle_sie(x0, y0, q, phi, rein, x, y)
    # the deflection is undefined at the lens's exact centre (0/0): no deflection there
    ax, ay = torch.nan_to_num(ax), torch.nan_to_num(ay)
    gx, gy = reduced_deflection_angle_external_shear(x0, y0, g1, g2, x, y)
    light = brightness_sersic(sx, sy, sq, sphi, n, re, amp, x - ax - gx, y - ay - gy, k)
    return torch.einsum("bchw,bcn->bnhw", light, flux)


def lensed_stamp(
    x: Any, y: Any, x0: Any, y0: Any, q: Any, phi: Any, rein: Any, g1: Any, g2: Any,
    sx: Any, sy: Any, sphi: Any, scale: Any, canvas: Any, rows: Any, cols: Any, flux: Any,
) -> Any:  # fmt: skip
    """caustics' deflections, then each task's catalogue stamp (`canvas` (b, 1, H, W), its own
    `rows` × `cols` at the top left, a ring of zeros included) interpolated bilinearly where
    the rays land, as lenstronomy's INTERPOL does: (b, bands, *x.shape)."""
    import torch
    from caustics.lenses.func import reduced_deflection_angle_external_shear, reduced_deflection_angle_sie

    ax, ay = reduced_deflection_angle_sie(x0, y0, q, phi, rein, x, y)
    ax, ay = torch.nan_to_num(ax), torch.nan_to_num(ay)
    gx, gy = reduced_deflection_angle_external_shear(x0, y0, g1, g2, x, y)
    u, v = (x - ax - gx - sx) / scale, (y - ay - gy - sy) / scale
    c, s = torch.cos(sphi), torch.sin(sphi)
    col = u * c + v * s + (cols - 1) / 2  # lenstronomy's util.rotate, then its grid's indices
    row = -u * s + v * c + (rows - 1) / 2
    height, width = canvas.shape[-2:]
    where = torch.stack([col / (width - 1) * 2 - 1, row / (height - 1) * 2 - 1], dim=-1)[:, 0]  # (b, h, w, 2)
    light = torch.nn.functional.grid_sample(
        canvas, where.to(canvas.dtype), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return torch.einsum("bchw,bcn->bnhw", light, flux)


class BatchedEngine:
    """`ArcEngine` on PyTorch; tasks are grouped by supersampling and rendered in chunks."""

    name = "batched"

    def __init__(self, size: int, device: str = "cpu", dtype: Any = None, compile: bool = False) -> None:
        import torch

        self.size, self.device = size, torch.device(device)
        self._compile = compile
        self._compiled: Any = None  # compiled on the first call with COMPILE_MIN_TASKS tasks
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
        out = np.empty((len(params), fluxes.shape[-1], self.size, self.size))
        if self._compile and self._compiled is None and len(params) >= COMPILE_MIN_TASKS:
            import torch

            self._compiled = torch.compile(lensed_light, dynamic=True)
        for ss in np.unique(supersample):
            if ss % CONVOLUTION_FACTOR:
                raise ValueError(f"supersampling {ss} is not a multiple of {CONVOLUTION_FACTOR}")
            chosen = np.flatnonzero(supersample == ss)
            chosen = chosen[np.argsort(half[chosen], kind="stable")]  # similar fine squares together
            samples = np.maximum(((2 * half[chosen] + 1) * ss) ** 2, self.size**2) * params.components
            for run in self._chunks(samples):  # samples ascending
                chunk = chosen[run]
                out[chunk] = self.render(
                    params.take(chunk), fluxes[chunk], [kernels[i] for i in chunk], int(ss), half[chunk]
                )
        return out

    def _chunks(self, samples: np.ndarray) -> Any:
        """Consecutive runs of tasks (ascending samples each) whose count × largest fits the
        budget, the largest at most PADDING × the smallest (each task is padded to it)."""
        start = 0
        while start < samples.size:
            stop = start + 1
            while (
                stop < samples.size
                and (stop - start + 1) * samples[stop] <= self.budget
                and samples[stop] <= PADDING * samples[start]
            ):
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
            image, fine, lo, mask = self.lensed(params, fluxes, ss, half)
            return self._convolve(image, fine, lo, mask, kernels).double().cpu().numpy()

    def _tensor(self, values: Any) -> Any:
        import torch

        return torch.as_tensor(np.asarray(values, dtype=float), device=self.device).to(self.dtype)

    def lensed(self, params: ArcParams, fluxes: np.ndarray, ss: int, half: np.ndarray) -> tuple[Any, ...]:
        """The lensed sources, unconvolved, per band: the stamps (b, bands, size, size), the
        chunk's square at CONVOLUTION_FACTOR (b, bands, f·w, f·w), zero outside each task's
        own square, its first pixel, and each task's square as a mask of the chunk's (b, w, w)."""
        import torch

        f = CONVOLUTION_FACTOR
        weights = self._tensor(fluxes)
        image = self._light(params, weights, *self._coarse) * PIXSCALE**2
        lo, w = fine_square(self.size, int(half.max()))  # the chunk's: its largest task's
        sub = ((torch.arange(w * ss, dtype=torch.float64) + 0.5) / ss - 0.5 + lo - self.size // 2) * PIXSCALE
        fx, fy = (t.to(self.device, self.dtype) for t in torch.meshgrid(sub, sub, indexing="xy"))
        fine = self._light(params, weights, fx, fy)
        b, bands = fine.shape[:2]
        fine = fine.reshape(b, bands, w * f, ss // f, w * f, ss // f).mean(dim=(3, 5)) * (PIXSCALE / f) ** 2
        # each task's own square inside the chunk's
        offset = torch.arange(lo, lo + w, device=self.device) - self.size // 2
        inside = offset.abs()[None, :] <= self._tensor(half)[:, None]
        mask = inside[:, :, None] & inside[:, None, :]
        sharp = mask.repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)
        fine = torch.where(sharp[:, None], fine, torch.zeros((), dtype=fine.dtype, device=self.device))
        binned = fine.reshape(b, bands, w, f, w, f).sum(dim=(3, 5))
        image[..., lo : lo + w, lo : lo + w] = torch.where(
            mask[:, None], binned, image[..., lo : lo + w, lo : lo + w]
        )
        return image, fine, lo, mask

    def _light(self, params: ArcParams, weights: Any, x: Any, y: Any) -> Any:
        """Surface brightness of the lensed sources at (x, y), per band: (b, bands, *x.shape)."""

        def lens(values: Any) -> Any:
            return self._tensor(values)[:, None, None, None]

        def source(values: Any) -> Any:
            return self._tensor(values)[:, :, None, None]

        if params.images:
            return self._stamps(params, weights, x, y)
        on = params.src_on
        columns = (
            *(lens(v) for v in (params.lens_x, params.lens_y, params.lens_q, params.lens_phi)),
            *(lens(v) for v in (params.theta_e, params.gamma1, params.gamma2)),
            *(source(v) for v in (params.src_x, params.src_y, params.src_q, params.src_phi, params.src_n)),
            source(params.src_reff / np.sqrt(params.src_q)),  # caustics' Re: the semi-major axis
            source(np.where(on, params.unit_amp(), 0.0)),
            source(sersic_k(params.src_n)),
        )
        return self._trace(x, y, *columns, weights)

    def _stamps(self, params: ArcParams, weights: Any, x: Any, y: Any) -> Any:
        """Catalogue sources (ArcParams.images): each stamp with a ring of zeros, at the top left
        of one canvas for the chunk."""
        images = [found[0] for found in params.images]
        rows = np.array([im.shape[0] + 2 for im in images])
        cols = np.array([im.shape[1] + 2 for im in images])
        canvas = np.zeros((len(images), 1, rows.max(), cols.max()))
        for i, im in enumerate(images):
            canvas[i, 0, 1 : 1 + im.shape[0], 1 : 1 + im.shape[1]] = im

        def lens(values: Any) -> Any:
            return self._tensor(values)[:, None, None, None]

        return lensed_stamp(
            x,
            y,
            *(lens(v) for v in (params.lens_x, params.lens_y, params.lens_q, params.lens_phi)),
            *(lens(v) for v in (params.theta_e, params.gamma1, params.gamma2)),
            *(lens(v) for v in (params.src_x[:, 0], params.src_y[:, 0], params.src_phi[:, 0])),
            lens([found[1] for found in params.images]),
            self._tensor(canvas),
            lens(rows),
            lens(cols),
            weights,
        )

    def _trace(self, *tensors: Any) -> Any:
        """`lensed_light`, compiled (elementwise ops fused: ~3x on the CPU) where torch.compile
        works here, eager where it does not (said once)."""
        if self._compiled is not None:
            try:
                return self._compiled(*tensors)
            except Exception as err:  # noqa: BLE001 - no C++ compiler, an unsupported platform
                print(f"inject: torch.compile failed ({type(err).__name__}); the batched engine runs eager")
                self._compiled, self._compile = None, False
        return lensed_light(*tensors)

    def _kernels(self, kernels: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """(b, bands, k, k): each supersampled kernel centred in the largest one's frame."""
        k = max(kern.shape[0] for per_task in kernels for kern in per_task)
        stack = np.zeros((len(kernels), len(kernels[0]), k, k))
        for i, per_task in enumerate(kernels):
            for b, kern in enumerate(per_task):
                pad = (k - kern.shape[0]) // 2
                stack[i, b, pad : pad + kern.shape[0], pad : pad + kern.shape[1]] = kern
        return stack

    def _convolve(
        self, image: Any, fine: Any, lo: int, mask: Any, kernels: list[tuple[np.ndarray, ...]]
    ) -> Any:
        """jobs/lensing/convolution.py's two-scale convolution, every task and band at once."""
        import torch

        f, size = CONVOLUTION_FACTOR, self.size
        stack = self._kernels(kernels)
        pixel = bin_pixels(stack, f)
        half = pixel.shape[-1] // 2
        hc = min(core_half(pixel), half)
        core = np.zeros_like(pixel)
        core[..., half - hc : half + hc + 1, half - hc : half + hc + 1] = pixel[
            ..., half - hc : half + hc + 1, half - hc : half + hc + 1
        ]
        fine_core = stack[..., f * (half - hc) : f * (half + hc + 1), f * (half - hc) : f * (half + hc + 1)]
        w = mask.shape[-1]
        inner = torch.zeros_like(image)
        inner[..., lo : lo + w, lo : lo + w] = torch.where(
            mask[:, None],
            image[..., lo : lo + w, lo : lo + w],
            torch.zeros((), dtype=image.dtype, device=self.device),
        )
        # the stamp with the whole PSF, less the square's light with the core, at the pixel scale
        # circular, of a size that keeps wrap-around out of the stamp's rows: the full convolution's
        # index j lands on j − n, which stays below `half` (outside what is kept) for j < n + half
        n = _fast_size(size + half)
        spectrum = torch.fft.rfft2(image, s=(n, n)) * torch.fft.rfft2(self._tensor(pixel), s=(n, n))
        spectrum -= torch.fft.rfft2(inner, s=(n, n)) * torch.fft.rfft2(self._tensor(core), s=(n, n))
        out = torch.fft.irfft2(spectrum, s=(n, n))[..., half : half + size, half : half + size].contiguous()
        # the square's light with the core at the sub-pixel scale, binned from pixel lo − hc − 1
        kc = fine_core.shape[-1]
        full = fine.shape[-1] + kc - 1
        n = _fast_size(full)
        sharp = torch.fft.irfft2(
            torch.fft.rfft2(fine, s=(n, n)) * torch.fft.rfft2(self._tensor(fine_core), s=(n, n)), s=(n, n)
        )[..., :full, :full]
        frame = torch.zeros(
            (*sharp.shape[:2], f * (w + 2 * hc + 2), f * (w + 2 * hc + 2)),
            dtype=sharp.dtype,
            device=self.device,
        )
        at = (f + 1) // 2
        frame[..., at : at + full, at : at + full] = sharp
        binned = frame.reshape(*frame.shape[:2], w + 2 * hc + 2, f, w + 2 * hc + 2, f).sum(dim=(3, 5))
        start = lo - hc - 1
        a, b = max(start, 0), min(start + binned.shape[-1], size)
        out[..., a:b, a:b] += binned[..., a - start : b - start, a - start : b - start]
        return out


def _fast_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: a size pocketfft and cuFFT transform fast."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best
