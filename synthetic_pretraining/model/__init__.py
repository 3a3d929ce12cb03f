"""The model: T5 network and layers (t5x's parameter names), the encoder-decoder model with its
loss and decoding, the optimizer, and the mesh with its sharding rules.

TensorFlow-free: nothing here imports TensorFlow or seqio (the vocabulary is imported only when a
model leaves its vocab_size to the configured vocabulary), so the model runs on any machine with
jax, flax and optax.
"""
