"""The ``fastllm`` command line: ``run``, ``demo``, ``mock-server``, ``cache`` and ``split``.

The entry point is :func:`fastllm.cli.main.main` (the ``fastllm`` console script,
also ``python -m fastllm.cli`` and ``python -m fastllm.cli.main``); the click group
is :data:`fastllm.cli.main.cli`. Nothing is imported here, so running the
``main`` module with ``-m`` does not import it twice.
"""
