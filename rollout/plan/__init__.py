"""The planner: files in, an immutable plan out. Pure functions of (inventory, policy).

Inventory decoding and loading, the rollout policy, cohorts and canaries, wave assignment, the
schedule, infeasibility reasons, plan explanations and diffs, the plan file, the fleet generator,
and ``api``: the verbs the faces call to plan.

May import: ``rollout.core`` and the foundation (``rollout.errors``, ``files``, ``logs``,
``templating``). Never a store, a backend, the driver or a face.
"""
