"""theory --kernel-db: a tiny database written here in aiconfigurator-core's layout and columns (CSV tables)."""
import csv
import json
import subprocess
import sys

import pytest

from theory.cli import main
from theory.errors import TheoryError
from theory.kerneldb import parse_spec, system_for
from theory.kerneldb.interp import EXACT, EXTRAPOLATED, INTERPOLATED, Grid
from theory.kerneldb import tables

BW = 1.5e12           # the fixture's memory-bound rate, bytes/s
FLOOR_MS = 0.003      # its fastest kernel
MODEL = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 1024, "vocab_size": 1024,
         "hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "max_position_embeddings": 4096}


def gemm_ms(m, n, k):
    return max(FLOOR_MS, 2 * (m * k + k * n + m * n) / BW * 1e3, 2 * m * n * k / 200e12 * 1e3)


def write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def db(tmp_path, monkeypatch):
    root = tmp_path / "data"
    sys_dir = root / "a100_sxm"
    grid = [1, 16, 256, 4096]
    feats = [256, 512, 2048]
    write(sys_dir / "gemm/vllm/0.1.0/gemm_perf.csv", ["gemm_dtype", "m", "n", "k", "latency"],
          [["bfloat16", m, n, k, gemm_ms(m, n, k)] for m in grid for n in feats for k in feats])
    attn_h = ["attn_dtype", "kv_cache_dtype", "head_dim", "num_heads", "num_key_value_heads", "batch_size", "isl",
              "step", "latency"]
    ctx, gen = [], []
    for b in (1, 2, 4, 8):
        for isl in (16, 128, 1024):
            ctx.append(["bfloat16", "bfloat16", 128, 4, 4, b, isl, 0, 0.01 + 1e-8 * b * 4 * isl * isl])
        for step in (15, 127, 1023, 65535):
            for h, kv in ((2, 2), (4, 1)):               # no 4/4 row: MHA folds into 2/2 at twice the batch
                kv_bytes = 2 * b * (step + 1) * kv * 128 * 2
                gen.append(["bfloat16", "bfloat16", 128, h, kv, b, 1, step, max(0.01, kv_bytes / BW * 1e3)])
    for h, kv in ((2, 2), (4, 1)):                       # rows reading >= 1 GiB: the derived bandwidth's
        kv_bytes = 2 * 64 * 65536 * kv * 128 * 2
        gen.append(["bfloat16", "bfloat16", 128, h, kv, 64, 1, 65535, kv_bytes / BW * 1e3])
    write(sys_dir / "attention/vllm/0.1.0/context_attention_perf.csv", attn_h, ctx)
    write(sys_dir / "attention/vllm/0.1.0/generation_attention_perf.csv", attn_h, gen)
    (tmp_path / "model.json").write_text(json.dumps(MODEL))
    monkeypatch.setenv(tables.ROOT_ENV, str(root))
    tables.read_rows.cache_clear()
    return tmp_path


def run_json(db, *extra):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--model", str(db / "model.json"), "--hardware", "a100-sxm-80gb", "--kernel-db",
                     "aiconfigurator", "--format", "json", *extra]) == 0
    return json.loads(buf.getvalue())


def test_spec_parsing_and_preset_mapping():
    assert parse_spec("aiconfigurator").backend == "vllm"
    s = parse_spec("aiconfigurator:trtllm@1.0.0")
    assert (s.backend, s.version) == ("trtllm", "1.0.0")
    assert system_for("h200") == "h200_sxm"
    for bad in ("vidur", "aiconfigurator:foo", "aiconfigurator:vllm@"):
        with pytest.raises(TheoryError):
            parse_spec(bad)
    with pytest.raises(TheoryError, match="a100-sxm-80gb"):
        system_for("a100-pcie-40gb")


def test_grid_is_exact_at_points_power_law_between_and_flags_extrapolation():
    g = Grid(("m",), [((1,), 1.0), ((4,), 4.0), ((16,), 4.0)], {"m": 1.0})
    assert (g.at((4,)).value, g.at((4,)).how) == (4.0, EXACT)
    mid = g.at((2,))
    assert mid.how == INTERPOLATED and mid.value == pytest.approx(2.0)        # power law 1 -> 4 over 1 -> 4
    assert g.at((8,)).value == pytest.approx(4.0)                               # flat stretch stays flat
    above = g.at((32,))
    assert above.how == EXTRAPOLATED and above.value == pytest.approx(8.0) and above.extrapolated_axes == ["m>16"]
    below = Grid(("m",), [((2,), 3.0), ((4,), 5.0)], {}).at((1,))
    assert below.how == EXTRAPOLATED and below.value == 3.0


