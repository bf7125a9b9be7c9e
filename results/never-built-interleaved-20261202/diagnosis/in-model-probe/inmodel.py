"""Scratch: each leaf module's time inside the model's decode step (perf_counter around forward, one thread), against
the same op's kernel in a calibration-own.json timed in the same box's minutes. Not committed as a tool."""
import json, statistics, sys, time
import torch
sys.path.insert(0, "/work/main")
from theory.hfconfig import load_model
from bench.model import build_model
from bench.timing.trajectory import new_cache
torch.set_num_threads(1)
cfg, own = sys.argv[1], sys.argv[2]
spec = load_model(cfg)
model = build_model(spec, "cpu", "fp32", "sdpa")
ids = torch.randint(0, spec.vocab_size, (1, 128), generator=torch.Generator().manual_seed(0))
name_of = {}
for n, m in model.named_modules():
    if len(list(m.children())) == 0 or type(m).__name__.endswith("Attention"):
        name_of[m] = n
times = {}
def pre(m, a):
    m._t0 = time.perf_counter()
def post(m, a, o):
    times.setdefault(name_of[m], []).append(time.perf_counter() - m._t0)
hooks = [m.register_forward_pre_hook(pre) for m in name_of] + [m.register_forward_hook(post) for m in name_of]
step_s = []
for rep in range(4):
    past = new_cache(model, "dynamic", None)
    with torch.inference_mode():
        out = model(input_ids=ids, past_key_values=past, use_cache=True)
        tok = out.logits[:, -1:].argmax(-1)
        if rep == 0:
            times.clear()
        for s in range(7):
            t = time.perf_counter()
            out = model(input_ids=tok, past_key_values=past, use_cache=True)
            step_s.append(time.perf_counter() - t)
            tok = out.logits[:, -1:].argmax(-1)
# decode only: drop each rep's prefill entry (first of each 8) -- simpler: prefill entries are ~10x larger; use per name the 7*3 smallest? keep median of all decode
per_kind = {}
for n, ts in times.items():
    kind = n.split(".")[-1]
    # entries per rep: 1 prefill + 7 decode, reps 1..3 (rep 0 cleared after prefill -> 7 decode)
    per = 8
    dec = ts[:7] + [t for i, t in enumerate(ts[7:]) if i % per != 0]
    per_kind.setdefault(kind, []).append(statistics.median(dec))
cal = json.load(open(own))
p = [q for q in cal["passes"] if q["phase"] == "decode" and q["model"]["name"] == spec.name][0]
print("step median %.2f ms" % (statistics.median(step_s[7:]) * 1e3))
print("%-22s %10s %10s %7s" % ("module", "in-model us", "alone us", "ratio"))
alias = {"self_attn": None, "embed_tokens": "embedding", "norm": "final_norm"}
for kind, v in sorted(per_kind.items()):
    op = alias.get(kind, kind)
    alone = p["ops"].get(op, {}).get("kernel_s") if op else None
    m = statistics.median(v)
    print("%-22s %10.1f %10s %7s" % (kind, m * 1e6, "%.1f" % (alone * 1e6) if alone else "-", "%.2f" % (m / alone) if alone else "-"))
