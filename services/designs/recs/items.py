"""The item side as values: per-title arrays in one order, their content vectors and fingerprint.

Pure (numpy only): the recommender's candidates and explanations and the online features read
these; `artifacts` loads them from the model repository.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray, IntArray
from services.designs.recs import definitions as rf


def release_years(release_seconds: npt.ArrayLike) -> IntArray:
    """The calendar year (UTC) of each release time in unix seconds: content_vectors' input."""
    released = np.asarray(release_seconds, dtype=np.float64)
    years: IntArray = (released.astype("datetime64[s]").astype("datetime64[Y]")
                          .astype(np.int64) + 1970)
    return years


@dataclass(frozen=True, eq=False)
class ItemArtifacts:
    """Per-title arrays, rows in `title_ids` order, and a fingerprint naming this exact set.

    The first `trained_rows` rows are the titles the ranker was trained on; rows after them are
    titles that came from the catalog later (titles.with_catalog_titles): a zero embedding and
    a content vector from their metadata. Users' vectors are folded over the trained rows only,
    so `vectors_stamp`, the fingerprint of the trained rows, stamps every taste vector the
    stream processor writes: a vector folded in with other embeddings (an older model version)
    is never used as if it were this one's, and a catalog title appended to the set (which
    changes `fingerprint`) leaves every stored vector valid.

    `digest` is the ranker's files' hash without the version label, and the catalog merge keeps
    it: a challenger is registered with a copy of production's embeddings, so the two versions
    have one digest and build the same candidates and features. A cached list names the digest
    it was built on (services/recommender/service.py, `built_as_now`).
    """

    fingerprint: str
    title_ids: tuple[str, ...]
    embeddings: npt.NDArray[np.float32]       # [titles, dim] item factors V
    content: FloatArray                    # [titles, content dim] unit content vectors
    genres: FloatArray                     # [titles, genres] multi-hot
    genre_names: tuple[str, ...]
    release_seconds: FloatArray            # [titles] unix seconds
    maturity_levels: IntArray              # [titles]
    names: tuple[str, ...] = ()               # display titles ("" or missing: the content id)
    popularity_at_training: FloatArray | None = None  # [titles] the feature at training time
    vectors_stamp: str = ""                   # the trained rows' fingerprint ("": fingerprint)
    trained_rows: int = -1                    # rows folded into user vectors (-1: all)
    genre_labels: tuple[tuple[str, ...], ...] = ()  # the catalog's genres to show, per row
    digest: str = ""                          # the ranker files' hash, unlabelled (see above)

    @classmethod
    def build(cls, title_ids: npt.ArrayLike, embeddings: npt.ArrayLike,
              genre_multi_hot: npt.ArrayLike, release_seconds: npt.ArrayLike,
              maturity_levels: npt.ArrayLike, genre_names: tuple[str, ...],
              label: str = "items", names: npt.ArrayLike | None = None,
              popularity: npt.ArrayLike | None = None) -> ItemArtifacts:
        """Derive content vectors with definitions (training's), fingerprint all."""
        ids = tuple(str(t) for t in np.asarray(title_ids))
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        genres = np.asarray(genre_multi_hot, dtype=np.float64)
        released = np.asarray(release_seconds, dtype=np.float64)
        maturity = np.asarray(maturity_levels, dtype=np.int64)
        digest = hashlib.sha256()
        for part in ("\n".join(ids).encode(), vectors.tobytes(), genres.tobytes(),
                     released.tobytes(), maturity.tobytes()):
            digest.update(part)
        contents = digest.hexdigest()[:16]
        return cls(
            fingerprint=f"{label}/{contents}",
            digest=contents,
            title_ids=ids,
            embeddings=vectors,
            content=rf.content_vectors(genres, release_years(released), maturity),
            genres=genres,
            genre_names=genre_names,
            release_seconds=released,
            maturity_levels=maturity,
            names=() if names is None else tuple(str(n) for n in np.asarray(names)),
            popularity_at_training=(None if popularity is None
                                    else np.asarray(popularity, dtype=np.float64)),
        )

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Content id -> row."""
        return {title: row for row, title in enumerate(self.title_ids)}

    def rows(self, content_ids: list[str] | tuple[str, ...]) -> IntArray:
        """Rows of known titles, in order; unknown ids are left out."""
        known = [self.row_of[c] for c in content_ids if c in self.row_of]
        return np.asarray(known, dtype=np.int64)

    @property
    def stamp(self) -> str:
        """What stored user vectors are stamped with: the fingerprint of the trained rows."""
        return self.vectors_stamp or self.fingerprint

    @property
    def ranker_digest(self) -> str:
        """The ranker's artifacts these were built from, whatever version they were registered
        as and whatever catalog titles were merged in ("": the fingerprint stands in)."""
        return self.digest or self.fingerprint

    @property
    def n_trained(self) -> int:
        return len(self.title_ids) if self.trained_rows < 0 else self.trained_rows

    def name(self, row: int) -> str:
        """The title people read; the content id when the artifacts carry no names."""
        return self.names[row] if row < len(self.names) and self.names[row] else self.title_ids[row]

    def genres_of(self, row: int) -> list[str]:
        """The genres to show: the catalog's where it has them, else the model's vocabulary's."""
        if row < len(self.genre_labels) and self.genre_labels[row]:
            return list(self.genre_labels[row])
        return [self.genre_names[g] for g in np.flatnonzero(self.genres[row])]

    def __len__(self) -> int:
        return len(self.title_ids)
