"""The mesh, parameter shardings and the sharded step on 8 virtual CPU devices.

The device count is fixed when jax starts, so the 8-device part runs in a subprocess with
--xla_force_host_platform_device_count=8; it writes each mesh's loss and parameters (and the
bootstrap teacher) after one step to a file that this process compares, for every objective.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from babylm_jax.errors import ConfigError
from babylm_jax.train import sharding
from conftest import TEST_XLA_FLAGS
from tests.test_step import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
MESHES = [(8, 1, 1), (2, 4, 1), (2, 2, 2)]

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jax.sharding import PartitionSpec as P
    from babylm_jax.config import derive
    from babylm_jax.train import sharding, step as step_lib
    from tests.test_objectives import objective_batch
    from tests.test_step import tiny_config

    out_dir = sys.argv[1]
    assert jax.device_count() == 8, jax.devices()
    specs = {}
    # The variant: standard attention, rotary positions, GELU FFN, plain pre-LN, head dropout.
    variant = dict(attention="standard", position="rotary", ffn="gelu", normformer=False,
                   head_dropout=0.1)
    cases = [("one", (1, 1, 1), {}, "hybrid"), ("8x1x1", (8, 1, 1), {}, "hybrid"),
             ("2x4x1", (2, 4, 1), {}, "hybrid"), ("2x2x2", (2, 2, 2), {}, "hybrid"),
             ("variant_one", (1, 1, 1), variant, "hybrid"),
             ("variant_2x2x2", (2, 2, 2), variant, "hybrid")]
    # Each other objective on one device and on the 2x2x2 mesh (bootstrap: its teacher too).
    for kind in ("masked", "causal", "bootstrap"):
      model = dict(decoder_layers=1) if kind == "bootstrap" else {}
      cases += [(f"{kind}_one", (1, 1, 1), model, kind),
                (f"{kind}_2x2x2", (2, 2, 2), model, kind)]
    for name, shape, model, kind in cases:
      # Dropout on: its keys must not depend on the layout. A large Adam eps makes the first
      # update linear in the gradient, so parameters compare gradients, not their signs.
      c = tiny_config(tokens_per_step=512, eps=1e-3)
      c.model.dropout = 0.1
      c.model.update(model)
      c.objective.kind = kind
      c.mesh.data, c.mesh.fsdp, c.mesh.tensor = shape
      d = derive(c)
      batch = objective_batch(0, kind, B=16)
      devices = jax.devices()[:1] if name.endswith("one") else None
      mesh = sharding.make_mesh(c, devices)
      graphdef, state, shardings = step_lib.create_train_state(c, d, mesh)
      train_step = step_lib.make_train_step(c, d, graphdef, mesh, shardings)
      eval_step = step_lib.make_eval_step(c, graphdef, mesh, shardings)
      ev = jax.device_get(eval_step(state.params, sharding.global_batch(batch, mesh),
                                    state.teacher))
      state, m = train_step(state, sharding.global_batch(batch, mesh))
      m = jax.device_get(m)
      flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
              for path, v in jax.tree_util.tree_flatten_with_path(
                  jax.device_get({"params": state.params, "teacher": state.teacher}))[0]}
      flat["_loss"] = np.asarray(m["loss"])
      flat["_grad_norm"] = np.asarray(m["grad_norm"])
      flat["_eval_loss"] = np.asarray(ev["loss"])
      np.savez(f"{out_dir}/{name}.npz", **flat)
      attention_in = "qkv" if c.model.attention == "standard" else "qk"
      specs[name] = {
          "word": list(state.params["embedding"]["word"].sharding.spec),
          "up": list(state.params["ffn"][0]["up"]["kernel"].sharding.spec),
          "attention_in": list(
              state.params["attention"][0][attention_in]["kernel"].sharding.spec),
          "mu_word": list(state.opt_state[1][0].mu["embedding"]["word"].sharding.spec),
          "teacher_word": (list(state.teacher["embedding"]["word"].sharding.spec)
                           if state.teacher else None),
      }
    json.dump(specs, open(f"{out_dir}/specs.json", "w"))
""")


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  out = tmp_path_factory.mktemp("sharded")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count=8 {TEST_XLA_FLAGS}",
             PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                         os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return out


@pytest.mark.parametrize("name", ["8x1x1", "2x4x1", "2x2x2", "variant_2x2x2", "masked_2x2x2",
                                  "causal_2x2x2", "bootstrap_2x2x2"])
def test_sharded_step_matches_one_device(eight_devices, name):
  one = np.load(eight_devices / (name.replace("2x2x2", "one") + ".npz" if "_" in name
                                 else "one.npz"))
  got = np.load(eight_devices / f"{name}.npz")
  assert set(one.files) == set(got.files)
  for key in ("_loss", "_grad_norm", "_eval_loss"):
    np.testing.assert_allclose(got[key], one[key], rtol=1e-5, err_msg=key)
  for key in one.files:
    np.testing.assert_allclose(got[key], one[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_parameters_and_adam_moments_are_sharded_by_the_rules(eight_devices):
  specs = json.loads((eight_devices / "specs.json").read_text())
  assert specs["one"]["word"] == [None, None]
  assert specs["2x4x1"]["word"] == [None, "fsdp"]
  assert specs["2x2x2"]["word"] == ["tensor", "fsdp"]
  assert specs["2x2x2"]["up"] == ["fsdp", "tensor"]
  assert specs["2x2x2"]["mu_word"] == specs["2x2x2"]["word"]
  # The variant's own kernels (qkv, the GELU up-projection) are sharded by the same rules.
  assert specs["variant_2x2x2"]["attention_in"] == specs["2x2x2"]["attention_in"] == [
      "fsdp", "tensor"]
  assert specs["variant_2x2x2"]["up"] == ["fsdp", "tensor"]
  # The bootstrap teacher is sharded like the parameters it follows.
  assert specs["bootstrap_2x2x2"]["teacher_word"] == specs["2x2x2"]["word"]
  assert specs["2x2x2"]["teacher_word"] is None


def test_mesh_sizes_fill_and_fail_clearly():
  c = tiny_config()
  n = jax.device_count()
  assert sharding.mesh_shape(c, 8) == (8, 1, 1)
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, -1, 2
  assert sharding.mesh_shape(c, 8) == (2, 2, 2)
  with pytest.raises(ConfigError, match="config.mesh"):
    sharding.mesh_shape(c, 6)
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 3, 1, 1
  with pytest.raises(ConfigError, match="needs 3 devices"):
    sharding.mesh_shape(c, 8)
  c.mesh.data, c.mesh.fsdp = -1, -1
  with pytest.raises(ConfigError, match="at most one -1"):
    sharding.make_mesh(c)
  c.mesh.data, c.mesh.fsdp = -1, 1
  mesh = sharding.make_mesh(c)
  assert dict(mesh.shape) == {"data": n, "fsdp": 1, "tensor": 1}


def test_global_batch_assembles_the_rows():
  c = tiny_config()
  mesh = sharding.make_mesh(c)
  local = {"a": np.arange(8 * 3).reshape(8, 3), "b": np.arange(8) % 2 == 0}
  g = sharding.global_batch(local, mesh)
  np.testing.assert_array_equal(np.asarray(g["a"]), local["a"])
  assert g["a"].sharding.spec == sharding.batch_sharding(mesh).spec
