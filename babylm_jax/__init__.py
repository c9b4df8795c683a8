"""babylm_jax: GPT-BERT pretraining and evaluation for the BabyLM challenge in JAX/Flax NNX."""

__version__ = "0.1.0"
