"""Matmul FLOPs of the T5 network, for MFU figures (benchmarks, the device check).

Counted by hand from the shapes (embedding lookups and elementwise ops excluded) rather than
read from XLA's cost analysis, so a figure does not depend on the backend's fusion choices; a
train step is 3x the forward pass (forward, and the two matmuls of each backward product).
"""
from synthetic_pretraining.model import network


def forward_flops(cfg: network.T5Config, batch: int, n_in: int, n_out: int) -> float:
  """Matmul FLOPs of one forward pass of `batch` examples of n_in input and n_out target tokens."""
  d, hd = cfg.emb_dim, cfg.num_heads * cfg.head_dim
  mlp = cfg.mlp_dim * len(cfg.activations)
  enc_layer = n_in * (4 * d * hd + d * mlp + cfg.mlp_dim * d) + 2 * n_in * n_in * hd
  dec_layer = (n_out * (4 * d * hd + 2 * d * hd + d * mlp + cfg.mlp_dim * d) + 2 * n_in * d * hd
               + 2 * n_out * n_out * hd + 2 * n_out * n_in * hd)
  logits = n_out * d * cfg.vocab_size
  return 2.0 * batch * (cfg.num_encoder_layers * enc_layer + cfg.num_decoder_layers * dec_layer
                        + logits)


def train_step_flops(cfg: network.T5Config, batch: int, n_in: int, n_out: int) -> float:
  """Matmul FLOPs of one train step (3x the forward pass)."""
  return 3 * forward_flops(cfg, batch, n_in, n_out)


def decoder_only_forward_flops(cfg: network.T5Config, batch: int, length: int) -> float:
  """Matmul FLOPs of one forward pass of a decoder-only model (`num_decoder_layers` layers of
  self-attention and MLP) on `batch` rows of `length` tokens (a prefix LM: inputs + targets)."""
  d, hd = cfg.emb_dim, cfg.num_heads * cfg.head_dim
  mlp = cfg.mlp_dim * len(cfg.activations)
  layer = length * (4 * d * hd + d * mlp + cfg.mlp_dim * d) + 2 * length * length * hd
  return 2.0 * batch * (cfg.num_decoder_layers * layer + length * d * cfg.vocab_size)
