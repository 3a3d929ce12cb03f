"""The data side: the SeqIO input pipeline with its checkpointable iterator (`pipeline`), the
device prefetcher, the vocabularies, and the downstream tasks' metrics.

Task registrations live in the top-level tasks/ folder (`synthetic_pretraining.tasks`) and the
synthetic generators in `synthetic_pretraining.synthetic`; both feed this pipeline.
"""
