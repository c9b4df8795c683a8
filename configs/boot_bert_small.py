"""BootBERT small on the strict-small track: latent bootstrapping.

Samuel 2023, "Mean BERTs make erratic language teachers: the effectiveness of latent
bootstrapping in low-resource settings" (BabyLM 2023), as its code (ltgoslo/boot-bert,
`configs/small.json`, `pretrain/model.py`, `pretrain/train.py`) builds and trains it.
benchmarks/reference_parity_bootbert.py loads this model's weights into that code's own
PyTorch class and compares states, logits and losses.

Network (the paper's small model): hidden 384, 12 layers, 6 heads, feed-forward 1,024,
vocabulary 4,096, LayerNorm eps 1e-7, relative positions in 2 x 32 - 1 log buckets out to 512,
a plain residual stream; LTG-BERT's attention; GEGLU feed-forward with its inner LayerNorm;
an affine LayerNorm at the end of the encoder and of the 4-layer decoder (model.final_norm),
so the LM head has no first LayerNorm; initial weights shrunk with depth as BootBERT does
(model.depth_scaling 'boot_bert': the feed-forward's down kernel and the attention's output
LayerNorm gain); dropout 0.1, also before the head's projection; none in the decoder.

Objective 'bootstrap': every masked token is a hole the encoder does not see (its attention
skips them; the positions of the others stay their own); the decoder fills the holes from
the encoder's states and a mask embedding; loss 0.1 x masked-token cross-entropy + smooth-L1
(beta 1) between the latent head's guess and the teacher's last states (after its final
LayerNorm), LayerNorm-ed again; the teacher is an EMA of the encoder whose decay rises
linearly from 0.996 to 1.0 over the run; mask rate 0.15; no z-loss.

Training as train.py: LAMB as the LTG code applies it (train.optimizer 'gpt_bert_lamb') at
5e-3, betas (0.9, 0.98), eps 1e-6, weight decay on a cosine from 0.02 to 0.2, clipping at 2.0,
warmup 1.6% then a cosine to 0.1 x the peak with no cooldown, sequence length 256. Its
`no_decay` names ('bias', 'layer_norm', 'embedding') exempt from decay and trust ratio the
biases, the attention's output LayerNorms, the word, relative-position and mask embeddings
(train.no_decay: 'bias', 'post_norm', 'embedding', 'decoder/mask'); the gains of the final
LayerNorms (named `norm`, not `layer_norm`, in its code) are decayed like matrices, and so
they are here. Evaluation and export read the trained weights, not an EMA of them (the
reference keeps none).

Ours, not the reference's: rows are packed documents (the reference pads one document per
row, 10% of them cut short at random); span lengths uniform in 1..3 (the reference draws
geometric ones, p = 1/3, mod 10) from the Bernoulli masker; 16,384 tokens per step and ten
epochs (the track's cap; the reference trains 62,500 steps of 32 x 256 tokens per GPU);
the extra every-100-steps passes that train.py runs only to log gradient norms are
left out (they change no weight).

30,395,776 parameters in all, as the reference's Bert has (its teacher aside); 23,011,840 in
the encoder and LM head (what fine-tuning and the export's masked LM read)
(tests/test_objectives.py checks both). Scored by pll through encoder and decoder.
"""

from babylm_jax.config import base_config
from configs.ltg_bert_small import ltg_model


def get_config():
  c = ltg_model(base_config(), vocab_size=4096)  # LTG-BERT's attention, FFN 1,024, eps 1e-7
  c.objective.kind = "bootstrap"
  c.objective.mask_rate_start = c.objective.mask_rate_end = 0.15
  c.objective.z_loss = 0.0
  c.model.decoder_layers = 4
  c.model.final_norm, c.model.depth_scaling = True, "boot_bert"
  c.train.optimizer = "gpt_bert_lamb"
  c.train.no_decay = ("bias", "post_norm", "embedding", "decoder/mask")
  c.train.b1, c.train.b2 = 0.9, 0.98
  c.train.lr, c.train.eps = 5e-3, 1e-6
  c.train.weight_decay, c.train.weight_decay_end = 0.02, 0.2
  c.train.grad_clip = 2.0
  c.train.warmup_fraction, c.train.cooldown_fraction, c.train.min_lr_ratio = 0.016, 0.0, 0.1
  c.train.seq_lens, c.train.seq_len_fractions = (256,), (1.0,)
  c.eval.use_ema = c.export.use_ema = False
  c.eval.backend = "pll"
  return c
