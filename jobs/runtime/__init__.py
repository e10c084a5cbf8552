"""What every stage process shares at run time (docs/ARCHITECTURE.md)."""
