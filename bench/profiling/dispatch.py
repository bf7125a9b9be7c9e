"""Count the aten ops one forward pass dispatches: the n_dispatch of the overhead model."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode


class DispatchCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_dispatches(model, input_ids, cache: str, max_cache_len: int | None) -> tuple[int, int]:
    """Ops dispatched by the prefill and by the first decode step (later steps dispatch the same ops)."""
    from bench.kvcache import new_cache
    past = new_cache(model, cache, max_cache_len)
    counts = []
    tokens = input_ids
    with torch.inference_mode():
        for _ in range(2):
            with DispatchCounter() as c:
                out = model(input_ids=tokens, past_key_values=past, use_cache=True, logits_to_keep=1)
            counts.append(c.count)
            tokens = out.logits[:, -1].argmax(-1, keepdim=True)
    return counts[0], counts[1]
