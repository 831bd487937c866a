"""A/B experiments in process: GrowthBook-compatible assignment, definitions, exposures, counters.

The experiments service, the recommender and the stream share this one implementation, so none
imports another. Pure: `assignment`, `definitions`, `hashing`. Adapters: `store`, `cache`,
`exposures`, `counts` (Redis), `records` (PostgreSQL). The package re-exports nothing, so
importing a pure module loads no client library. docs/experiments.md has the design, the Redis
layout and the numbers.
"""
