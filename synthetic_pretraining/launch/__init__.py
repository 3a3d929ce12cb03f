"""Launchers, installed with the package and run as `python -m synthetic_pretraining.launch.<name>`.

  mini_table1   the small-scale reproduction of the paper's Table 1 on one machine (CPU or GPU);
                `make demo` runs its `demo` preset
  step_times    measures the step times a mini_table1 preset is sized from
  pre_pretraining  a decoder-only model pre-pretrained on shuffle_dyck or dyck, then natural
                text, against natural text alone at the same tokens (docs/decoder_only.md)
  tpu_vm        runs a command on every worker of a Cloud TPU VM (ships this checkout's working
                tree, or its HEAD, and extra module paths)
  paper_tables  the paper's Table 1, 2 or 3 grid on a Cloud TPU VM, then the report

Each takes `--help`. Outputs go under the working directory (or `--output_dir`), never into the
installed package or a checkout; gin files are found as by every binary (the working directory
first, then those shipped with the package).
"""
