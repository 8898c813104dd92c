"""zt-rollout: stage a device fleet's move to zero trust in waves, with gates, approvals and rollback."""

__version__ = "0.1.0"
