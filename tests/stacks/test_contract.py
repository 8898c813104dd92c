"""The site contract: loading, its errors, the example contracts, and the parameter name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout.core.contract import (
    OUTPUT_NAMES,
    CheckIn,
    ContractError,
    contract_parameter_name,
    contract_to_json,
    load_contract,
    load_contract_file,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"
FLEET_SITES = ("tokyo", "osaka", "nagoya", "fukuoka", "sapporo", "sendai", "hiroshima")


def example(site: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((EXAMPLES / f"{site}.json").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("site", FLEET_SITES)
def test_every_fleet_site_has_a_valid_example_contract(site: str) -> None:
    contract = load_contract_file(EXAMPLES / f"{site}.json", site=site)
    assert contract.contract_parameter_name == contract_parameter_name(site)
    assert contract_to_json(contract) == (EXAMPLES / f"{site}.json").read_text(encoding="utf-8"), \
        "example files are written exactly as the stack publishes them"


def test_missing_key_names_the_site_the_source_and_the_key() -> None:
    data = example("nagoya")
    del data["checkin_table_name"]
    with pytest.raises(ContractError) as raised:
        load_contract(data, site="nagoya", source="examples/contracts/nagoya.json")
    assert "contract for site 'nagoya' (examples/contracts/nagoya.json): checkin_table_name: Field required" in str(
        raised.value)


def test_contract_for_another_site_is_refused() -> None:
    with pytest.raises(ContractError, match="site: says 'osaka'"):
        load_contract(example("osaka"), site="tokyo")


def test_unknown_schema_version_is_refused() -> None:
    with pytest.raises(ContractError, match="schema_version: 2 is not 1"):
        load_contract({**example("tokyo"), "schema_version": 2})


def test_unexpected_key_is_refused_so_drift_is_seen() -> None:
    with pytest.raises(ContractError, match="checkin_tabel: Extra inputs are not permitted"):
        load_contract({**example("tokyo"), "checkin_tabel": "x"})


def test_output_names_follow_the_model() -> None:
    assert OUTPUT_NAMES[:2] == ("schema_version", "site")
    assert "verified_access_group_id" in OUTPUT_NAMES and "orchestrator_role_arn" in OUTPUT_NAMES


@pytest.mark.parametrize("bad", ["Tokyo", "t", "tokyo/../x", ""])
def test_parameter_name_rejects_non_site_ids(bad: str) -> None:
    with pytest.raises(ContractError):
        contract_parameter_name(bad)


def test_check_in_with_wrong_dynamodb_type_names_the_attribute() -> None:
    item = {"rollout_wave": {"S": "r#1"}, "device_id": {"S": "D1"}, "site": {"S": "tokyo"},
            "action": {"S": "kitting"}, "status": {"S": "succeeded"}, "failed_checks": {"S": ""},
            "checked_in_at": {"S": "2025-04-14T01:02:03Z"}, "expires_at": {"S": "1752454923"}}
    with pytest.raises(ContractError, match="'expires_at': DynamoDB type S, expected N"):
        CheckIn.from_dynamodb_item(item)


def test_stacks_readme_documents_every_output_and_every_iam_action() -> None:
    from rollout.core.permissions import required_actions

    readme = (Path(__file__).resolve().parents[2] / "stacks" / "README.md").read_text(encoding="utf-8")
    missing = [f"`{name}`" for name in OUTPUT_NAMES if f"| `{name}` |" not in readme]
    missing += [action for action in sorted(required_actions()) if f"`{action}`" not in readme]
    assert missing == []
