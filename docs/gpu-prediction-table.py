"""Rebuilds the database-composed table of docs/gpu-prediction.md (needs the kernel-db extra): .venv/bin/python docs/gpu-prediction-table.py"""
import contextlib, io, json
from theory.cli import main
rows = []
for model in ("llama-2-7b", "llama-3-8b"):
    for hw in ("a100-sxm-80gb", "h100-sxm-80gb", "h200"):
        for b in (1, 8):
            for p in (128, 2048):
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    main(["--model", model, "--hardware", hw, "--kernel-db", "aiconfigurator:vllm", "--batch", str(b),
                          "--prompt-len", str(p), "--generated", "20", "--dtype", "bf16", "--format", "json"])
                r = json.loads(buf.getvalue())["request"]
                t, d = r["time_to_first_token_s"], r["time_per_output_token_s"]
                e2e = r["request_time_s"]
                print(f"| {model} | {hw} | {b} | {p} | {t['datasheet']*1e3:.2f} | {t['kernel_db']*1e3:.2f} | "
                      f"{d['datasheet']*1e3:.2f} | {d['kernel_db']*1e3:.2f} | {e2e['datasheet']*1e3:.1f} | {e2e['kernel_db']*1e3:.1f} |")
