"""The ``rollout`` command (click): each command parses, calls one library function, prints.

``main`` is the group and the entry point; its commands load their modules only when they run, so
``rollout --help`` and ``rollout status`` start fast. ``demo`` and ``demo_aws`` are the main job on
embedded defaults.

May import: everything else in ``rollout``, including the local AWS emulation (``rollout.awslocal``),
which only the demo starts.
"""
