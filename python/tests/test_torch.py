"""`from_torch` on a real torch.nn.Module and torch.optim optimizers (skipped without torch),
and on a state dict of numpy arrays (always)."""
import numpy as np
import pytest

import mtl_model
from conftest import fixture


def small():
    m = mtl_model.load(fixture("v1.0", "small-training.mtlm"))
    serving = {n: np.array(m[n]) for n in m if m.tensors[n].role in ("parameter", "buffer", "keys")}
    return serving, m.config


def test_a_numpy_state_dict_with_wrapper_prefixes_and_renames(tmp_path):
    tensors, config = small()
    state = {"module._orig_mod." + name.replace("embedding.", "emb."): a for name, a in tensors.items()}
    state["module._orig_mod.shared.0.bn.num_batches_tracked"] = np.array(5)
    out = mtl_model.from_torch(state, config, rename={"emb.": "embedding."})
    assert sorted(out) == sorted(tensors)
    assert mtl_model.load(mtl_model.save(tmp_path / "m.mtlm", out, config)).verify().valid


def test_what_is_not_a_module_or_a_state_dict_is_refused():
    tensors, config = small()
    with pytest.raises(mtl_model.MTLModelError, match="takes a torch.nn.Module or a state dict"):
        mtl_model.from_torch([1, 2], config)


def test_optimizer_state_needs_an_optimizer_section():
    tensors, config = small()
    config.pop("optimizer")
    with pytest.raises(mtl_model.MTLModelError, match="no optimizer section"):
        mtl_model.from_torch(tensors, config, optimizer={"state": {}, "param_groups": []})


torch = pytest.importorskip("torch", reason="torch is not installed (scripts/install-deps.sh installs a CPU wheel when one is at hand)")


class Holder(torch.nn.Module):
    """A module whose parameter and buffer names are exactly MODEL.md's (as a trainer's are)."""

    def __init__(self, tensors, roles):
        super().__init__()
        for name, array in tensors.items():
            *path, leaf = name.split(".")
            module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            value = torch.from_numpy(array.copy())
            if roles[name] == "parameter":
                module.register_parameter(leaf, torch.nn.Parameter(value))
            else:
                module.register_buffer(leaf, value)


def trained(optimizer_type, tensors, config):
    m = mtl_model.load(fixture("v1.0", "small-training.mtlm"))
    roles = {n: m.tensors[n].role for n in tensors}
    module = Holder(tensors, roles)
    optimizer = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[optimizer_type](module.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        sum(p.square().sum() for p in module.parameters()).backward()
        optimizer.step()
    config = dict(config, optimizer={"type": optimizer_type, "lr": 0.01})
    return module, optimizer, config


@pytest.mark.parametrize("kind", ["adagrad", "adam"])
def test_a_module_and_its_optimizer(kind, cli, tmp_path):
    tensors, config = small()
    module, optimizer, config = trained(kind, tensors, config)
    counts = {f["name"]: np.arange(f["vocab_size"], dtype=np.int64) for f in config["fields"]}
    wrapped = torch.nn.Module()
    wrapped.add_module("module", module)  # as DistributedDataParallel names it
    state = dict(wrapped.state_dict())
    state["loss.log_var"] = torch.zeros(len(config["tasks"]))
    out = mtl_model.from_torch(state, config, counts=counts)
    out.update({k: v for k, v in mtl_model.from_torch(module, config, optimizer=optimizer).items() if k.startswith("optimizer.")})
    path = mtl_model.save(tmp_path / "m.mtlm", out, config)
    m = mtl_model.load(path)
    assert m.verify().valid and m.form == "training"
    assert cli("verify", path)[0] == 0
    slots = {"adagrad": ["sum"], "adam": ["exp_avg", "exp_avg_sq"]}[kind]
    for name, parameter in module.named_parameters():
        assert np.array_equal(m[name], parameter.detach().numpy())
        for slot in slots:
            assert np.array_equal(m["optimizer.%s.%s" % (name, slot)], optimizer.state[parameter][slot].numpy())
    assert m["optimizer.step"].tolist() == [3]
    # The optimizer's state_dict (indices in named_parameters order) gives the same.
    again = mtl_model.from_torch(module, config, optimizer=optimizer.state_dict())
    assert all(np.array_equal(again[k], m[k]) for k in again)


def test_half_precision_weights(tmp_path):
    tensors, config = small()
    m = mtl_model.load(fixture("v1.0", "small-training.mtlm"))
    module = Holder(tensors, {n: m.tensors[n].role for n in tensors})
    half = mtl_model.from_torch(module.half(), config)
    keys = "embedding.item_id.keys"
    assert half["embedding.user_id.weight"].dtype == np.float16 and half[keys].dtype == np.int64
    # bfloat16 has no numpy dtype: it becomes float32, exactly.
    bf = Holder(tensors, {n: m.tensors[n].role for n in tensors})
    for p in bf.parameters():
        p.data = p.data.bfloat16()
    wide = mtl_model.from_torch(bf, config)
    assert wide["embedding.user_id.weight"].dtype == np.float32
    assert np.array_equal(wide["embedding.user_id.weight"], torch.from_numpy(tensors["embedding.user_id.weight"]).bfloat16().float().numpy())
    as32 = mtl_model.from_torch(module, config, float32=True)
    assert as32["embedding.user_id.weight"].dtype == np.float32
    for out in (half, wide, as32):
        half_model = mtl_model.load(mtl_model.save(tmp_path / "h.mtlm", {k: v for k, v in out.items()}, config))
        assert half_model.verify().valid


def test_a_missing_slot_says_which_optimizer_it_has(tmp_path):
    tensors, config = small()
    module, optimizer, config = trained("adagrad", tensors, config)
    config["optimizer"] = {"type": "adam"}
    with pytest.raises(mtl_model.MTLModelError, match='has no "exp_avg" \\(it has: step, sum\\)'):
        mtl_model.from_torch(module, config, optimizer=optimizer)
