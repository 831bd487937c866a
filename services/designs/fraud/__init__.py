"""The fraud design's domain that its stream, service and trainer share: state, features, records.

The online state is recorded and read in one round trip; its feature vectors are the trainer's
definitions; decisions and labels of record go to PostgreSQL.

    store = RedisFraudState(client)                    # redis_state: redis.Redis or RedisCluster
    store.record(transactions=[txn], frauds=[report])  # stream processor: record only
    _, state = store.record_and_read([txn, ...])       # scorer: record and read, one pipeline
    matrix = batch_features([txn, ...], state).matrix  # features: float32 [n, 32], FRAUD_FEATURES
    vector = fraud_features(txn, FraudState(...))      # one hand-made state (state.py)

Pure: `commands`, `features`, `layout`, `state`. Adapters: `redis_state` (and its Lua, `scripts`),
`records` (PostgreSQL). The package re-exports nothing, so importing a pure module loads no
client library. The layout is specified in docs/fraud-features-online.md.
"""
