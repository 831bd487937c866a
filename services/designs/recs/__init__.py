"""The recommendation design's domain that its stream, service and trainer share: the ranker.

The ranker's feature definitions, the online state that serves them, the catalog titles online
and of record.

    stream (watch events) --RedisRecsStore.apply_watches--> Redis <--read_user-- recommender
                                                                                   |
    model repository --load_item_artifacts--> ItemArtifacts (in process) ----------+
                                         user_vectors + ranker_features (pure) --> RANKER_FEATURES

Pure: `definitions` (training's and serving's), `features`, `state`. Adapters: `redis_store`
(layout in `keys`), `titles`, `artifacts` (the model repository), `records` (PostgreSQL). The
package re-exports nothing, so importing a pure module loads no client library.
Spec and measurements: docs/recs-features-online.md.
"""
