"""Drop-in synthetic-set backends for other dataset-distillation code.

Each adapter puts a :class:`ddfast.SyntheticSet` behind an interface DD codebases already call,
so a loop changes a few lines, not its method:

- :class:`TensorPool`: DD-RUO's ``get_data`` / ``fill_data_diff`` / ``backward(lr_it, ldb_it)``,
  one fused forward and backward of all slices underneath;
- :class:`SynSet`: FreD/DDiF's ``init`` / ``get(indices)`` / ``optim_zero_grad`` / ``optim_step``,
  decoding only the slices that hold the requested images;
- :class:`MTTSet`: mtt-distillation's ``image_syn`` and learnable ``syn_lr``, one ``step()`` for both.

Layer: the interface layer at the top, beside the CLI (it imports ``codec``, ``distill`` and,
for ``TensorPool.quantize_net``, ``coding``); nothing else in the package imports it.
"""
from ddfast.integrations.mtt import MTTSet
from ddfast.integrations.synset import SynSet
from ddfast.integrations.tensor_pool import TensorPool

__all__ = ["MTTSet", "SynSet", "TensorPool"]
