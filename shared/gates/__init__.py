"""Gates a lead passes at intake and at each recipient step (hours, pausing, duplicates,
caps): pure decisions, and one atomic statement each."""
