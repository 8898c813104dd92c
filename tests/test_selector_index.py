"""Selector lists over a whole fleet (``first_matches``): the same answer as trying every selector
on every device, in list order; repeats and selectors no device can match cost nothing."""

from __future__ import annotations

import random

from rollout.core.selectors import Selector, first_matches
from rollout.plan.fleet import generate_fleet
from tests.conftest import make_inventory, make_plan

FLEET = generate_fleet(1500, 3)


def naive(selectors: list[Selector]) -> list[int]:
    return [next((n for n, s in enumerate(selectors) if s.matches(d)), -1) for d in FLEET]


def random_selectors(rng: random.Random, count: int) -> list[Selector]:
    keys = ["model", "department", "os_version", "site", "app", "tag", "hostname", "owner_name"]
    out = []
    for _ in range(count):
        terms = []
        for key in rng.sample(keys, rng.randint(1, 3)):
            device = rng.choice(FLEET)
            values = device.values_of(key) or ("nobody",)
            terms.append(f"{key}={rng.choice(values) if rng.random() < 0.9 else 'absent'}")
        out.append(Selector.parse(",".join(terms)))
    return out


def test_first_matches_agrees_with_trying_every_selector_in_order() -> None:
    rng = random.Random(12)
    for count in (1, 5, 60, 400):
        selectors = random_selectors(rng, count)
        selectors += selectors[: count // 3]  # repeats
        assert first_matches(selectors, FLEET) == naive(selectors)


def test_the_first_selector_in_the_list_is_the_reason_even_when_a_later_one_is_rarer() -> None:
    device = FLEET[0]
    broad = Selector.parse(f"site={device.site}")
    narrow = Selector.parse(f"hostname={device.hostname}")
    assert first_matches([broad, narrow], FLEET)[0] == 0
    assert first_matches([narrow, broad], FLEET)[0] == 0
    assert first_matches([Selector.parse("hostname=absent"), narrow], FLEET)[0] == 1


def test_the_plan_names_the_first_matching_selector_as_the_reason() -> None:
    inventory = make_inventory(n=300)
    device = inventory.devices[5]
    rules = [f"hostname={device.hostname}", f"model={device.model}"]
    plan = make_plan(n=300, constraints={"exclude": {"devices": [], "selectors": rules}})
    reasons = dict(plan.excluded)
    assert reasons[device.device_id] == f"matches constraints.exclude selector hostname={device.hostname}"
    others = [d.device_id for d in inventory.devices if d.model == device.model and d is not device]
    assert others and all(reasons[i] == f"matches constraints.exclude selector model={device.model}" for i in others)
