"""The pure core: the rollout's values and rules, with no I/O, no clock and no AWS.

The model (phases, transitions), device records and selectors, gates and their reasons, approvals,
the engine's ``decide``, the migration timeline, the audit chain's hashing, and the contract with
the site stacks (``contract``, ``permissions``), which ``stacks/`` imports too.

May import: the standard library, pydantic, and ``rollout.errors``. Nothing else of ``rollout``.
"""
