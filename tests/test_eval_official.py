"""eval/official.py: the pipeline's UIDs and sentences, and its results set against ours.

`benchmarks/official_parity.py` runs the official pipeline, which CI does not have; its
comparison is checked here on hand-made pipeline output files and hand-made scores.
"""

import json

import pytest

from babylm_jax.eval import official

REPORT = """TEMPERATURE: 1.00

### FIELD ACCURACY
syntax: 50.00

### UID ACCURACY
agreement: 100.00
island: 100.00
regular_1_ops: 33.33

### LINGUISTICS_TERM ACCURACY
island_effects: 100.00

### AVERAGE ACCURACY
77.78
"""


def _predictions(**preds):
  return {uid: {"predictions": [{"id": f"{uid}_{k}", "pred": p} for k, p in enumerate(ps)]}
          for uid, ps in preds.items()}


def test_read_report_takes_the_uid_section(tmp_path):
  (tmp_path / "best_temperature_report.txt").write_text(REPORT)
  assert official.read_report(tmp_path / "best_temperature_report.txt") == {
      "agreement": 100.0, "island": 100.0, "regular_1_ops": 33.33}


def test_compare_counts_ties_as_the_pipeline_does_and_finds_differing_decisions():
  ours = [
      # A clear win and a tie: the pipeline counts both correct, we count 1.5 of 2.
      dict(uid="agreement", completions=["good a", "bad a"], scores=[-1.0, -2.0]),
      dict(uid="agreement", completions=["good b", "bad b"], scores=[-3.0, -3.0]),
      # We pick the bad sentence once; the pipeline (hand-made) picked the good one both times.
      dict(uid="island", completions=["good c", "bad c"], scores=[-2.0, -1.0]),
      dict(uid="island", completions=["good d", "bad d"], scores=[-1.0, -2.0]),
      # Three options: ours picks option 2, as the pipeline did.
      dict(uid="regular_1_ops", completions=[" x.", " y.", " z."], scores=[-5.0, -4.0, -1.0]),
  ]
  preds = _predictions(agreement=["good a", "good b"], island=["good c", "good d"],
                       regular_1_ops=[" z."])
  report = {"agreement": 100.0, "island": 100.0, "regular_1_ops": 0.0}
  c = official.compare(ours, preds, report)
  p = c["paradigms"]
  assert p["agreement"] == dict(items=2, official=100.0, ours_ties_correct=100.0, ours=75.0,
                                ties=1, differing_decisions=0)
  assert (p["island"]["ours_ties_correct"], p["island"]["differing_decisions"]) == (50.0, 1)
  assert (p["regular_1_ops"]["ours"], p["regular_1_ops"]["differing_decisions"]) == (0.0, 0)
  assert (c["items"], c["differing_decisions"], c["ties"]) == (5, 1, 1)
  assert c["max_diff_points"] == 50.0  # island: 100 there, 50 here
  assert c["max_diff_points_ties_half"] == 50.0


def test_compare_refuses_output_of_other_data():
  ours = [dict(uid="island", completions=["a", "b"], scores=[0.0, -1.0])]
  with pytest.raises(ValueError, match="island"):
    official.compare(ours, _predictions(island=["a", "a"]), {"island": 100.0})
  with pytest.raises(ValueError, match="island"):
    official.compare(ours, _predictions(island=["a"]), {})


def test_our_items_name_paradigms_and_completions_as_the_pipeline(tmp_path):
  folder = tmp_path / "et"
  folder.mkdir()
  rec = dict(input_prefix="Box 1 contains ", options=["the hat.", "the map."], numops=2)
  (folder / "regular.jsonl").write_text(json.dumps(rec) + "\n\n" + json.dumps(rec) + "\n")
  items = official.our_items("entity_tracking", folder, [[-1.0, -2.0], [-2.0, -1.0]])
  assert [it["uid"] for it in items] == ["regular_2_ops"] * 2
  assert items[0]["completions"] == ["the hat.", "the map."]
  assert official.sentences("entity_tracking", rec)[0] == ("Box 1 contains the hat.",
                                                           "the hat.")
  ewok = dict(Domain="physics", Context1="It fell.", Target1="It broke.", Target2="It flew.")
  assert official.sentences("ewok", ewok) == [("It fell. It broke.", " It broke."),
                                              ("It fell. It flew.", " It flew.")]
  assert official.uid("ewok", "physics", ewok) == "physics"
  pair = dict(sentence_good="A b.", sentence_bad="B a.")
  assert official.uid("blimp", "hypernym", pair) == "hypernym"  # the supplement: file name
  assert official.uid("blimp", "x", dict(pair, field="syntax", UID="island")) == "island"
  with pytest.raises(ValueError, match="records"):
    official.our_items("entity_tracking", folder, [[-1.0, -2.0]])
