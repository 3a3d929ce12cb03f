"""Training and evaluation runs: `trainer.train` (the loop, its gin configs and run state), the
compiled steps (`compiled_steps`, TensorFlow-free), periodic `actions`, teacher-forced
`evaluation`, `inference` (decoding and scoring), and what a run directory holds (`run_dir`,
`metrics_writer`, `run_record`, `model_info`, `run_lock`), with the run's guards (`preflight`,
`interrupts`, `distributed`, `host_memory`).
"""
