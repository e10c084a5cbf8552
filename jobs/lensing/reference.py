"""The independent rendering the engines are held to (tests, bench/psf_scale.py): lenstronomy's
own numerics, a regular grid at `factor` sub-pixels over the whole stamp and the whole Moffat
kernel applied there (`supersampling_kernel_size` the kernel's full width: lenstronomy's
default, its central 5 pixels, is itself 2–4 % of the peak off). Slow (about 0.7 s a stamp at
10×); nothing the stages run."""

from __future__ import annotations

import numpy as np

from jobs.lensing.params import ArcParams
from jobs.lensing.psf import moffat_kernel
from jobs.survey.layout import PIXSCALE


def image_data(size: int = 64) -> object:
    """lenstronomy's ImageData for a stamp in the engines' frame (jobs/lensing/params.py)."""
    from lenstronomy.Data.imaging_data import ImageData

    origin = -(size // 2) * PIXSCALE
    return ImageData(
        np.zeros((size, size)),
        ra_at_xy_0=origin,
        dec_at_xy_0=origin,
        transform_pix2angle=np.eye(2) * PIXSCALE,
    )


def rendered(
    params: ArcParams, i: int, fwhm: float, size: int = 64, factor: int = 10, beta: float = 3.5
) -> np.ndarray:
    """Task i's unit-flux arc (size, size), its PSF a Moffat of `fwhm` (″)."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    origin = -(size // 2) * PIXSCALE
    data = ImageData(
        np.zeros((size, size)),
        ra_at_xy_0=origin,
        dec_at_xy_0=origin,
        transform_pix2angle=np.eye(2) * PIXSCALE,
    )
    psf = PSF(
        "PIXEL",
        kernel_point_source=moffat_kernel(fwhm, beta, PIXSCALE, factor),
        point_source_supersampling_factor=factor,
    )
    model = ImageModel(
        data,
        psf,
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel(["SERSIC_ELLIPSE"] * params.components),
        kwargs_numerics={
            "supersampling_factor": factor,
            "supersampling_convolution": True,
            "supersampling_kernel_size": moffat_kernel(fwhm, beta, PIXSCALE).shape[0],
        },
    )
    return model.image(*params.lenstronomy_kwargs(i))
