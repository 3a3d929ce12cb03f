r"""The memory table of docs/scale.md: every model gin, batch 128, lengths 512/512, on TPU slices.

Each row runs `python -m synthetic_pretraining.precompile` (needs libtpu: pip install '.[tpu]')
for one model, slice and setting, in its own process, and appends its JSON to --results (so an
interrupted run continues where it stopped). A row that does not fit is tried again with the
leanest setting (`settings()`). `--markdown` prints the table from the results, with the rows
that were not computed marked so, and each model's smallest slice; `--write_scale_gin` writes
that slice's setting to gin/scale/. Compiles are heavy; run it niced:

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
          "t5_1_1/small", "t5_1_1/base", "t5_1_1/large", "t5_1_1/xl", "t5_1_1/xxl",
          # Decoder-only models (gin/models/decoder_only/): a row of inputs + targets = 1,024
          # tokens; tiny and cpu are the CPU sizes, small and base T5 1.0's decoder halves.
          "decoder_only/tiny", "decoder_only/cpu", "decoder_only/small", "decoder_only/base"]
SLICES = ["v3-8", "v4-32", "v4-128", "v5e-256"]
BIG = {"t5_1_0/3B", "t5_1_0/11B", "t5_1_1/xl", "t5_1_1/xxl"}
MEDIUM = {"t5_1_0/large", "t5_1_1/large"}
DEVICES = {"v3-8": 8, "v4-32": 16, "v4-128": 64, "v5e-256": 256}
BATCH = 128


def _min_partitions(slice_name: str, partitions: int = 1) -> int:
  """Doubles `partitions` until the data axis is no larger than the batch of 128."""
  while DEVICES[slice_name] // partitions > BATCH:
    partitions *= 2
  return partitions


def settings(model: str, slice_name: str) -> list:
  """The settings tried for a row, in order, until one fits.

  First: scan always (flat compile time); remat, FSDP and model partitions grow with the model.
  Then, where it differs, the leanest: full remat and parameters sharded over all devices by
  FSDP, without model parallelism (whose activations are replicated over the model axis).
  """
  first = {"num_partitions": _min_partitions(slice_name, 8 if model in BIG else 1),
           "fsdp": model in BIG | MEDIUM,
           "remat_policy": "full" if model in BIG | MEDIUM else "none", "scan_layers": True}
  lean = {"num_partitions": _min_partitions(slice_name), "fsdp": True, "remat_policy": "full",
          "scan_layers": True}
  return [first] if lean == first else [first, lean]


def mesh(slice_name: str, cfg: dict) -> str:
  return f"{DEVICES[slice_name] // cfg['num_partitions']} x {cfg['num_partitions']}"


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


def tried(results: dict, model: str, slice_name: str) -> list:
  """(setting, result or None) for each setting of a row up to the first that fits."""
  out = []
  for cfg in settings(model, slice_name):
    rec = results.get(row_key(model, slice_name, cfg))
    out.append((cfg, rec))
    if rec is None or rec.get("status") == "fits":
      break
  return out


def _fitting(results: dict, model: str, slice_name: str):
  """The setting that fits this slice, or None."""
  cfg, rec = tried(results, model, slice_name)[-1]
  return cfg if rec is not None and rec.get("status") == "fits" else None


def markdown(results: dict) -> str:
  """The memory table: one line per setting tried, then each model's smallest slice."""
  lines = ["| model | slice | mesh (data x model) | fsdp | remat | scan | params/dev GiB | "
           "opt state/dev GiB | temporaries/dev GiB | total/dev GiB | HBM GiB | fits | "
           "TFLOPs/dev/step | compile s |",
           "|---" * 14 + "|"]
  for model in MODELS:
    for slice_name in SLICES:
      for cfg, r in tried(results, model, slice_name):
        head = (f"| {model} | {slice_name} | {mesh(slice_name, cfg)} | {cfg['fsdp']} | "
                f"{cfg['remat_policy']} | {cfg['scan_layers']} |")
        if r is None or "steps" not in r:
          status = "not computed" if r is None else r["status"]
          lines.append(head + f" {status} |" + " |" * 7)
          continue
        s = r["steps"][0]
        tflops = "-" if s["flops"] is None else f"{s['flops'] / 1e12:.2f}"
        g = lambda v: f"{v / 2**30:.2f}"  # noqa: E731
        lines.append(head + f" {g(s['params'])} | {g(s['optimizer_state'])} | "
                     f"{g(s['temporaries'])} | {g(s['total'])} | {g(s['hbm'])} | "
                     f"{'yes' if s['fits'] else 'NO'} | {tflops} | {s['compile_seconds']:.0f} |")
  lines += ["", "| model | smallest slice that fits | setting | total/dev GiB of HBM | gin file |",
            "| --- | --- | --- | --- | --- |"]
  for model in MODELS:
    slice_name, cfg, unknown = smallest_slice(results, model)
    where = slice_name or ("not computed" if unknown else "none of the slices tried")
    where += f" ({', '.join(unknown)} not computed)" if unknown and slice_name else ""
    if cfg is None:
      lines.append(f"| {model} | {where} | | | |")
      continue
    lines.append(f"| {model} | {where} | {describe(cfg)} | "
                 f"{_total_of_hbm(results, model, slice_name, cfg)} | "
                 f"`{scale_gin_path(model, slice_name)}` |")
  return "\n".join(lines)


