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
warmup 1.6% then a cosine to 0.1 x the peak with no cooldown, sequence length 256.

Ours, not the reference's: rows are packed documents (the reference pads one document per
row, 10% of them cut short at random); span lengths uniform in 1..3 (the reference draws
geometric ones, p = 1/3, mod 10) from the Bernoulli masker; 16,384 tokens per step and ten
epochs (the track's cap; the reference trains 62,500 steps of 32 x 256 tokens per GPU);
the evaluation reads the EMA of the parameters, as all our configs do (the reference has
none); the extra every-100-steps passes that train.py runs only to log gradient norms are
left out (they change no weight).

39,042,944 parameters in all, 29,891,840 in the encoder (what fine-tuning reads)
(tests/test_objectives.py checks both). Scored by pll through encoder and decoder.
"""

from babylm_jax.config import base_config


def get_config():
  c = base_config()
  c.objective.kind = "bootstrap"
  c.objective.mask_rate_start = c.objective.mask_rate_end = 0.15
  c.objective.z_loss = 0.0
  m = c.model
  m.vocab_size, m.intermediate_size, m.layer_norm_eps = 4096, 1024, 1e-7
  m.decoder_layers = 4
  m.layer_weighting = "residual"
  m.final_norm, m.depth_scaling = True, "boot_bert"
  m.head_dropout = 0.1
  c.train.optimizer = "gpt_bert_lamb"
  c.train.lr, c.train.eps = 5e-3, 1e-6
  c.train.weight_decay, c.train.weight_decay_end = 0.02, 0.2
  c.train.cooldown_fraction = 0.0
  c.train.seq_lens, c.train.seq_len_fractions = (256,), (1.0,)
  c.eval.backend = "pll"
  return c
