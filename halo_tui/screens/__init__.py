"""The console's screens, one a module with its CSS beside it (toolong's and posting's way);
the widgets they are built of are in halo_tui/components/."""
