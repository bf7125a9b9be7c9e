"""Where one point runs: in this process (inline), in a child process (child), one child per GPU (parallel)."""
