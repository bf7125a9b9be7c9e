"""A point by its shape (or its model's name), everywhere a person reads; the hash stays a key in the CSVs."""


def point_name(r) -> str:
    """A point by its shape: `d=512 L=4 b=1 T=64 G=16`, plus attention, cache and execution mode when not sdpa/dynamic/eager."""
    model = r.get("model") if hasattr(r, "get") else None
    if isinstance(model, str) and model:
        shape = model
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
    """point_id → its name, from any frame with one row or more per point and the shape columns."""
    if df is None or len(df) == 0 or "point_id" not in df:
        return {}
    return {pid: point_name(r) for pid, r in df.groupby("point_id", sort=True).first().iterrows()}
