"""A generator of realistic fleets for demos, rehearsals and benchmarks.

``generate_fleet(n, seed)`` returns ``n`` devices of a Japanese company: a Tokyo head office, an
Osaka data centre that is Tokyo's disaster-recovery pair, and branch offices; Japanese department
names with their own business apps; a handful of laptop models and OS builds in realistic
proportions; a few VIP and critical-operations devices, IT volunteers and pilot users; owners'
names with characters that encoders get wrong (髙, 﨑). Same ``(n, seed)``, same fleet, on any
machine: only ``random.Random(seed)`` and fixed tables are used.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence

from rollout.core.device import Device

EXAMPLE_FLEET_SIZE = 10_000  # the example fleet of the demo and examples/fleet-10000.csv
EXAMPLE_SEED = 2027

# (site id, share of the fleet, hostname prefix)
SITES: tuple[tuple[str, float, str], ...] = (
    ("tokyo", 0.42, "TKY"),
    ("osaka", 0.20, "OSA"),
    ("nagoya", 0.11, "NGY"),
    ("fukuoka", 0.09, "FUK"),
    ("sapporo", 0.07, "SPR"),
    ("sendai", 0.06, "SDJ"),
    ("hiroshima", 0.05, "HIJ"),
)

# (department, share, department-specific business apps)
DEPARTMENTS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("営業部", 0.24, ("SFA", "見積作成ツール")),
    ("開発部", 0.16, ("Visual Studio", "Docker Desktop")),
    ("製造部", 0.12, ("生産管理システム",)),
    ("カスタマーサポート部", 0.10, ("CTI", "FAQ管理")),
    ("総務部", 0.07, ("文書管理システム",)),
    ("経理部", 0.06, ("会計システム", "経費精算")),
    ("人事部", 0.05, ("人事給与システム",)),
    ("品質保証部", 0.05, ("検査記録システム",)),
    ("情報システム部", 0.05, ("資産管理ツール", "Visual Studio")),
    ("運用監視センター", 0.04, ("監視コンソール",)),
    ("法務部", 0.03, ("契約管理システム",)),
    ("経営企画部", 0.03, ("BIダッシュボード",)),
)
COMMON_APPS = ("Microsoft 365", "Teams")
OCCASIONAL_APPS = (("Adobe Acrobat", 0.25), ("Zoom", 0.15), ("帳票印刷ツール", 0.08))

# (model, share, os, os_version choices with weights)
MODELS: tuple[tuple[str, float, str, tuple[tuple[str, float], ...]], ...] = (
    ("FMV LIFEBOOK U9", 0.30, "Windows", (("11 23H2", 0.6), ("11 24H2", 0.4))),
    ("ThinkPad X1 Carbon Gen 11", 0.22, "Windows", (("11 23H2", 0.5), ("11 24H2", 0.5))),
    ("dynabook G83", 0.16, "Windows", (("11 23H2", 0.7), ("10 22H2", 0.3))),
    ("Let's note SV2", 0.12, "Windows", (("11 23H2", 0.8), ("11 24H2", 0.2))),
    ("ThinkPad X1 Carbon Gen 9", 0.08, "Windows", (("10 22H2", 0.7), ("11 23H2", 0.3))),
    ("MacBook Air M2", 0.08, "macOS", (("14.7", 0.5), ("15.1", 0.5))),
    ("Surface Laptop 5", 0.04, "Windows", (("11 24H2", 1.0),)),
)

SURNAMES = ("佐藤", "鈴木", "高橋", "髙橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤",
            "吉田", "山田", "山﨑", "松本", "井上", "木村", "林", "斎藤", "清水")
SURNAME_ROMAJI = ("sato", "suzuki", "takahashi", "takahashi", "tanaka", "ito", "watanabe", "yamamoto",
                  "nakamura", "kobayashi", "kato", "yoshida", "yamada", "yamazaki", "matsumoto", "inoue",
                  "kimura", "hayashi", "saito", "shimizu")
GIVEN = ("翔", "陽菜", "蓮", "結衣", "大輝", "美咲", "健太", "さくら", "拓海", "愛")
GIVEN_ROMAJI = ("sho", "hina", "ren", "yui", "daiki", "misaki", "kenta", "sakura", "takumi", "ai")
DOMAIN = "example.co.jp"
EXTRA_COLUMNS = ("owner_name",)
MANAGED_NODE_COLUMNS = EXTRA_COLUMNS + ("instance_id",)


def _pick(rng: random.Random, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to ``weights``."""
    r = rng.random() * sum(weights)
    for i, weight in enumerate(weights):
        r -= weight
        if r < 0:
            return i
    return len(weights) - 1


