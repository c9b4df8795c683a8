"""notebooks/explore.ipynb runs top to bottom, headless, and draws what it promises.

The notebook trains the smoke model for a short while on the real text sample, so this is the
slowest test of the export area (about a minute and a half on two cores); it still runs in CI.
"""

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import DATA, ROOT, data_path

NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"


@pytest.mark.slow
def test_notebook_runs_headless(monkeypatch, tmp_path):
  data_path("babylm_text", "train_100k")
  data_path("blimp")
  monkeypatch.setenv("BABYLM_DATA", str(DATA))
  monkeypatch.setenv("EXPLORE_STEPS", "120")
  monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's workdir goes with the test
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(NOTEBOOK.parent)}})
  client.execute()  # raises CellExecutionError on the first failing cell
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  # The batch drawing, the loss curve, the layer-weight heatmap and the BLiMP scores.
  assert len(images) >= 4
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  assert "causal:" in text and "mntp:" in text and "pairs right" in text
