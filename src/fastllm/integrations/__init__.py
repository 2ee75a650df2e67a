"""Integrations with other frameworks, each in its own module, imported on demand.

* :mod:`fastllm.integrations.ray` — Ray Data: ``Dataset.map_batches(FastLLMMapper, ...)``
  and :func:`~fastllm.integrations.ray.run_dataset` (needs ``fastllm-kit[ray]``;
  a shared cache across actors needs ``fastllm-kit[redis]``).

Nothing is imported here, so ``import fastllm.integrations`` costs nothing.
"""
