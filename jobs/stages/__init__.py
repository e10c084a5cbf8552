"""Stage entry points, one module each (DESIGN's target layout; the older stages still live
directly under `jobs/`)."""
