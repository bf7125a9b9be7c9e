"""The KV cache every forward pass gets: handed in by the installed transformers' current argument, proven used
(a pass that does not grow it fails loudly), one static cache held per compiled model, and the pin that says
which transformers releases these tests proved."""
import re
import tomllib
import warnings

import pytest
import torch

from bench.model import CacheUnused, Passes, build_model, cache_argument, hold_static_caches, new_cache
from bench.timing.trajectory import run_trajectory
from conftest import ROOT
from theory.hfconfig import from_hf_config

SPEC = from_hf_config({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                       "intermediate_size": 64, "vocab_size": 64}, "cache-test")


class _Timer:
    kind = "cpu"

    def sync(self):
        pass

    def start(self):
        return 0.0

    def stop(self, t):
        return 1e-3


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return build_model(SPEC, "cpu", "fp32")


def test_passes_use_the_current_cache_argument_without_a_deprecation_warning(model):
    import transformers
    ids = torch.randint(0, 64, (1, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)         # past_key_values= warned on every pass (5.x)
        t = run_trajectory(model, _Timer(), ids, 3, "dynamic", None)
    assert len(t.times_s) == 3
    if "cache" in __import__("inspect").signature(type(model).forward).parameters:
        assert cache_argument(model) == "cache"
    assert transformers.__version__ >= "5"


def test_a_forward_that_ignores_the_cache_fails_loudly(model):
    """A future release whose forward takes **kwargs and drops the cache argument: the passes run, check() says so."""
    class Ignores(torch.nn.Module):
        config = model.config

        def forward(self, input_ids=None, **kwargs):          # no cache parameter: the cache lands in kwargs
            kwargs.pop("past_key_values", None)
            kwargs.pop("cache", None)
            return model(input_ids=input_ids, use_cache=True, logits_to_keep=1)

    ids = torch.randint(0, 64, (1, 4))
    with torch.inference_mode(), pytest.raises(CacheUnused, match="grew by 0 tokens over passes of 5"):
        run_trajectory(Ignores(), _Timer(), ids, 2, "dynamic", None)
    run = Passes(model, new_cache(model, "dynamic", None))
    with torch.inference_mode():
        run(ids)
    run.check()                                                # the real model grows it by the 4 prompt tokens


def test_a_compiled_model_keeps_one_static_cache_reset_between_trajectories(model):
    fresh = [new_cache(model, "static", 16) for _ in range(2)]
    assert fresh[0] is not fresh[1]                             # eager: a new cache each trajectory
    m = build_model(SPEC, "cpu", "fp32")
    hold_static_caches(m)
    ids = torch.randint(0, 64, (1, 4))
    run_trajectory(m, _Timer(), ids, 3, "static", 16)
    first = new_cache(m, "static", 16)
    keys = first.layers[0].keys
    assert int(first.get_seq_length()) == 0 and not keys.any()  # reset: length 0, tensors zeroed in place
    run_trajectory(m, _Timer(), ids, 3, "static", 16)           # the trajectory itself goes through new_cache
    again = new_cache(m, "static", 16)
    assert again is first and again.layers[0].keys.data_ptr() == keys.data_ptr()   # same addresses
    assert new_cache(m, "static", 32) is not first


def test_transformers_pin_has_an_upper_bound_the_installed_release_meets():
    import transformers
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("transformers"))
    upper = re.search(r"<\s*([\d.]+)", spec)
    assert upper, f"transformers is unpinned above: {spec!r}"
    as_tuple = lambda v: tuple(int(x) for x in re.findall(r"\d+", v)[:2])
    assert as_tuple(transformers.__version__) < as_tuple(upper.group(1))
    assert as_tuple(upper.group(1)) <= (5, 40)                  # past 5.40 past_key_values= is gone
