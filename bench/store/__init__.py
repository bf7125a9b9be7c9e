"""Files on disk: atomic writes, a point's files, the run's run.json (one writer), the run lock, SIGTERM."""
