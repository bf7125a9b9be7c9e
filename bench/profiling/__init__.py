"""What a point's passes are made of, measured after its timed repeats: torch.profiler attribution to theory's
op names (profile, attribution), the aten ops dispatched per pass (dispatch), and CPU memory from the profiler's
memory events (cpumem)."""
