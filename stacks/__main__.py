"""zt-rollout site stack: read the site's config, wire the components, export the contract.

One stack per site (``pulumi up --stack tokyo``). The stack outputs are exactly the fields of
``rollout.core.contract.SiteContract``, and the same JSON is published as ``/zt-rollout/<site>/contract``.
"""

import sys
from pathlib import Path

# Pulumi runs this directory as a script (sys.path[0] is stacks/); make the repository importable so
# that `stacks.*` and `rollout.*` resolve the same way here, under mypy and in the tests.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import pulumi  # noqa: E402
import pulumi_aws  # noqa: E402

from rollout.core.contract import SCHEMA_VERSION, DEVICE_SITE_TAG_KEY, contract_parameter_name  # noqa: E402
from stacks.config import PROJECT, load_site_config  # noqa: E402
from stacks.endpoint import EndpointArgs, EndpointComponent  # noqa: E402
from stacks.identity import IdentityArgs, IdentityComponent  # noqa: E402
from stacks.orchestrator import OrchestratorArgs, OrchestratorComponent  # noqa: E402
from stacks.publication import ContractArgs, ContractParameter  # noqa: E402
from stacks.sase import SaseArgs, SaseComponent  # noqa: E402

_project, _aws = pulumi.Config(PROJECT), pulumi.Config("aws")
config = load_site_config(
    lambda key: (_aws if key.startswith("aws:") else _project).get(key.partition(":")[2]),
    stack=pulumi.get_stack(),
)
site = config.site
parameter_name = contract_parameter_name(site)

# IAM Identity Center's home region, and with it Verified Access (stacks/README.md, "Regions").
home = (pulumi_aws.Provider(f"{site}-identity-center", region=config.identity_region)
        if config.identity_region != config.region else None)
identity = IdentityComponent(
    site,
    IdentityArgs(site=site, site_kind=config.site_kind.value, identity_store_id=config.identity_store_id,
                 home_provider=home),
)
endpoint = EndpointComponent(site, EndpointArgs(config=config, access_provider=home))
sase = SaseComponent(
    site,
    SaseArgs(
        config=config,
        migrated_group_id=identity.migrated_group_id,
        user_trust_provider_id=identity.user_trust_provider_id,
        device_trust_provider_id=endpoint.device_trust_provider_id,
        access_provider=home,
    ),
)
orchestrator = OrchestratorComponent(
    site,
    OrchestratorArgs(
        config=config,
        pilot_group_id=identity.pilot_group_id,
        migrated_group_id=identity.migrated_group_id,
        kitting_document_name=endpoint.kitting_document_name,
        rollback_document_name=endpoint.rollback_document_name,
        checkin_table_name=endpoint.checkin_table_name,
        alarm_names=(endpoint.kitting_failure_alarm_name, endpoint.sign_in_failure_alarm_name),
        contract_parameter_name=parameter_name,
    ),
)

contract_fields = {
    "schema_version": SCHEMA_VERSION,
    "site": site,
    "region": config.region,
    "identity_store_id": config.identity_store_id,
    "identity_store_region": config.identity_region,
    "pilot_group_id": identity.pilot_group_id,
    "migrated_group_id": identity.migrated_group_id,
    "kitting_document_name": endpoint.kitting_document_name,
    "rollback_document_name": endpoint.rollback_document_name,
    "checkin_table_name": endpoint.checkin_table_name,
    "kitting_failure_alarm_name": endpoint.kitting_failure_alarm_name,
    "sign_in_failure_alarm_name": endpoint.sign_in_failure_alarm_name,
    "verified_access_group_id": sase.verified_access_group_id,
    "orchestrator_role_arn": orchestrator.role_arn,
    "contract_parameter_name": parameter_name,
    "device_tag_key": DEVICE_SITE_TAG_KEY,
}
ContractParameter(
    site,
    ContractArgs(site=site, site_kind=config.site_kind.value, parameter_name=parameter_name, fields=contract_fields),
)
for output_name, value in contract_fields.items():
    pulumi.export(output_name, value)
