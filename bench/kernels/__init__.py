"""Per-op kernels at a model's own shapes: which kernels a point runs (shapes), timing each alone with the
model's cache state (microbench), the per-box kernel cache (cache), the framework's own cost (framework),
and what one point or one workload needs (point, cli)."""
