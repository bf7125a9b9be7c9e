"""A run directory from start to end: create it, its ceilings, the points to do, the end of the run."""
