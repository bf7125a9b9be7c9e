"""Synchronisations a model hides from the host in a trajectory (CUDA only)."""
import warnings

from bench.timing import trajectory     # through the module: a test's patch of run_trajectory reaches here


def count_hidden_syncs(model, device, ids, generated: int, cache: str, max_cache_len: int | None) -> int | None:
    """CUDA only: synchronisations the model hides in a trajectory (torch.cuda.set_sync_debug_mode("warn"))."""
    if device.kind != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device.cuda.set_sync_debug_mode("warn")
        try:
            trajectory.run_trajectory(model, device, ids, min(generated, 3), cache, max_cache_len)
        finally:
            device.cuda.set_sync_debug_mode(0)
    # torch's own sync warning; not the mode's one-off "prototype ... synchronizing operations" notice
    return sum("called a synchronizing" in str(w.message) for w in caught)
