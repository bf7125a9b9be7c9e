"""A point by its shape (or its model's name and family), everywhere a person reads; the hash stays a key in the
CSVs. A point that names a model (a preset, a config.json, a model directory) is labelled by that model's name and
its model_type, so four families built at one shape never share a label."""
from functools import lru_cache

from theory.errors import TheoryError
from theory.hfconfig import load_model


@lru_cache(maxsize=256)
def model_label(model: str) -> str:
    """`pythia-tiny (gpt_neox)`: the name theory gives the model and its family; the recorded string itself where
    the config is no longer readable."""
    try:
        spec = load_model(model)
    except (TheoryError, OSError, ValueError):
        return model
    return f"{spec.name} ({spec.model_type})"


def point_name(r) -> str:
    """A point by its shape: `d=512 L=4 b=1 T=64 G=16`, plus attention, cache and execution mode when not
    sdpa/dynamic/eager; a model's name and family replace the shape where the point names one."""
    model = r.get("model") if hasattr(r, "get") else None
    if isinstance(model, str) and model:
        shape = model_label(model)
    else:
        shape = f"d={_int(r['hidden_size'])} L={_int(r['num_hidden_layers'])}"
    name = f"{shape} b={_int(r['batch'])} T={_int(r['prompt_len'])} G={_int(r['generated'])}"
    for key, default in (("attention", "sdpa"), ("cache", "dynamic"), ("execution", "eager")):
        v = r.get(key) if hasattr(r, "get") else None
        if isinstance(v, str) and v and v != default:
            name += f" {v}"
    return name


def _int(v) -> str:
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return str(v)


def names_by_id(df) -> dict[str, str]:
    """point_id → its name, from any frame with one row or more per point and the shape columns. Two points that
    would still share a name (the same model at another dtype, say) are told apart by their ids."""
    if df is None or len(df) == 0 or "point_id" not in df:
        return {}
    names = {pid: point_name(r) for pid, r in df.groupby("point_id", sort=True).first().iterrows()}
    seen: dict[str, int] = {}
    for n in names.values():
        seen[n] = seen.get(n, 0) + 1
    return {pid: n if seen[n] == 1 else f"{n} [{pid[:6]}]" for pid, n in names.items()}