def smallest_slice(results: dict, model: str):
  """(slice, setting, smaller slices not known) of the slice with the fewest devices where the
  model fits; slice and setting are None where it fits on none of those known."""
  unknown = []
  for slice_name in SLICES:  # SLICES is ordered by device count
    cfg = _fitting(results, model, slice_name)
    if cfg is not None:
      return slice_name, cfg, unknown
    if any(rec is None or rec.get("status") not in ("fits", "does not fit")
           for _, rec in tried(results, model, slice_name)):  # not run, timed out or failed
      unknown.append(slice_name)
  return None, None, unknown


def _total_of_hbm(results: dict, model: str, slice_name: str, cfg: dict) -> str:
  step = results[row_key(model, slice_name, cfg)]["steps"][0]
  return f"{step['total'] / 2**30:.2f} of {step['hbm'] / 2**30:.0f}"


def describe(cfg: dict) -> str:
  parts = [f"{cfg['num_partitions']}-way model parallel" if cfg["num_partitions"] > 1
           else "data parallel"]
  parts += ["FSDP"] if cfg["fsdp"] else []
  parts += [f"remat {cfg['remat_policy']}"] if cfg["remat_policy"] != "none" else []
  parts += ["scanned layers"] if cfg["scan_layers"] else []
  return ", ".join(parts)


def scale_gin(results: dict, model: str, slice_name: str) -> str:
  """A gin/scale/ file for a measured fitting row."""
  cfg = _fitting(results, model, slice_name)
  if cfg is None:
    raise ValueError(f"{model} has no fitting result on {slice_name}")
  return (f"# {model} on a {slice_name} at batch {BATCH}, lengths 512/512: "
          f"{_total_of_hbm(results, model, slice_name, cfg)} GiB\n"
          f"# per device, {mesh(slice_name, cfg)} (data x model) mesh, {describe(cfg)}. Measured by\n"
          "# benchmarks/precompile_table.py (docs/scale.md), which wrote this file. Give it after "
          "the model\n# and run files (the run files set num_partitions themselves):\n"
          f"#   python -m synthetic_pretraining.train --gin_file=gin/models/{model}.gin \\\n"
          f"#     --gin_file=gin/runs/pretrain.gin --gin_file={scale_gin_path(model, slice_name)} ...\n"
          f"# (MODEL: gin/models/{model}.gin)\n"
          f"network.T5Config.scan_layers = {cfg['scan_layers']}\n"
          f"network.T5Config.remat_policy = '{cfg['remat_policy']}'\n"
          f"partitioning.PjitPartitioner.num_partitions = {cfg['num_partitions']}\n"
          f"partitioning.PjitPartitioner.fsdp = {cfg['fsdp']}\n")


def scale_gin_path(model: str, slice_name: str) -> str:
  return f"gin/scale/{model.replace('/', '_')}_{slice_name.replace('-', '_')}.gin"


def load_results(path: str) -> dict:
  """The rows computed so far, by key (the last line of a key wins)."""
  results = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        rec = json.loads(line)
        results[rec["key"]] = rec
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--results", default="benchmarks/precompile_table.jsonl")
  parser.add_argument("--markdown", action="store_true", help="print the table and exit")
  parser.add_argument("--write_scale_gin", action="store_true",
                      help="write gin/scale/<model>_<slice>.gin for each model's smallest slice "
                      "(and the model|slice rows of --only) from the results, and exit")
  parser.add_argument("--only", default="", help="comma-separated model|slice rows to run")
  parser.add_argument("--timeout", type=int, default=3600, help="seconds per compile")
  args = parser.parse_args()
  results = load_results(args.results)
  wanted = [tuple(x.split("|")) for x in args.only.split(",") if x]
  if args.markdown:
    print(markdown(results))
    return
  if args.write_scale_gin:
    smallest = {m: smallest_slice(results, m) for m in MODELS}
    rows = wanted + [(m, slice_name) for m, (slice_name, _, unknown) in smallest.items()
                     if slice_name and not unknown]
    for model, slice_name in dict.fromkeys(rows):
      os.makedirs(os.path.dirname(scale_gin_path(model, slice_name)), exist_ok=True)
      with open(scale_gin_path(model, slice_name), "w") as f:
        f.write(scale_gin(results, model, slice_name))
      print("wrote", scale_gin_path(model, slice_name))
    return
  for model, slice_name in wanted or [(m, s) for m in MODELS for s in SLICES]:
    # Run the first setting without a result until one fits or none is left (`tried`).
    while (last := tried(results, model, slice_name)[-1])[1] is None:
      key = row_key(model, slice_name, last[0])
      rec = dict(run_row(model, slice_name, last[0], args.timeout), key=key)
      results[key] = rec
      with open(args.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
      print(key, rec["status"], flush=True)


if __name__ == "__main__":
  main()
