"""Checkpoints in every format we read or write, behind one resolver.

`resolver.resolve(path)` answers what is at a path (our orbax checkpoint or MODEL_DIR, a t5x
checkpoint in any of its formats, a stats.json); each format is a `param_source.ParamSource`
that reads parameters sharded into the mesh. `orbax_format` writes and restores training state
(with the data position), `integrity` checks a checkpoint before it is used, and `t5x_writer`
writes t5x checkpoints. A new format is one reader here and one case in the resolver.
"""
