"""The mock survey: a mini DR10 (bricks, catalogues, coadds) with lenses planted in it, for the
demo and the tests. Out of reach of the injection: a finder must not learn from its truth."""
