"""Lensing: an arc's parameters and numerics (params), its source's light (sources), the PSF
(psf), and the engines that render arcs: lenstronomy's (engines) and the batched one on
PyTorch (batched)."""
