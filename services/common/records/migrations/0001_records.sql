-- The system of record: what must outlive Redis (a cache and feature store) and Kafka's
-- retention. docs/data.md says what lives where and for how long.

-- Users and their profiles, as the account system knows them. The recommender reads a
-- profile's maturity limit from Redis; make rebuild-online puts it back from here.
CREATE TABLE users (
    user_id     text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profiles (
    user_id       text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    kind          text NOT NULL,                                  -- kids, teen, adult, unknown
    max_maturity  smallint NOT NULL CHECK (max_maturity >= 0),   -- index into MATURITY_RATINGS
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The catalog: the ETL writes a title here and, in the same transaction, its event to the
-- outbox; the relay publishes the outbox to Kafka and marks it sent. What was not committed
-- is never published; what was committed is published at least once.
CREATE TABLE catalog_titles (
    content_id       text PRIMARY KEY,
    title            text NOT NULL,
    genres           text[] NOT NULL DEFAULT '{}',
    actors           text[] NOT NULL DEFAULT '{}',
    maturity_rating  text,
    release_date     date,
    rating           real CHECK (rating BETWEEN 0 AND 5),
    thumbnail_url    text,
    source           text NOT NULL,
    version_at       timestamptz NOT NULL,    -- the load's time: a later load's metadata wins
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         text,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Experiment definitions (the current one) and every change to them, with who made it.
CREATE TABLE experiments (
    key         text PRIMARY KEY,
    status      text NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE experiment_changes (
    id          bigserial PRIMARY KEY,
    key         text NOT NULL REFERENCES experiments (key),
    change      text NOT NULL CHECK (change IN ('create', 'update', 'status')),
    status      text NOT NULL,
    definition  jsonb NOT NULL,               -- the definition after the change
    actor       text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiment_changes_by_key ON experiment_changes (key, id);

-- Every fraud decision of record, written off the request path from fraud-decisions
-- (services/records): the first decision for a transaction id is the decision.
CREATE TABLE fraud_decisions (
    transaction_id    text PRIMARY KEY,
    event_id          text NOT NULL,
    card_id           text NOT NULL,
    user_id           text NOT NULL,
    transaction_time  timestamptz NOT NULL,
    amount            double precision NOT NULL,
    path              text NOT NULL CHECK (path IN ('http', 'stream')),
    action            text NOT NULL CHECK (action IN ('approve', 'review', 'decline')),
    risk_score        double precision NOT NULL,
    risk_level        text NOT NULL,
    confidence        double precision,
    reasons           jsonb NOT NULL,         -- [{code, text, contribution, source}], strongest first
    reason_codes      text[] NOT NULL,
    rule_hits         text[] NOT NULL,
    ml_score          double precision,
    model_version     integer,
    policy_version    text NOT NULL,
    degraded          text[] NOT NULL,
    features          real[],                 -- what the model saw, FRAUD_FEATURES order
    decided_at        timestamptz NOT NULL,   -- the event's time
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fraud_decisions_by_time ON fraud_decisions (decided_at);
CREATE INDEX fraud_decisions_by_card ON fraud_decisions (card_id, transaction_time);

-- Labels and chargebacks: the truth about a transaction, known later. A newer label (by its
-- event time) replaces an older one: a chargeback may be reversed.
CREATE TABLE fraud_labels (
    transaction_id    text PRIMARY KEY,
    is_fraud          boolean NOT NULL,
    card_id           text NOT NULL,
    merchant_id       text NOT NULL,
    terminal_id       text NOT NULL,
    transaction_time  timestamptz NOT NULL,
    event_id          text NOT NULL,
    labelled_at       timestamptz NOT NULL,   -- the event's time
    recorded_at       timestamptz NOT NULL DEFAULT now()
);

-- The model registry's audit log: who promoted or rolled back which version, when, and the
-- evaluation that version was registered with (its metadata's metrics).
CREATE TABLE model_registry_audit (
    model             text NOT NULL,
    version           integer NOT NULL,
    action            text NOT NULL CHECK (action IN ('promote', 'rollback')),
    previous_version  integer,
    actor             text NOT NULL,
    at                timestamptz NOT NULL,
    evaluation        jsonb NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, at, version, action)
);
