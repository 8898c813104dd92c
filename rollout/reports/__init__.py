"""The faces that people read: status, the HTML and markdown report, plan and diff rendering, the
pull request comment, and the notices to employees.

May import: ``rollout.drive`` and everything below it. Never ``rollout.cli``.
"""
