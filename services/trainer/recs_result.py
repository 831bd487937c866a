"""What a recommendations training run produces: the ranker, its artifacts, its evaluation.

Its own module so that the trainer (recs.py) and the report writers (recs_report.py,
recs_report_movielens.py) both import it and neither imports the other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common.arrays import FloatArray, IntArray
from services.trainer.artifacts import TrainedModel


@dataclass(frozen=True)
class RecsArtifacts:
    """What serving and streaming need beside the ranker, rows in `title_ids` order."""

    as_of: float                                  # unix seconds the state was taken at
    title_ids: npt.NDArray[np.str_]
    title_names: npt.NDArray[np.str_]             # what people read (the recommender shows it)
    item_embeddings: npt.NDArray[np.float32]      # [titles, EMBEDDING_DIM]
    content_vectors: npt.NDArray[np.float32]      # [titles, content dim]
    genre_names: tuple[str, ...]                  # the world's genre vocabulary
    genre_multi_hot: npt.NDArray[np.uint8]        # [titles, genres], columns in genre_names order
    release_seconds: FloatArray                   # [titles]
    maturity_levels: IntArray                     # [titles]
    popularity: npt.NDArray[np.float32]           # [titles] feature value at as_of
    trending: npt.NDArray[np.float32]             # [titles] feature value at as_of
    user_ids: npt.NDArray[np.str_]                # users with history before as_of
    user_embeddings: npt.NDArray[np.float32]      # [users, EMBEDDING_DIM] taste vectors

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, as_of=np.float64(self.as_of), title_ids=self.title_ids,
            title_names=self.title_names,
            item_embeddings=self.item_embeddings, content_vectors=self.content_vectors,
            genre_names=np.asarray(self.genre_names), genre_multi_hot=self.genre_multi_hot,
            release_seconds=self.release_seconds, maturity_levels=self.maturity_levels,
            popularity=self.popularity, trending=self.trending, user_ids=self.user_ids,
            user_embeddings=self.user_embeddings)
        return buffer.getvalue()


@dataclass
class RecsTrainingResult:
    ranker: TrainedModel
    artifacts: RecsArtifacts
    evaluation: pd.DataFrame                       # one row per algorithm, metric columns
    recall_curves: pd.DataFrame                    # recall@k, rows algorithms, columns CURVE_KS
    timings: dict[str, float] = field(default_factory=dict)
    intervals: pd.DataFrame = field(default_factory=pd.DataFrame)  # 95% bootstrap, per metric
    ease_validation: pd.Series = field(default_factory=pd.Series)  # recall@10 per lambda
