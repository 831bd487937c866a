"""The catalog: every feature view by name, and "view:feature" references resolved against it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from services.common.features.definitions import Feature, FeatureView, UnknownFeature


class FeatureCatalog:
    """The views a store knows. Training, streaming and serving build theirs from one module."""

    def __init__(self, views: Iterable[FeatureView]) -> None:
        self._views: dict[str, FeatureView] = {}
        for view in views:
            if view.name in self._views:
                raise ValueError(f"feature view {view.name!r} is declared twice")
            self._views[view.name] = view

    def __iter__(self) -> Iterator[FeatureView]:
        return iter(self._views.values())

    def view(self, name: str) -> FeatureView:
        try:
            return self._views[name]
        except KeyError:
            raise UnknownFeature(f"no feature view {name!r} in the catalog") from None

    def resolve(self, ref: str) -> tuple[FeatureView, Feature]:
        """The view and feature a reference like "card_profile:avg_amount" names."""
        view_name, sep, feature_name = ref.partition(":")
        if not sep:
            raise UnknownFeature(f"feature reference {ref!r} is not of the form 'view:feature'")
        view = self.view(view_name)
        return view, view.feature(feature_name)
