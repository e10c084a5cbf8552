"""Where jobs run: `local` (detached processes) and, later, `emr` (Spark steps)."""
