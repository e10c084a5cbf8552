"""The engine of Dark Halo Scope: config, job store, backends, stage registry.

`core` imports neither `jobs` nor `halo_tui`, and keeps its start-up light: heavy
libraries (pydantic, pyarrow, boto3) are imported by the modules that need them.
"""
