"""Response bodies of the protocol's metadata and health routes, and of the admin routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.common.models import ModelMetadata, Promotion, TensorSpec
from services.common.models.triton import PLATFORM
from services.modelserver.serving import ModelState


class ErrorResponse(BaseModel):
    """$inference_error_response: every 4xx and 5xx of the server."""

    error: str


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]

    @classmethod
    def of(cls, spec: TensorSpec) -> TensorMetadata:
        return cls(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


class ModelMetadataResponse(BaseModel):
    """$metadata_model_response, plus `parameters` (as MLServer does) with what the repository
    knows: the feature names a client checks against its catalog, metrics, provenance."""

    name: str
    versions: list[str]
    platform: str = PLATFORM
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]

    @classmethod
    def of(cls, metadata: ModelMetadata, versions: list[int],
           production: int | None) -> ModelMetadataResponse:
        return cls(
            name=metadata.name, versions=[str(v) for v in versions],
            inputs=[TensorMetadata.of(t) for t in metadata.inputs],
            outputs=[TensorMetadata.of(t) for t in metadata.outputs],
            parameters={
                "version": str(metadata.version),
                "production_version": None if production is None else str(production),
                "feature_names": list(metadata.feature_names),
                "description": metadata.description,
                "metrics": dict(metadata.metrics),
                "training_data_hash": metadata.training_data_hash,
                "created_at": metadata.created_at.isoformat(),
            })


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class PromoteRequest(BaseModel):
    version: int = Field(ge=1)


class PromotionEntry(BaseModel):
    version: int
    action: str
    previous: int | None
    at: datetime

    @classmethod
    def of(cls, promotion: Promotion) -> PromotionEntry:
        return cls(version=promotion.version, action=promotion.action,
                   previous=promotion.previous, at=promotion.at)


class ModelStatus(BaseModel):
    """A model as the admin sees it: versions on disk, the pointer, what this process serves."""

    name: str
    versions: list[int]
    production_version: int | None
    serving_version: int | None
    history: list[PromotionEntry]

    @classmethod
    def of(cls, state: ModelState) -> ModelStatus:
        return cls(name=state.name, versions=state.versions,
                   production_version=state.production_version,
                   serving_version=state.serving_version,
                   history=[PromotionEntry.of(p) for p in state.history])


class ModelsResponse(BaseModel):
    models: list[ModelStatus]
