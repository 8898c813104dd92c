"""The AWS backend: moves devices through each site's identity store group and SSM documents, and
reads their check-ins and alarms (``rollout.backends.aws.backend``). Only ``rollout.backends.aws.calls`` talks to
botocore's errors; only ``rollout.backends.aws.pulumi_cli`` runs the Pulumi CLI."""
