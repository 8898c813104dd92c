"""Running zt-rollout's AWS code paths with no AWS account: moto on loopback, the site resources a
stack would create, and simulated devices that answer the kitting document (``rollout demo --aws-local``)."""
