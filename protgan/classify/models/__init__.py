"""The model registry and every registered architecture (importing this package registers them)."""

from protgan.classify.models.registry import (
    Classifier, ModelSpec, create_model, get_spec, list_models, load_weights, register_model,
)
from protgan.classify.models import backbones as _backbones  # noqa: F401,E402
from protgan.classify.models import efficientnet_lite as _efficientnet_lite  # noqa: F401,E402
from protgan.classify.models import nasnet_mobile as _nasnet_mobile  # noqa: F401,E402
from protgan.classify.models import paper_models as _paper_models  # noqa: F401,E402

__all__ = ["Classifier", "ModelSpec", "create_model", "get_spec", "list_models", "load_weights", "register_model"]
