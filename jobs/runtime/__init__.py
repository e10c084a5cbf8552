"""What every stage process shares at run time (DESIGN.md's `jobs/runtime/`)."""