def test_every_op_has_a_source_and_gemms_match_the_table(db):
    out = run_json(db, "--prompt-len", "128")
    ops = {o["name"]: o for o in out["ops"]}
    assert {o["source"] for o in out["ops"]} <= {"db:gemm", "db:attention", "derived", "in db:attention"}
    assert ops["q_proj"]["source"] == "db:gemm" and ops["q_proj"]["how"] == EXACT
    assert ops["q_proj"]["kernel_s"] == pytest.approx(2 * gemm_ms(1, 512, 512) * 1e-3)     # 2 layers
    assert ops["gate_proj"]["how"] == INTERPOLATED                         # n = 1024 lies between 512 and 2048
    assert ops["input_norm"]["source"] == "derived" and ops["kv_update"]["source"] == "in db:attention"
    assert out["kernel_db"]["derived_bandwidth_bytes_per_s"] == pytest.approx(BW, rel=1e-6)
    assert out["kernel_db"]["kernel_floor_s"] == pytest.approx(FLOOR_MS * 1e-3)
    assert out["datasheet"]["time_s"] == pytest.approx(out["datasheet_time_s"])
    assert out["ratio"] == pytest.approx(out["time_s"] / out["datasheet_time_s"])
    assert set(out["groups"]) == {"attention", "mlp", "other"}


def test_mha_decode_folds_heads_into_the_batch(db):
    out = run_json(db, "--context-len", "127", "--batch", "2")
    attn = next(o for o in out["ops"] if o["name"] == "attn_core")
    assert attn["how"] == "folded" and "b=4 h=2 kv=2" in attn["shape"]
    kv_bytes = 2 * 4 * 128 * 2 * 128 * 2
    assert attn["kernel_s"] == pytest.approx(2 * max(1e-5, kv_bytes / BW))


def test_head_dim_missing_is_scaled_and_flagged(db):
    cfg = dict(MODEL, num_attention_heads=8, num_key_value_heads=8)           # head_dim 64
    (db / "model.json").write_text(json.dumps(cfg))
    out = run_json(db, "--phase", "prefill", "--prompt-len", "128")
    attn = next(o for o in out["ops"] if o["name"] == "attn_core")
    assert attn["how"] == "scaled" and "head_dim 64" in attn["note"]


def test_extrapolated_prefill_is_flagged(db):
    out = run_json(db, "--phase", "prefill", "--prompt-len", "2048", "--batch", "1")
    attn = next(o for o in out["ops"] if o["name"] == "attn_core")
    assert attn["how"] == EXTRAPOLATED and "isl>1024" in attn["note"]
    assert any("attn_core: extrapolated" in f for f in out["flags"])


def test_eager_takes_max_of_host_and_kernel_per_instance(db):
    graphs = run_json(db, "--prompt-len", "128")
    eager = run_json(db, "--prompt-len", "128", "--runtime", "eager")
    g = {o["name"]: o for o in graphs["ops"]}
    for o in eager["ops"]:
        per_kernel = g[o["name"]]["kernel_s"] / o["count"]
        if o["source"] != "in db:attention":
            assert o["time_s"] == pytest.approx(o["count"] * max(8e-6, per_kernel))
    assert "eager: max(host 8 µs, an assumed default" in eager["runtime_note"]


def test_request_reports_ttft_and_tpot_both_ways(db):
    out = run_json(db, "--prompt-len", "128", "--generated", "4")
    r = out["request"]
    assert r["decode_steps"] == 3 and r["time_to_first_token_s"]["kernel_db"] > 0
    assert r["time_per_output_token_s"]["ratio"] > 1


