r"""Registering, loading and pickling parametrized tensors of ``cwy_manifolds.nn``.

Note [configuration on load]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~
A state dict holds the free tensor, whose meaning depends on the configuration (method,
determinant, number of reflections, shape, ``flatten``): the same vectors loaded into
``det=+1`` instead of ``det=-1`` stand for another matrix. So the parametrization saves
its configuration as extra state (``parametrizations.<name>.<i>._extra_state``, plain
data, fine for ``torch.load(weights_only=True)``), and a load pre-hook on the
``ParametrizationList`` compares it *before* the free tensor is copied: a different
configuration raises ``ValueError`` naming both (also with ``strict=False``: it is a
corruption, not a missing key), and a different layout (Note [free tensor layout]) is
converted. Checkpoints without the record (written before it existed) load unchecked.
Modules that torch itself re-registered (``transfer_parametrizations_and_params``) have
no hook; there ``set_extra_state`` makes the same check, after the copy.

Note [meta tensors]
~~~~~~~~~~~~~~~~~~~
Meta tensors have no values. Registration, ``right_inverse`` and the layers'
initialisation read none on the meta device (no projection, no checks, no random draw),
so a model can be built with ``device="meta"`` (or under ``torch.device("meta")``), moved
with ``to_empty`` and initialised with ``reset_parameters()``, as torch's layers are.

Note [pickling layers]
~~~~~~~~~~~~~~~~~~~~~~
PyTorch refuses to pickle a parametrized module (its class is made on the fly). The
layers of ``cwy_manifolds.nn`` pickle their instance dictionary and, when unpickled,
register placeholder parametrizations through the public API to get the class and
properties back, then put the saved ``ParametrizationList`` in place: everything the
module held (hooks, attributes, parameter types) survives.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ._map import Orthogonal

__all__ = ["PicklableParametrized", "adopt", "attach", "upgrade_old_keys"]


def attach(module: nn.Module, name: str, parametrization: Orthogonal) -> None:
    """Register ``parametrization`` on ``module.<name>`` with the load check (Notes)."""
    parametrize.register_parametrization(module, name, parametrization, unsafe=True)
    module.parametrizations[name].register_load_state_dict_pre_hook(_check_on_load)


def adopt(module: nn.Module, name: str, free: nn.Parameter, parametrization: Orthogonal) -> None:
    """Register ``parametrization`` with the free tensor ``free`` taken as it is.

    For the layers, which make their free tensor themselves: a placeholder on the meta
    device is registered through the public API and then replaced by ``free`` and
    ``parametrization``, so no ``right_inverse`` runs on uninitialised memory.
    """
    module.register_buffer(name, torch.empty(parametrization.shape, device="meta"))
    parametrize.register_parametrization(module, name, _Identity(), unsafe=True)
    plist = module.parametrizations[name]
    plist[0] = parametrization
    plist.original = free
    plist.register_load_state_dict_pre_hook(_check_on_load)


class _Identity(nn.Module):
    """Placeholder parametrization (no ``right_inverse``: the identity to PyTorch)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _check_on_load(
    plist: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    *args: object,
) -> None:
    """Load pre-hook of a ``ParametrizationList`` (Note [configuration on load])."""
    for index, module in enumerate(plist):
        if not isinstance(module, Orthogonal):
            continue
        key = f"{prefix}{index}._extra_state"
        saved = state_dict.get(key)
        if saved is None:  # a checkpoint from before the record: trusted
            state_dict[key] = module.configuration()
            continue
        module.check_configuration(saved, where=prefix)
        layout = saved.get("layout", module.layout)
        if layout != module.layout and index == 0 and prefix + "original" in state_dict:
            state_dict[prefix + "original"] = module.convert(
                state_dict[prefix + "original"], layout
            )
            state_dict[key] = {**saved, "layout": module.layout}


def _upgrade(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    *args: object,
    old: str,
    name: str,
) -> None:
    old_key = prefix + old
    if old_key not in state_dict:
        return
    new = f"{prefix}parametrizations.{name}."
    state_dict[new + "original"] = state_dict.pop(old_key)
    config = module.parametrizations[name][0].configuration()
    state_dict.setdefault(new + "0._extra_state", {**config, "layout": "point"})


def upgrade_old_keys(module: nn.Module, old: str, name: str) -> None:
    """Load state dicts of the layers before they used parametrize (``<old>``, point layout)."""
    module.register_load_state_dict_pre_hook(functools.partial(_upgrade, old=old, name=name))


def _rebuild(cls: type, state: dict[str, Any]) -> nn.Module:
    """Unpickle a parametrized layer (Note [pickling layers])."""
    module = cls.__new__(cls)
    modules = dict(state["_modules"])
    saved = modules.pop("parametrizations")
    module.__dict__.update({**state, "_modules": modules})
    for name, plist in saved.items():
        module.register_buffer(name, torch.empty(0, device="meta"))
        parametrize.register_parametrization(module, name, _Identity(), unsafe=True)
        module.parametrizations[name] = plist
    return module


class PicklableParametrized:
    """Mixin of the layers: pickling works although they are parametrized (Note)."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        if not isinstance(self, nn.Module) or not parametrize.is_parametrized(self):
            return super().__reduce_ex__(protocol)
        return _rebuild, (parametrize.type_before_parametrizations(self), dict(self.__dict__))
