"""Experiments in process: GrowthBook-compatible assignment, definitions, their store, exposures.

The experiments service and the recommender share this one implementation (platform code: it
imports no service). docs/experiments.md has the design, the Redis layout and the numbers.
"""

from services.designs.experiments.assignment import Assignment, assign, bucket_of
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import (
    ExperimentDefinition,
    InvalidDefinition,
    Namespace,
    Variation,
    load_definitions_file,
    parse_definition,
)
from services.designs.experiments.exposures import ExposureLog
from services.designs.experiments.hashing import (
    bucket_ranges,
    choose_variation,
    fnv1a32,
    gb_hash,
    in_namespace,
)
from services.designs.experiments.store import (
    DefinitionStore,
    InMemoryDefinitionStore,
    RedisDefinitionStore,
    Snapshot,
)

__all__ = [
    "Assignment",
    "DefinitionCache",
    "DefinitionStore",
    "ExperimentDefinition",
    "ExposureLog",
    "InMemoryDefinitionStore",
    "InvalidDefinition",
    "Namespace",
    "RedisDefinitionStore",
    "Snapshot",
    "Variation",
    "assign",
    "bucket_of",
    "bucket_ranges",
    "choose_variation",
    "fnv1a32",
    "gb_hash",
    "in_namespace",
    "load_definitions_file",
    "parse_definition",
]
