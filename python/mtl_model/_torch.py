"""`from_torch`: the tensors dict of MODEL.md names from a PyTorch module (or its state dict)
and optimizer, ready for `save`. torch is optional: the package works without it, and this
function works on a state dict of numpy arrays too."""
from collections.abc import Mapping

import numpy as np

from . import config as _config
from ._errors import MTLModelError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
INSTALL_HINT = ("torch is not installed: pip install torch --index-url https://download.pytorch.org/whl/cpu "
                "(or pass a state dict of numpy arrays)")
# torch state that MODEL.md has no tensor for: BatchNorm's batch counter.
_DROPPED_SUFFIXES = (".num_batches_tracked",)


def from_torch(module_or_state_dict, config, optimizer=None, counts=None, rename=None,
               strip_prefix=WRAPPER_PREFIXES, float32=False):
    """The tensors of ``module_or_state_dict`` under MODEL.md's names, as numpy arrays.

    - Names: each prefix of ``strip_prefix`` (a string or a sequence; default the DDP and
      ``torch.compile`` wrappers ``module.`` and ``_orig_mod.``) is removed, repeatedly, then
      the first matching prefix of ``rename`` ({FROM: TO}) is replaced. BatchNorm's
      ``num_batches_tracked`` counters are dropped (MODEL.md has no such tensor).
    - Dtypes: float16 parameters stay float16 (``float32=True`` widens them); bfloat16, which
      numpy lacks, becomes float32 (exact); half-precision buffers (batch norm's running
      statistics, which `.half()` halves too) become float32, as the format wants them.
      Keys are the int64 bits of the ids.
    - ``optimizer``: a ``torch.optim`` optimizer over the module's parameters (or its
      ``state_dict()``, whose parameter indices follow ``module.named_parameters()``). Its
      per-parameter state becomes ``optimizer.{param}.{slot}`` for the slots of the config's
      optimizer type, and the largest per-parameter ``step`` becomes ``optimizer.step``.
    - ``counts``: {field: array of row counts} → ``stats.{field}.count``.
    """
    normalized = _config.normalize(config)
    prefixes = (strip_prefix,) if isinstance(strip_prefix, str) else tuple(strip_prefix or ())
    rename = dict(rename or {})

    def mapped(name):
        stripped = True
        while stripped:
            stripped = False
            for prefix in prefixes:
                if prefix and name.startswith(prefix):
                    name, stripped = name[len(prefix):], True
        for source, target in rename.items():
            if name.startswith(source):
                return target + name[len(source):]
        return name

    state = _state_dict(module_or_state_dict)
    tensors = {}
    for name, value in state.items():
        if name.endswith(_DROPPED_SUFFIXES):
            continue
        new = mapped(name)
        if new in tensors:
            raise MTLModelError("invalid_argument", 'two tensors become "%s" after renaming (one is "%s")' % (new, name), tensor=new)
        tensors[new] = _numpy(value, float32)
    if optimizer is not None:
        tensors.update(_optimizer_state(module_or_state_dict, optimizer, normalized, mapped, float32))
    for field, values in (counts or {}).items():
        tensors["stats.%s.count" % field] = _numpy(values, False).astype(np.int64)
    # Only parameters may be half precision in the format: `.half()` also halves batch norm's
    # running statistics, which go back to float32 (exactly).
    for spec in _config.all_specs(normalized):
        array = tensors.get(spec.name)
        if spec.role != "parameter" and spec.dtype == "float32" and array is not None and array.dtype == np.float16:
            tensors[spec.name] = array.astype(np.float32)
    return tensors


def _state_dict(source):
    if isinstance(source, Mapping):
        return source
    if hasattr(source, "state_dict"):
        return source.state_dict()
    import importlib.util
    hint = "; " + INSTALL_HINT if importlib.util.find_spec("torch") is None else ""
    raise MTLModelError("invalid_argument", "from_torch takes a torch.nn.Module or a state dict (name → tensor), not %s%s"
                        % (type(source).__name__, hint))


def _numpy(value, float32):
    if hasattr(value, "detach"):  # a torch tensor
        import torch
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16 or (float32 and value.dtype == torch.float16):
            value = value.float()
        return value.contiguous().numpy()
    array = np.asarray(value)
    return array.astype(np.float32) if float32 and array.dtype == np.float16 else array


def _optimizer_state(module, optimizer, config, mapped, float32):
    if "optimizer" not in config:
        raise MTLModelError("invalid_config", 'an optimizer was given but the config has no optimizer section: add '
                            '"optimizer": {"type": "adagrad"} (or adam, ftrl, sgd) to the config', key="optimizer")
    slots = _config.OPTIMIZER_SLOTS[config["optimizer"]["type"]]
    names = _parameter_names(module, optimizer)
    state = optimizer.state_dict()["state"] if hasattr(optimizer, "state_dict") else optimizer["state"]
    tensors, steps = {}, []
    for index, name in names.items():
        param_state = state.get(index)
        if param_state is None:
            raise MTLModelError("invalid_argument", 'the optimizer holds no state for parameter "%s" (index %d): '
                                'has it taken a step?' % (name, index), tensor=name)
        for slot in slots:
            if slot not in param_state:
                raise MTLModelError("invalid_argument", 'the optimizer state of "%s" has no "%s" (it has: %s): is the '
                                    "config's optimizer type (%s) the one trained with?" % (
                                        name, slot, ", ".join(sorted(param_state)), config["optimizer"]["type"]), tensor=name)
            tensors["optimizer.%s.%s" % (mapped(name), slot)] = _numpy(param_state[slot], float32)
        if "step" in param_state:
            steps.append(int(float(_numpy(param_state["step"], True).reshape(-1)[0])))
    tensors["optimizer.step"] = np.array([max(steps) if steps else 0], dtype=np.int64)
    return tensors


def _parameter_names(module, optimizer):
    """{optimizer parameter index: parameter name}: by identity for a live optimizer of a live
    module, else by the order of ``module.named_parameters()``."""
    if not hasattr(module, "named_parameters"):
        raise MTLModelError("invalid_argument", "optimizer state needs the module (not only its state dict): its "
                            "parameter names say which state is whose")
    named = list(module.named_parameters())
    if hasattr(optimizer, "param_groups"):
        by_id = {id(p): n for n, p in named}
        params = [p for group in optimizer.param_groups for p in group["params"]]
        missing = [i for i, p in enumerate(params) if id(p) not in by_id]
        if missing:
            raise MTLModelError("invalid_argument", "the optimizer's parameter %d is not a parameter of the module" % missing[0])
        return {i: by_id[id(p)] for i, p in enumerate(params)}
    indices = [i for group in optimizer["param_groups"] for i in group["params"]]
    if len(indices) != len(named):
        raise MTLModelError("invalid_argument", "the optimizer state has %d parameters, the module %d" % (len(indices), len(named)))
    return {i: n for i, (n, _) in zip(indices, named)}
