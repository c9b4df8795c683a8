"""Reading and cleaning the real BabyLM text: streaming, boundaries, tags, word counts."""

import re

import pytest

from babylm_jax.data import clean, sources
from conftest import data_path

SETTINGS = clean.CleanSettings()


def _docs(path, settings=SETTINGS, block_bytes=sources.BLOCK_BYTES, raw=None):
  path = str(path)
  return list(clean.documents(sources.read_blocks(path, block_bytes), sources.domain_of(path),
                              settings, raw))


def test_pieces_never_lose_text_at_a_split():
  path = data_path("babylm_text", "train_600k", "simple_wiki_dev.train")
  text = path.read_text(encoding="utf-8")
  for block in (97, 4096, 65536):
    pieces = list(clean.pieces(sources.read_blocks(str(path), block)))
    assert "".join(pieces) == text
    # Every piece but the last ends on a word and the next starts with whitespace.
    assert all(not p[-1].isspace() for p in pieces[:-1])
    assert all(p[0].isspace() for p in pieces[1:])


@pytest.mark.parametrize("name", ["train_600k/simple_wiki_dev.train",
                                  "train_600k/childes_dev.train",
                                  "dev_bb25_small/bb25_small.dev"])
def test_documents_do_not_depend_on_block_size(name):
  path = data_path("babylm_text", *name.split("/"))
  settings = clean.CleanSettings(strip_speaker_tags=True, max_doc_chars=3000)
  reference = _docs(path, settings)
  assert len(reference) > 10
  for block in (501, 8192):
    assert _docs(path, settings, block) == reference


def test_one_line_headings_become_document_boundaries():
  path = data_path("babylm_text", "train_600k", "simple_wiki_dev.train")
  raw = path.read_text(encoding="utf-8")
  headings = clean.HEADING.findall(raw)
  assert len(headings) > 100 and "\n" not in raw.strip()
  docs = _docs(path, clean.CleanSettings(max_doc_chars=10**9))
  # One document per heading, plus the text before the first heading.
  assert len(docs) == len(headings) + (not raw.startswith("="))
  assert not any(clean.HEADING.search(d) for d in docs)
  kept = _docs(path, clean.CleanSettings(max_doc_chars=10**9, keep_heading_titles=True))
  titles = [t for _, t in headings]
  assert [d.split("\n", 1)[0] for d in kept[-len(titles):]] == titles
  # Without the switch, headings stay in the text and the whole line is one document.
  assert len(_docs(path, clean.CleanSettings(wiki_headings_as_boundaries=False,
                                             max_doc_chars=10**9))) == 1


def test_speaker_tags_kept_or_stripped_in_both_layouts():
  childes = data_path("babylm_text", "train_600k", "childes_dev.train")  # tags mid-line
  switchboard = data_path("babylm_text", "train_10M", "switchboard.train")  # tags at line start
  kept = "\n".join(_docs(childes))
  assert kept.count("*MOT:") > 100
  stripped = "\n".join(_docs(childes, clean.CleanSettings(strip_speaker_tags=True)))
  assert not re.search(r"(?<!\S)\*[A-Z][A-Z0-9]*:(?!\S)", stripped)
  assert len(stripped.split()) == len(kept.split()) - len(
      re.findall(r"(?<!\S)\*[A-Z][A-Z0-9]*:(?!\S)", kept))
  sw_kept = "\n".join(_docs(switchboard))
  sw_stripped = "\n".join(_docs(switchboard, clean.CleanSettings(strip_speaker_tags=True)))
  n_tags = len(re.findall(r"(?m)^[AB]:", sw_kept))
  assert n_tags > 10_000
  assert not re.search(r"(?m)^[AB]:", sw_stripped)
  assert len(sw_stripped.split()) == len(sw_kept.split()) - n_tags


def test_blank_lines_are_boundaries():
  path = data_path("babylm_text", "dev_bb25_small", "bb25_small.dev")
  text = path.read_text(encoding="utf-8")
  n_blank_runs = len(re.findall(r"\n[^\S\n]*\n\s*", text))
  assert n_blank_runs > 100
  docs = _docs(path, clean.CleanSettings(wiki_headings_as_boundaries=False,
                                         max_doc_chars=10**9))
  assert len(docs) == n_blank_runs + 1 - text.lstrip().startswith("\n")
  joined = _docs(path, clean.CleanSettings(wiki_headings_as_boundaries=False,
                                           blank_lines_as_boundaries=False,
                                           max_doc_chars=10**9))
  assert len(joined) == 1


def test_long_documents_are_cut_at_whitespace_without_losing_words():
  path = data_path("babylm_text", "train_600k", "childes_dev.train")
  whole = _docs(path, clean.CleanSettings(max_doc_chars=10**9))
  cut = _docs(path, clean.CleanSettings(max_doc_chars=5000))
  assert len(cut) > 3 * len(whole)
  assert all(len(d) <= 5000 for d in cut)
  assert " ".join(cut).split() == " ".join(whole).split()


def test_word_counts_match_str_split():
  path = data_path("babylm_text", "train_600k", "gutenberg_dev.train")
  raw = {}
  docs = _docs(path, raw=raw)
  text = path.read_text(encoding="utf-8")
  assert raw == {"gutenberg_dev": len(text.split())}
  assert sum(clean.count_words(d) for d in docs) == sum(len(d.split()) for d in docs)
  odd = "a\u00a0b\u2028c\td  e\u3000f \x1c g\r\nh"
  assert clean.count_words(clean.normalize(odd)) == len(odd.split())


def test_non_utf8_bytes_are_replaced_and_counted(tmp_path):
  good = data_path("babylm_text", "train_100k", "gutenberg_dev.train").read_bytes()[:5000]
  path = tmp_path / "bad.train"
  path.write_bytes(good[:1000] + b"\xff\xfe" + good[1000:3000] + b"\xc3" + b" " + good[3000:])
  sources.take_replaced()
  docs = _docs(path, block_bytes=1001)  # a block boundary next to the bad bytes
  assert sources.take_replaced() == 3
  assert "".join(docs).count("\ufffd") == 3


def test_tfds_spec_parsing_and_missing_package():
  assert sources.parse_tfds_spec("tfds:wikipedia/20230601.en:train") == (
      "wikipedia/20230601.en", "train")
  assert sources.parse_tfds_spec("tfds:lm1b") == ("lm1b", "train")
  assert sources.parse_tfds_spec("tfds:c4/en:validation[:1%]") == ("c4/en", "validation[:1%]")
  with pytest.raises(sources.DataError, match="not a TFDS spec"):
    sources.parse_tfds_spec("tfds:")
  try:
    import tensorflow_datasets  # noqa: F401
    pytest.skip("tensorflow-datasets is installed; the missing-package error cannot show")
  except ImportError:
    pass
  from babylm_jax.config import base_config
  with pytest.raises(sources.UserError, match=r"pip install 'babylm_jax\[tfds\]'"):
    sources.resolve("tfds:lm1b:train", base_config())