SITE_WEIGHTS = [row[1] for row in SITES]
DEPARTMENT_WEIGHTS = [row[1] for row in DEPARTMENTS]
MODEL_WEIGHTS = [row[1] for row in MODELS]


def iter_fleet(n: int, seed: int, *, managed_nodes: bool = False) -> Iterator[Device]:
    """Yield ``n`` devices, deterministically from ``seed`` (see the module docstring). With
    ``managed_nodes``, each has an ``instance_id``: its Systems Manager managed node (``mi-`` and
    17 hex digits, derived from the device id), as an MDM export joined with SSM would carry."""
    rng = random.Random(seed)
    for i in range(1, n + 1):
        device = _device(rng, i)
        if managed_nodes:
            node = hashlib.blake2b(device.device_id.encode("ascii"), digest_size=9).hexdigest()[:17]
            device = device._replace(attributes=(*device.attributes, ("instance_id", f"mi-{node}")))
        yield device


def generate_fleet(n: int, seed: int, *, managed_nodes: bool = False) -> list[Device]:
    return list(iter_fleet(n, seed, managed_nodes=managed_nodes))


def _device(rng: random.Random, i: int) -> Device:
    site, _, prefix = SITES[_pick(rng, SITE_WEIGHTS)]
    department, _, dept_apps = DEPARTMENTS[_pick(rng, DEPARTMENT_WEIGHTS)]
    model, _, os_name, versions = MODELS[_pick(rng, MODEL_WEIGHTS)]
    os_version = versions[_pick(rng, [w for _, w in versions])][0]
    apps = list(COMMON_APPS) + list(dept_apps)
    apps += [app for app, share in OCCASIONAL_APPS if rng.random() < share]
    surname = rng.randrange(len(SURNAMES))
    given = rng.randrange(len(GIVEN))
    user = f"{GIVEN_ROMAJI[given]}.{SURNAME_ROMAJI[surname]}{i:06d}@{DOMAIN}"
    return Device(
        device_id=f"D{i:07d}",
        hostname=f"{prefix}-{'MB' if os_name == 'macOS' else 'PC'}-{i:07d}",
        serial=f"{rng.choice('5CGPFRJ')}{rng.randrange(16**7):07X}{i:07d}",
        user=user,
        site=site,
        department=department,
        model=model,
        os=os_name,
        os_version=os_version,
        apps=tuple(apps),
        tags=_tags(rng, site, department),
        attributes=(("owner_name", f"{SURNAMES[surname]} {GIVEN[given]}"),),
    )


def _tags(rng: random.Random, site: str, department: str) -> tuple[str, ...]:
    tags: list[str] = []
    if department == "情報システム部" and rng.random() < 0.35:
        tags.append("it-volunteer")
    elif rng.random() < 0.004:
        tags.append("pilot")
    if department == "運用監視センター" and site in ("tokyo", "osaka"):
        tags.append("critical-ops")
    elif rng.random() < 0.003:
        tags.append("critical-ops")
    if department in ("経営企画部", "法務部") and rng.random() < 0.08:
        tags.append("vip")
    elif rng.random() < 0.002:
        tags.append("vip")
    return tuple(tags)
