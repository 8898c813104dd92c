"""State stores: where a rollout's state and its audit log live.

The interface (``api``: ``StateStore``, change sets, fences), SQLite (``sqlite``, ``sqlite_apply``,
``schema``), DynamoDB (``dynamo``, ``dynamo_replica``, ``dynamo_commit``, ``dynamo_io``,
``dynamo_create``, ``dynamo_items``), the row codecs (``rows``), the driver's lease (``lease``), and ``factory``,
which opens a store from its ``--state`` URL.

May import: ``rollout.core``, ``rollout.plan`` and the foundation. Never a backend, the driver or
a face.
"""
