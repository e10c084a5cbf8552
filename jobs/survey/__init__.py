"""Survey data as users have it: release layout, coadds, catalogues, cutout files."""
