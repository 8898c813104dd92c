"""zt-rollout: stage a device fleet's move to zero trust in waves, with gates, approvals and rollback.

The package is in layers; each imports only from the layers below it (``tests/test_layers.py``
checks this, and that no import circle exists):

====================  ==========================================================================
``rollout.cli``       the faces: the click commands and the demo (top)
``rollout.reports``   the faces people read: status, report, plan and diff rendering, notices
``rollout.drive``     the shell around the engine: driver, recorder, operations, rehearsal
``rollout.backends``  who moves devices: the simulator, AWS (``backends.aws``)
``rollout.store``     where state lives: SQLite, DynamoDB, the lease
``rollout.plan``      inventory, policy and the planner: pure functions of files
``rollout.core``      pure values and rules: model, engine, gates, approvals, audit hashing, contract
foundation            ``errors``, ``files``, ``logs``, ``faults``, ``templating`` (bottom)
====================  ==========================================================================

``rollout.awslocal`` (AWS emulated by moto on loopback) is a test and demo harness beside them:
it may import any layer up to ``backends``, and only the demo (``rollout.cli.demo_aws``) and the
tests import it.
"""

__version__ = "0.1.0"
