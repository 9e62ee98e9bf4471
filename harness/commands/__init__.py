"""CLI subcommands: one module per command, discovered by ``harness.__main__``.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code).
Modules import nothing heavy at import time (torch is imported inside ``run``), so ``--help`` stays instant.
"""
