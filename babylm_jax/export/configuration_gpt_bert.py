"""The `transformers` configuration of an exported babylm_jax GPT-BERT.

This file is copied into every export folder next to modeling_gpt_bert.py and loaded from
there with `trust_remote_code=True`; it imports nothing from babylm_jax. Field names follow
the `transformers` conventions (num_hidden_layers, num_attention_heads, ...) so that generic
tools find them; `babylm_jax.export.hf` maps them to and from `config.model`.
"""

from transformers import PretrainedConfig


class GptBertConfig(PretrainedConfig):
  model_type = "babylm_gpt_bert"

  def __init__(self, vocab_size=8192, hidden_size=384, num_hidden_layers=12,
               num_attention_heads=6, intermediate_size=1280, position_bucket_size=32,
               max_position_embeddings=512, layer_norm_eps=1e-5, hidden_dropout_prob=0.1,
               classifier_dropout=0.1, layer_weighting="gpt_bert", attention="disentangled",
               position="relative", normformer=True, ffn="geglu", head_dropout_prob=0.0,
               decoder_layers=0, final_norm=False, objective="hybrid", initializer_range=None,
               pad_token_id=3, bos_token_id=1, eos_token_id=2, mask_token_id=4, **kwargs):
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.position_bucket_size = position_bucket_size
    self.max_position_embeddings = max_position_embeddings
    self.layer_norm_eps = layer_norm_eps
    self.hidden_dropout_prob = hidden_dropout_prob
    self.classifier_dropout = classifier_dropout
    self.layer_weighting = layer_weighting
    # The architecture switches (babylm_jax config.model.*); the defaults are GPT-BERT.
    self.attention = attention
    self.position = position
    self.normformer = normformer
    self.ffn = ffn
    self.head_dropout_prob = head_dropout_prob
    # BootBERT's decoder layers (0: none) and the objective trained (babylm_jax
    # objective.kind), which says what the masked LM's logits at position i score: token i + 1
    # for 'hybrid' (GPT-BERT), token i itself for 'masked' and 'bootstrap'.
    self.decoder_layers = decoder_layers
    # BootBERT's affine LayerNorm at the end of the encoder and the decoder.
    self.final_norm = final_norm
    self.objective = objective
    # The pretraining init: truncated normal with std sqrt(2 / (5 * hidden_size)).
    self.initializer_range = (initializer_range if initializer_range is not None
                              else (2.0 / (5.0 * hidden_size)) ** 0.5)
    self.mask_token_id = mask_token_id
    super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                     eos_token_id=eos_token_id, **kwargs)
