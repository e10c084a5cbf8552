"""Learning: the realism probe (the dataset, models and scoring move here with issue 27)."""
