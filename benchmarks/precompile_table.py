r"""The memory table of docs/scale.md: every model gin, batch 128, lengths 512/512, on TPU slices.

Each row runs `python -m synthetic_pretraining.precompile` (needs libtpu: pip install '.[tpu]')
for one model, slice and setting, in its own process, and appends its JSON to --results (so an
interrupted run continues where it stopped). `--markdown` prints the table from the results,
with the rows that were not computed marked so. Compiles are heavy; run it niced:

  nice -n 19 python benchmarks/precompile_table.py --results=benchmarks/precompile_table.jsonl
  python benchmarks/precompile_table.py --results=benchmarks/precompile_table.jsonl --markdown
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODELS = ["t5_1_0/small", "t5_1_0/base", "t5_1_0/large", "t5_1_0/3B", "t5_1_0/11B",
          "t5_1_1/small", "t5_1_1/base", "t5_1_1/large", "t5_1_1/xl", "t5_1_1/xxl"]
SLICES = ["v3-8", "v4-32", "v4-128", "v5e-256"]
BIG = {"t5_1_0/3B", "t5_1_0/11B", "t5_1_1/xl", "t5_1_1/xxl"}
MEDIUM = {"t5_1_0/large", "t5_1_1/large"}
DEVICES = {"v3-8": 8, "v4-32": 16, "v4-128": 64, "v5e-256": 256}
BATCH = 128


def setting(model: str, slice_name: str) -> dict:
  """The first setting tried for a row: scan always (flat compile time); remat, FSDP and model
  partitions grow with the model; the data axis must divide the batch of 128."""
  partitions = 8 if model in BIG else 1
  while DEVICES[slice_name] // partitions > BATCH:
    partitions *= 2
  return {"num_partitions": partitions, "fsdp": model in BIG | MEDIUM,
          "remat_policy": "full" if model in BIG | MEDIUM else "none", "scan_layers": True}


def row_key(model, slice_name, cfg):
  return f"{model}|{slice_name}|{json.dumps(cfg, sort_keys=True)}"


def run_row(model, slice_name, cfg, timeout):
  with tempfile.TemporaryDirectory() as out:
    cmd = [sys.executable, "-m", "synthetic_pretraining.precompile", f"--topology={slice_name}",
           "--no_decode", f"--output={out}", f"--gin_file=gin/models/{model}.gin",
           "--gin_file=gin/runs/pretrain.gin", f"--gin.BATCH_SIZE={BATCH}",
           "--gin.TASK_FEATURE_LENGTHS={'inputs': 512, 'targets': 512}",
           f"--gin.partitioning.PjitPartitioner.num_partitions={cfg['num_partitions']}",
           f"--gin.partitioning.PjitPartitioner.fsdp={cfg['fsdp']}",
           f"--gin.network.T5Config.remat_policy='{cfg['remat_policy']}'",
           f"--gin.network.T5Config.scan_layers={cfg['scan_layers']}"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    start = time.time()
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
      return {"status": f"not computed (compile over {timeout}s here)"}
    files = [f for f in os.listdir(out) if f.endswith(".json")]
    if not files:
      err = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
      return {"status": "failed: " + (err[-1] if err else proc.stderr.strip()[-300:])}
    with open(os.path.join(out, files[0])) as f:
      result = json.load(f)
    result["status"] = "fits" if proc.returncode == 0 else "does not fit"
    result["wall_seconds"] = time.time() - start
    return result


def markdown(results: dict) -> str:
  lines = ["| model | slice | mesh (data x model) | fsdp | remat | scan | params/dev GiB | "
           "opt state/dev GiB | temporaries/dev GiB | total/dev GiB | HBM GiB | fits | "
           "TFLOPs/dev/step | compile s |",
           "|---" * 14 + "|"]
  for model in MODELS:
    for slice_name in SLICES:
      cfg = setting(model, slice_name)
      r = results.get(row_key(model, slice_name, cfg))
      head = (f"| {model} | {slice_name} | {DEVICES[slice_name] // cfg['num_partitions']} x "
              f"{cfg['num_partitions']} | {cfg['fsdp']} | {cfg['remat_policy']} | "
              f"{cfg['scan_layers']} |")
      if r is None or "steps" not in r:
        status = "not computed" if r is None else r["status"]
        lines.append(head + f" {status} |" + " |" * 7)
        continue
      s = r["steps"][0]
      tflops = "-" if s["flops"] is None else f"{s['flops'] / 1e12:.2f}"
      g = lambda v: f"{v / 2**30:.2f}"  # noqa: E731
      lines.append(head + f" {g(s['params'])} | {g(s['optimizer_state'])} | {g(s['temporaries'])} "
                   f"| {g(s['total'])} | {g(s['hbm'])} | {'yes' if s['fits'] else 'NO'} | "
                   f"{tflops} | {s['compile_seconds']:.0f} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--results", default="benchmarks/precompile_table.jsonl")
  parser.add_argument("--markdown", action="store_true", help="print the table and exit")
  parser.add_argument("--only", default="", help="comma-separated model|slice rows to run")
  parser.add_argument("--timeout", type=int, default=3600, help="seconds per compile")
  args = parser.parse_args()
  results = {}
  if os.path.exists(args.results):
    with open(args.results) as f:
      for line in f:
        rec = json.loads(line)
        results[rec["key"]] = rec
  if args.markdown:
    print(markdown(results))
    return
  wanted = [tuple(x.split("|")) for x in args.only.split(",") if x]
  rows = wanted or [(m, s) for m in MODELS for s in SLICES]
  for model, slice_name in rows:
    cfg = setting(model, slice_name)
    key = row_key(model, slice_name, cfg)
    if key in results:
      continue
    rec = run_row(model, slice_name, cfg, args.timeout)
    rec["key"] = key
    with open(args.results, "a") as f:
      f.write(json.dumps(rec) + "\n")
    print(key, rec["status"], flush=True)


if __name__ == "__main__":
  main()
