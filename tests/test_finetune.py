"""Fine-tuning on the BabyLM glue_filtered files with a tiny GPT-BERT."""

import json

import numpy as np
import pytest

from babylm_jax.config import BOS_ID, EOS_ID
from babylm_jax.errors import DataError
from babylm_jax.eval import finetune
from conftest import data_path
from eval_helpers import small_tokenizer, tiny_gpt_bert

GLUE = "babylm_eval/glue_filtered"


def test_every_split_parses():
  folder = data_path(GLUE)
  found = 0
  for task in finetune.TASKS:
    for split in ("train", "valid"):
      if (folder / f"{task}.{split}.jsonl").exists():
        ex = finetune.load_split(str(folder), task, split)
        labels = {y for _, y in ex}
        assert labels == set(range(finetune.TASKS[task][1])), (task, split)
        found += 1
  assert found == 12  # boolq and multirc ship without a training split


def test_missing_train_split_names_the_file():
  with pytest.raises(DataError, match=r"boolq\.train\.jsonl' is missing"):
    finetune.load_split(str(data_path(GLUE)), "boolq", "train")


def test_malformed_line_names_file_and_line(tmp_path):
  lines = (data_path(GLUE, "rte.valid.jsonl").read_text().splitlines()[:5])
  lines[3] = '{"sentence1": "A.", "sentence2": "B.", "label": 7}'
  (tmp_path / "rte.valid.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"rte\.valid\.jsonl' line 4 .*label in 0\.\.1"):
    finetune.load_split(str(tmp_path), "rte", "valid")
  lines[3] = lines[3][:-3]
  (tmp_path / "rte.valid.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"line 4 is not valid JSON"):
    finetune.load_split(str(tmp_path), "rte", "valid")


def test_encoding_fits_and_keeps_every_part():
  tok = small_tokenizer(512)
  ex = finetune.load_split(str(data_path(GLUE)), "boolq", "valid", 20)
  ids, labels = finetune.encode_examples(tok, ex, 64)
  for s in ids:
    assert len(s) <= 64 and s[0] == BOS_ID and s[-1] == EOS_ID and s.count(EOS_ID) == 2
  assert labels.shape == (20,)


def test_small_rte_subset_is_learned(tmp_path):
  """With a high learning rate the tiny model fits 48 RTE pairs: the whole loop learns.

  The validation split is the training subset itself, so the best kept epoch is the one that
  fits it best and its accuracy measures the fit.
  """
  lines = data_path(GLUE, "rte.train.jsonl").read_text().splitlines()[:48]
  for split in ("train", "valid"):
    (tmp_path / f"rte.{split}.jsonl").write_text("\n".join(lines) + "\n")
  tok = small_tokenizer(512)
  model, c = tiny_gpt_bert(512)
  c.finetune.data_dir = str(tmp_path)
  c.finetune.max_length = 64
  c.finetune.batch_size = 16
  c.finetune.lr = 3e-3
  c.finetune.epochs = 12
  result = finetune.finetune(model, tok, c, "rte")
  assert result["accuracy"] >= 0.9 and result["train_accuracy"] >= 0.9, result["history"]
  losses = [h["train_loss"] for h in result["history"]]
  assert losses[-1] < 0.5 * losses[0]
  best = max(h["valid_accuracy"] for h in result["history"])
  assert result["accuracy"] == best and result["seed"] == 0
  assert result["valid_examples"] == result["train_examples"] == 48
  json.dumps(result)  # the report is plain JSON


def test_f1_for_mrpc():
  m = finetune._metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]), "mrpc")
  assert m == dict(accuracy=0.5, f1=0.5)
