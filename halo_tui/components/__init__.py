"""The console's screens and widgets."""
