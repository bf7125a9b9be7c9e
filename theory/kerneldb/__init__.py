"""Predict a GPU from a published measured kernel database (aiconfigurator-core), no GPU needed.

Nothing here imports pandas or pyarrow at module import: `theory` stays fast and torch-free. The tables are read
only when `--kernel-db` is used, and a missing extra is one line saying how to install it.

- spec.py: the `--kernel-db aiconfigurator[:backend[@version]]` spec and the preset -> system table;
- tables.py: finding the database's files and reading them (parquet, or CSV fixtures of the same columns);
- interp.py: a kernel's time at a shape between (or beyond) the grid's points;
- compose.py: every op of theory's table mapped to a database row or derived from it;
- cli.py: `python -m theory --hardware <preset> --kernel-db ...`.
"""
from theory.kerneldb.spec import KernelDbSpec, SYSTEMS, parse_spec, system_for

__all__ = ["KernelDbSpec", "SYSTEMS", "parse_spec", "system_for"]
