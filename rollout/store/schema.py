"""The SQLite schema as ordered migrations: append a new entry, never edit an applied one."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    plan_hash TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    separation_of_duties INTEGER NOT NULL,
    paused INTEGER NOT NULL,
    pause_reason TEXT NOT NULL,
    halted INTEGER NOT NULL,
    halt_reason TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL
);
CREATE TABLE waves (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    phase TEXT NOT NULL,
    phase_since TEXT NOT NULL,
    approvals_required TEXT NOT NULL,
    bake_seconds INTEGER NOT NULL,
    gates TEXT NOT NULL,
    canary INTEGER NOT NULL,
    bake_started TEXT,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    last_verdict TEXT,
    PRIMARY KEY (rollout_id, idx)
);
CREATE TABLE devices (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    device_id TEXT NOT NULL,
    wave INTEGER NOT NULL,
    phase TEXT NOT NULL,
    phase_since TEXT NOT NULL,
    migrated_at TEXT,
    steps_done INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    attrs TEXT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE TABLE approvals (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    wave TEXT NOT NULL,
    wave_hash TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    role TEXT NOT NULL,
    at TEXT NOT NULL,
    comment TEXT NOT NULL,
    UNIQUE (rollout_id, wave, wave_hash, by_whom, role)
);
CREATE TABLE issues (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    id INTEGER NOT NULL,
    title TEXT NOT NULL,
    selector TEXT NOT NULL,
    severity TEXT,
    status TEXT NOT NULL,
    reported_during TEXT,
    reported_by TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    auto INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rollout_id, id)
);
CREATE TABLE decisions (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    seq INTEGER NOT NULL,
    wave INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);
CREATE TABLE intents (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    op_id TEXT PRIMARY KEY,
    verb TEXT NOT NULL,
    wave INTEGER NOT NULL,
    device_ids TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX intents_open ON intents (rollout_id, state);
CREATE TABLE events (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX events_by_rollout ON events (rollout_id, seq);
CREATE TABLE leases (
    rollout_id TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    fence INTEGER NOT NULL
);
CREATE TABLE fences (
    rollout_id TEXT PRIMARY KEY,
    last_fence INTEGER NOT NULL
)
""",
    # 2: how the rollout is driven (backend name and its settings), chosen at `rollout start`.
    "ALTER TABLE rollouts ADD COLUMN backend TEXT NOT NULL DEFAULT '{}'",
    # 3: the backend's reference of the last call on each device (an SSM command id).
    "ALTER TABLE devices ADD COLUMN ref TEXT NOT NULL DEFAULT ''",
    # 4: the error budget a migrate call was given, so that a replay after a crash gets the same.
    "ALTER TABLE intents ADD COLUMN max_errors INTEGER",
    # 5: every employee notice sent, so that no run, from any folder, sends one twice
    # (rollout.store.notice_records; ``recipient_key`` is the address NFKC-normalised and case-folded).
    """
CREATE TABLE notices_sent (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    wave TEXT NOT NULL,
    template_version TEXT NOT NULL,
    recipient_key TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (rollout_id, wave, template_version, recipient_key)
)
""",
    # 6: who waived separation of duties for the rollout, as what, why and when (JSON; '' while enforced).
    "ALTER TABLE rollouts ADD COLUMN duties_waived TEXT NOT NULL DEFAULT ''",
)
