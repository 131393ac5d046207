"""What every Doudi service shares: the one way to do a thing (database engines, ...)."""
