"""The former home of `data/vocabularies.py`, kept so that gin files written before the floor plan
(`import synthetic_pretraining.vocabularies`, `from synthetic_pretraining import vocabularies`, as
our model files and t5x files had them) still run. Use `synthetic_pretraining.data.vocabularies`."""
from synthetic_pretraining.data.vocabularies import (CPU_SENTENCEPIECE_MODEL, NUM_EXTRA_IDS,
                                                     T5_SENTENCEPIECE_MODEL, VOCABULARY_MACRO,
                                                     configured_vocabulary, named_vocabulary,
                                                     num_sentinels, sentinel_id)

__all__ = ["CPU_SENTENCEPIECE_MODEL", "NUM_EXTRA_IDS", "T5_SENTENCEPIECE_MODEL", "VOCABULARY_MACRO",
           "configured_vocabulary", "named_vocabulary", "num_sentinels", "sentinel_id"]
