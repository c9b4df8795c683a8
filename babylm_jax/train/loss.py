"""The token-prediction loss of the objectives, in float32 whatever the compute dtype.

loss = r * (mean CE over the masked rows' targets) + (1 - r) * (mean CE over the causal rows'
targets) + z_coef * z, where z is the mean over all targets of logsumexp(logits)^2 (pooling
'targets') or r * its mean over the masked targets + (1 - r) * its mean over the causal ones
(pooling 'by_kind', as the GPT-BERT reference). When a batch holds rows of one kind only, the
other terms drop out and the weights renormalise: the masked and causal objectives are the
cases of one kind.

The loss is a ratio of sums, so it is computed in two stages: `target_sums` reduces any subset
of targets (a micro-batch, a gathered set of positions) to sums and counts, and `objective`
divides by the counts of the whole batch. Summing the gradients of `objective` over
micro-batches, each with the whole batch's counts, gives exactly the full-batch gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SUM_KEYS = ("masked_ce", "causal_ce", "masked_z", "causal_z", "masked_correct",
            "causal_correct", "masked_targets", "causal_targets")


def target_sums(logits_NV, targets_N, weight_N, causal_N) -> dict:
  """Sums of CE, logsumexp^2 and correct predictions, split by row kind, over weighted targets.

  `weight_N` is 1 for a real target, 0 for a position that is not one; `causal_N` says whether
  the target's row is causal. Differentiable in `logits_NV` only (see _sums_bwd).
  """
  return _target_sums(logits_NV, targets_N, weight_N.astype(jnp.float32),
                      causal_N.astype(jnp.float32))


@jax.custom_vjp
def _target_sums(logits_NV, targets_N, weight_N, causal_N):
  return _sums_fwd(logits_NV, targets_N, weight_N, causal_N)[0]


def _sums_fwd(logits_NV, targets_N, weight_N, causal_N):
  x_NV = logits_NV.astype(jnp.float32)
  target_logit_N = jnp.take_along_axis(x_NV, targets_N[:, None], axis=-1)[:, 0]
  # Correct when the target's logit beats every other token's (a tie counts as wrong). One
  # max-reduction instead of argmax, whose (value, index) reduction is slow on CPU; the
  # maximum over all tokens, which logsumexp subtracts, follows from it without another pass.
  is_target_NV = jnp.arange(x_NV.shape[-1])[None, :] == targets_N[:, None]
  others_max_N = jnp.max(jnp.where(is_target_NV, -jnp.inf, x_NV), axis=-1)
  correct_N = (target_logit_N > others_max_N).astype(jnp.float32)
  max_N = jnp.maximum(others_max_N, target_logit_N)
  lse_N = max_N + jnp.log(jnp.sum(jnp.exp(x_NV - max_N[:, None]), axis=-1))
  ce_N = lse_N - target_logit_N
  causal_w_N = weight_N * causal_N
  masked_w_N = weight_N - causal_w_N
  sums = dict(
      masked_ce=jnp.sum(ce_N * masked_w_N), causal_ce=jnp.sum(ce_N * causal_w_N),
      masked_z=jnp.sum(jnp.square(lse_N) * masked_w_N),
      causal_z=jnp.sum(jnp.square(lse_N) * causal_w_N),
      masked_correct=jnp.sum(correct_N * masked_w_N),
      causal_correct=jnp.sum(correct_N * causal_w_N),
      masked_targets=jnp.sum(masked_w_N), causal_targets=jnp.sum(causal_w_N))
  return sums, (logits_NV, lse_N, targets_N, masked_w_N, causal_w_N)


def _sums_bwd(residuals, g):
  """d/dlogits of the weighted sums in one pass over [N, V]: with p = softmax(logits),
  ce = lse - logit[target] gives a (p - onehot) and lse^2 gives 2 lse p, a and the z factor
  being each target's cotangent. Autodiff of the forward took several passes (logsumexp's
  gradient, the gather's scatter, their sum) over arrays of B * T x vocabulary floats.
  The accuracies and counts are step functions of the logits: no gradient."""
  logits_NV, lse_N, targets_N, masked_w_N, causal_w_N = residuals
  ce_g_N = g["masked_ce"] * masked_w_N + g["causal_ce"] * causal_w_N
  lse_g_N = ce_g_N + 2.0 * lse_N * (g["masked_z"] * masked_w_N + g["causal_z"] * causal_w_N)
  p_NV = jnp.exp(logits_NV.astype(jnp.float32) - lse_N[:, None])
  is_target_NV = jnp.arange(logits_NV.shape[-1])[None, :] == targets_N[:, None]
  d_NV = lse_g_N[:, None] * p_NV - jnp.where(is_target_NV, ce_g_N[:, None], 0.0)
  return d_NV.astype(logits_NV.dtype), None, None, None


_target_sums.defvjp(_sums_fwd, _sums_bwd)


def counts(loss_mask_BT, is_causal_B) -> dict:
  """Target counts of a whole batch, the denominators of `objective`."""
  mask = loss_mask_BT.astype(jnp.float32)
  causal = jnp.sum(mask * is_causal_B[:, None].astype(jnp.float32))
  return dict(masked_targets=jnp.sum(mask) - causal, causal_targets=causal)


def _weights(totals, masked_weight):
  has_m = (totals["masked_targets"] > 0).astype(jnp.float32)
  has_c = (totals["causal_targets"] > 0).astype(jnp.float32)
  wm, wc = masked_weight * has_m, (1.0 - masked_weight) * has_c
  norm = jnp.maximum(wm + wc, 1e-12)
  return wm / norm, wc / norm


def z_term(sums, totals, masked_weight, pooling):
  """The z term (before its coefficient): logsumexp^2 averaged as `pooling` says."""
  n_m = jnp.maximum(totals["masked_targets"], 1.0)
  n_c = jnp.maximum(totals["causal_targets"], 1.0)
  if pooling == "by_kind":
    wm, wc = _weights(totals, masked_weight)
    return wm * sums["masked_z"] / n_m + wc * sums["causal_z"] / n_c
  n = jnp.maximum(totals["masked_targets"] + totals["causal_targets"], 1.0)
  return (sums["masked_z"] + sums["causal_z"]) / n


def objective(sums, totals, masked_weight: float, z_coef: float, pooling: str = "targets"):
  """The scalar that is optimised: sums of (part of) a batch over the whole batch's counts."""
  wm, wc = _weights(totals, masked_weight)
  n_m = jnp.maximum(totals["masked_targets"], 1.0)
  n_c = jnp.maximum(totals["causal_targets"], 1.0)
  return (wm * sums["masked_ce"] / n_m + wc * sums["causal_ce"] / n_c
          + z_coef * z_term(sums, totals, masked_weight, pooling))


def metrics(sums, masked_weight: float, z_coef: float, pooling: str = "targets") -> dict:
  """loss, its parts, accuracies and target counts from the sums of a whole batch."""
  n_m = jnp.maximum(sums["masked_targets"], 1.0)
  n_c = jnp.maximum(sums["causal_targets"], 1.0)
  return dict(
      loss=objective(sums, sums, masked_weight, z_coef, pooling),
      masked_loss=sums["masked_ce"] / n_m, causal_loss=sums["causal_ce"] / n_c,
      masked_accuracy=sums["masked_correct"] / n_m,
      causal_accuracy=sums["causal_correct"] / n_c,
      z_loss=z_coef * z_term(sums, sums, masked_weight, pooling),
      masked_targets=sums["masked_targets"], causal_targets=sums["causal_targets"])
