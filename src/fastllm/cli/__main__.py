"""``python -m fastllm.cli``: the ``fastllm`` command."""

from fastllm.cli.main import main

if __name__ == "__main__":
    main()
