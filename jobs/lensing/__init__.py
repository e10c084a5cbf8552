"""Lensing: an arc's parameters and numerics (params), its source's light and structure
(sources), the PSF (psf) and its application at the supersampled scale (convolution), and the
engines that render arcs: lenstronomy's (engines) and the batched one on PyTorch (batched)."""
