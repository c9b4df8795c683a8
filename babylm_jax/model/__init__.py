"""The GPT-BERT network as Flax NNX modules."""
