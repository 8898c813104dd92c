"""The AWS backend: moves devices through each site's identity store group and SSM documents, and
reads their check-ins and alarms (``rollout.aws.backend``). Only ``rollout.aws.calls`` talks to
botocore's errors; only ``rollout.aws.pulumi_cli`` runs the Pulumi CLI."""
