"""Gates a lead passes at intake: pure decisions, and one atomic statement each."""
