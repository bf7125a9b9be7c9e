# Diagnosis (2026-12-02 07:20 UTC, as run): the d=1280 L=12 target built once; the mean decode step of two
# trajectories, steady, after 10 s idle and after 10 s of matrix-vector work on 840 MB of other memory, three times.
# Run from the repository root with .venv/bin/python.
import sys, time, statistics, torch
sys.path.insert(0,'/work/main')
torch.set_num_threads(1)
from bench.devices.select import get_device
from bench.model import build_model
from bench.timing.trajectory import run_trajectory
from theory.hfconfig import load_model
dev=get_device("cpu",1)
spec=load_model('/work/main/results/never-built-interleaved-20261202/unseen-d1280-L12.json')
m=build_model(spec,"cpu","fp32","sdpa")
ids=torch.randint(0,spec.vocab_size,(1,128),generator=torch.Generator().manual_seed(0))
tr=lambda: run_trajectory(m,dev,ids,8,"dynamic",None).times_s
tr()
big=[torch.rand(2560*4,2560) for _ in range(8)]   # ~840 MB of other memory
v=torch.rand(1,2560)
def busy(s):
    t=time.perf_counter()
    while time.perf_counter()-t<s:
        for w in big: v@w.T
out=[]
for rep in range(3):
    for label,act in (("steady",None),("after 10 s idle",lambda: time.sleep(10)),("after 10 s busy on other memory",lambda: busy(10))):
        if act: act()
        x=tr(); y=tr()
        out.append((label, statistics.fmean(x[1:])*1e3, statistics.fmean(y[1:])*1e3, x[0]*1e3))
for o in out: print(f"{o[0]:34s} first traj TPOT {o[1]:.1f} ms, next {o[2]:.1f} ms, first prefill {o[3]:.0f} ms")