def test_refusals_are_one_line(db, capsys):
    args = ["--model", str(db / "model.json"), "--prompt-len", "128"]
    from theory.cliutil import run_main
    assert run_main(main, args + ["--hardware", "a100-pcie-40gb", "--kernel-db", "aiconfigurator"]) == 2
    assert "presets that do: a100-sxm-80gb" in capsys.readouterr().err
    assert run_main(main, args + ["--hardware", "a100-sxm-80gb", "--kernel-db", "aiconfigurator",
                                  "--attention", "materialized"]) == 2
    assert "fused attention only" in capsys.readouterr().err
    assert run_main(main, args + ["--hardware", "a100-sxm-80gb", "--kernel-db", "aiconfigurator@9"]) == 2
    assert run_main(main, args + ["--hardware", "a100-sxm-80gb", "--kernel-db", "aiconfigurator:vllm@9"]) == 2
    assert "versions 0.1.0, not 9" in capsys.readouterr().err.splitlines()[-1]


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(tables.ROOT_ENV, raising=False)
    monkeypatch.setattr(tables.importlib.util, "find_spec", lambda name: None)
    from theory.cliutil import run_main
    rc = run_main(main, ["--model", "llama-2-7b", "--hardware", "h100-sxm-80gb", "--kernel-db", "aiconfigurator",
                         "--prompt-len", "128"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "pip install -e '.[kernel-db]'" in err


def test_theory_import_stays_free_of_pandas():
    code = "import sys, theory.cli, theory.kerneldb; print('pandas' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_installed_database_when_present():
    """Only where the extra is installed: the A100's published m=1 4096x4096 bf16 GEMM (vLLM 0.14.0)."""
    pytest.importorskip("pyarrow")
    if tables.importlib.util.find_spec("aiconfigurator_core") is None:
        pytest.skip("aiconfigurator-core is not installed (the kernel-db extra)")
    from theory.kerneldb.db import Database
    d = Database(parse_spec("aiconfigurator:vllm@0.14.0"), "a100_sxm", "bf16")
    assert d.gemm().at((4096, 4096, 1)).value == pytest.approx(24.081e-6, rel=1e-3)


def test_vsdb_sets_our_kernels_beside_the_databases(db, capsys):
    from bench.kernels import vsdb
    from theory.calibration import FORMAT
    shape = {k: MODEL[k] for k in vsdb.SHAPE_FIELDS}
    cal = {"format": FORMAT, "model": {"name": "model", **shape}, "workloads": [{"batch": 1, "prompt_len": 128}],
           "dtype": "bf16", "attention": "sdpa", "cache": "dynamic", "device_name": "stand-in GPU",
           "passes": [{"phase": "decode", "batch": 1, "prompt_len": 128, "context_len": 127, "framework_s": 0.0,
                       "ops": {"q_proj": {"count": 2, "kernel_s": 2 * gemm_ms(1, 512, 512) * 1e-3},
                               "input_norm": {"count": 2, "kernel_s": 1e-6}}}]}
    path = db / "cal.json"
    path.write_text(json.dumps(cal))
    args = ["--calibration", str(path), "--model", str(db / "model.json"), "--hardware", "a100-sxm-80gb"]
    assert vsdb.main(args + ["--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["op"] for r in out["rows"]] == ["q_proj"]                  # input_norm: derived, not measured
    assert out["rows"][0]["ratio"] == pytest.approx(2.0) and out["summary"]["db:gemm"]["ops"] == 1
    (db / "model.json").write_text(json.dumps(dict(MODEL, hidden_size=1024)))
    from theory.cliutil import run_main
    assert run_main(vsdb.main, args) == 2
    assert "hidden_size differ" in capsys.readouterr().err


def test_table_columns_never_run_together():
    """A ratio past 999 (an embedding under --runtime eager) once printed `0.00801635.74`: columns stay apart."""
    from theory.kerneldb.cli import render
    row = {"name": "embedding", "count": 1, "source": "derived", "datasheet_s": 8.0e-9, "time_s": 1.3086e-5,
           "how": "floor", "shape": "(1, 4096)"}
    out = {"kernel_db": {"spec": "aiconfigurator", "system": "h100_sxm", "versions": {"vllm": "0.24.0"},
                         "derived_bandwidth_bytes_per_s": 3.0e12, "bandwidth_source": "x", "kernel_floor_s": 2.5e-6,
                         "floor_source": "y"},
           "model": "m", "hardware": "h", "phase": "decode", "batch": 1, "prompt_len": 1, "context_len": 8,
           "dtype": "bf16", "tp": 1, "runtime_note": "eager", "ops": [row], "groups": {},
           "datasheet_time_s": 8.016e-9, "time_s": 8.0e-6, "ratio": 998.0, "flags": []}
    line = next(ln for ln in render(out).splitlines() if ln.startswith("embedding"))
    assert line.split()[3:6] == ["0.0000", "0.0131", "1635.75"], line
