"""Where the orchestrator finds each site's contract (``rollout.core.contract.SiteContract``).

``--contracts SOURCE``:

- ``ssm`` or ``ssm:REGION[,REGION...]``: the SSM parameter ``/zt-rollout/<site>/contract`` that the
  site's stack publishes, read with boto3 (no Pulumi CLI in production). Each site's parameter is
  looked for in the regions given, in order (default: the AWS SDK's region).
- ``pulumi`` or ``pulumi:DIR``: ``pulumi stack output --json --stack <site>`` in the Pulumi project
  ``DIR`` (default: the current directory); see ``rollout.backends.aws.pulumi_cli``.
- ``DIR`` (or ``dir:DIR``): ``DIR/<site>.json`` files of the same shape.

Every source is validated by ``rollout.core.contract.load_contract``; a missing site or key is a
``SiteContractError`` that names the site, the source and the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rollout.core.contract import (
    ContractError,
    SiteContract,
    contract_parameter_name,
    load_contract,
    load_contract_file,
)
from rollout.errors import SiteContractError


def resolve_contracts(source: str, sites: Iterable[str], *,
                      ssm_client: Callable[[str | None], Any] | None = None) -> dict[str, SiteContract]:
    """The contract of every site in ``sites`` from ``source`` (see the module docstring)."""
    try:
        return {site: _one(source, site, ssm_client) for site in sorted(set(sites))}
    except ContractError as err:
        raise SiteContractError(str(err)) from None


def _one(source: str, site: str, ssm_client: Callable[[str | None], Any] | None) -> SiteContract:
    kind, _, rest = source.partition(":")
    if kind == "ssm":
        return _from_ssm(site, [r for r in rest.split(",") if r] or [None], ssm_client or _default_ssm)
    if kind == "pulumi":
        from rollout.backends.aws.pulumi_cli import stack_outputs

        return load_contract(stack_outputs(site, Path(rest or ".")), site=site, source=f"pulumi stack {site}")
    directory = Path(rest if kind == "dir" else source)
    path = directory / f"{site}.json"
    if not path.is_file():
        raise ContractError(f"contract for site {site!r} ({path}): no such file. Write it with "
                            f"`pulumi stack output --stack {site} --json > {path}`, or use --contracts ssm.")
    return load_contract_file(path, site=site)


def _default_ssm(region: str | None) -> Any:
    import boto3

    return boto3.session.Session().client("ssm", region_name=region)


def _from_ssm(site: str, regions: list[str | None], ssm_client: Callable[[str | None], Any]) -> SiteContract:
    """GetParameter through ``rollout.backends.aws.calls`` (throttling is retried; AccessDenied names the action)."""
    import json

    from botocore.exceptions import NoRegionError

    from rollout.backends.aws.calls import ApiError, Caller

    name = contract_parameter_name(site)
    tried = []
    caller = Caller(deadline=60)
    for region in regions:
        try:
            answer = caller.call(ssm_client(region), "GetParameter", Name=name,
                                 who=f"your own identity (policy zt-rollout-{site}-operator, from the site's stack)")
        except NoRegionError:
            raise ContractError(f"contract for site {site!r} (SSM {name}): no AWS region; give --contracts "
                                "ssm:REGION or set AWS_DEFAULT_REGION.") from None
        except ApiError as err:
            if err.code == "ParameterNotFound":
                tried.append(region or "the default region")
                continue
            raise ContractError(f"contract for site {site!r} (SSM {name}): {err}.") from None
        try:
            data = json.loads(answer["Parameter"]["Value"])
        except ValueError as err:
            raise ContractError(f"contract for site {site!r} (SSM {name}): not JSON: {err}.") from None
        return load_contract(data, site=site, source=f"SSM {name} in {region or 'the default region'}")
    raise ContractError(f"contract for site {site!r} (SSM {name}): not found in {', '.join(tried)}. "
                        f"Run `pulumi up --stack {site}`, or name the stack's region: --contracts ssm:REGION.")
