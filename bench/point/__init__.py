"""One point, top to bottom: the job (job), its measurement as named steps (measure), its rows (rows)."""
