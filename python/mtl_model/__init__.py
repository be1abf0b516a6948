"""Read and write `.mtlm` multi-task ranking models from Python (numpy, no compiled code).

    import mtl_model
    m = mtl_model.load("model.mtlm")          # header, footer, manifest checked
    m.config, m.metadata, m.form, m.tensors   # the architecture, metadata, tensor directory
    w = m["embedding.user_id.weight"]         # zero-copy read-only numpy view
    m.decode("embedding.user_id.weight")      # float32 of any float dtype (int8, int4, bf16)
    m.verify().problems                       # what `mtl-model verify` reports

    mtl_model.save("out.mtlm", tensors, config)                      # atomic, validated
    mtl_model.save("out.mtlm", mtl_model.from_torch(module, config), config)

A second implementation of docs/FORMAT.md, independent of the Swift tool (docs/PYTHON.md).
"""
from ._errors import MTLModelError
from ._format import ReadLimits
from ._model import Model, load
from ._torch import from_torch
from ._verify import Problem, VerifyReport
from ._writer import save
from .config import normalize as normalize_config, all_specs as tensor_specs

__version__ = "0.1.0"
__all__ = ["load", "save", "from_torch", "Model", "MTLModelError", "ReadLimits", "Problem", "VerifyReport",
           "normalize_config", "tensor_specs", "__version__"]
