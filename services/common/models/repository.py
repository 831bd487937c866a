"""The model repository on disk: immutable numbered versions and a production pointer per model.

    <root>/<model>/config.pbtxt            Triton config; its version_policy is the pointer
    <root>/<model>/promotions.json         every promote and rollback, oldest first
    <root>/<model>/<version>/model.onnx    the graph, never changed once written
    <root>/<model>/<version>/metadata.json features, tensors, metrics, data hash, libraries
    <root>/<model>/<version>/<extra file>  whatever the trainer stores beside the model

A version is written into a hidden temporary folder and renamed into place, so a reader sees
all of it or none of it. Pointer and history are replaced atomically too (write, fsync, rename),
and every change takes the model's lock file, so two trainers or admins cannot interleave.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import onnx
import onnxruntime as ort

from services.common.locks import exclusive
from services.common.models.errors import (
    InvalidModel,
    ModelNotFound,
    NothingToRollBack,
    VersionNotFound,
)
from services.common.models.metadata import (
    ModelMetadata,
    check_feature_names,
    graph_specs,
    library_versions,
)
from services.common.models.triton import production_version, render_config

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.pbtxt"
HISTORY_FILE = "promotions.json"
LOCK_FILE = ".lock"
RESERVED_FILES = frozenset({MODEL_FILE, METADATA_FILE})
# Model names become folder names and URL path segments: keep them boring.
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
EXTRA_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Triton ignores version folders that are not a number or that start with 0.
VERSION_DIR = re.compile(r"^[1-9][0-9]*$")

NO_FILES: Mapping[str, bytes] = MappingProxyType({})

Action = Literal["promote", "rollback"]


@dataclass(frozen=True)
class Promotion:
    """One change of the production pointer."""

    version: int
    action: Action
    previous: int | None
    at: datetime
    actor: str = "unknown"  # who asked for it; entries written before it was kept say unknown

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "action": self.action, "previous": self.previous,
                "at": self.at.isoformat(), "actor": self.actor}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Promotion:
        previous = data.get("previous")
        action: Action = "rollback" if data["action"] == "rollback" else "promote"
        return cls(int(data["version"]), action, None if previous is None else int(previous),
                   datetime.fromisoformat(data["at"]), str(data.get("actor", "unknown")))


def default_actor() -> str:
    """The OS user of the process that made the change, when the caller names nobody."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid {os.getuid()}"


def _fsynced_write(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _replace_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _fsynced_write(temporary, data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _check_name(name: str) -> None:
    if not MODEL_NAME.match(name):
        raise InvalidModel(f"model name {name!r} must match {MODEL_NAME.pattern}")


def _parse_onnx(onnx_bytes: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(onnx_bytes)
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, ...: all "not ONNX"
        raise InvalidModel(f"not a valid ONNX model: {exc}") from exc
    try:  # what the checker accepts, ONNX Runtime may still refuse (an opset it lacks)
        ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind classes, all plain Exceptions
        raise InvalidModel(f"ONNX Runtime cannot load the model: {exc}") from exc
    return model


class ModelRepository:
    """Registers, lists, promotes and rolls back model versions under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading ---------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Every model with at least one version, by name."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and MODEL_NAME.match(p.name) and self._version_dirs(p.name))

    def versions(self, name: str) -> list[int]:
        """The model's versions, oldest first; ModelNotFound when it has none."""
        versions = self._version_dirs(name)
        if not versions:
            raise ModelNotFound(f"no model {name!r}")
        return versions

    def production_version(self, name: str) -> int | None:
        """The version config.pbtxt points at; None before the first promotion."""
        self.versions(name)
        try:
            return production_version(self.config_path(name).read_text())
        except FileNotFoundError:
            return None

    def history(self, name: str) -> list[Promotion]:
        """Every promote and rollback of the model, oldest first."""
        self.versions(name)
        return self._read_history(name)

    def metadata(self, name: str, version: int) -> ModelMetadata:
        return ModelMetadata.from_json((self._version_dir(name, version) / METADATA_FILE)
                                       .read_text())

    def model_path(self, name: str, version: int) -> Path:
        return self._version_dir(name, version) / MODEL_FILE

    def extra_file(self, name: str, version: int, filename: str) -> Path:
        """The path of a file the trainer stored beside the model; FileNotFoundError if none."""
        if filename not in self.metadata(name, version).extra_files:
            raise FileNotFoundError(f"{name} v{version} has no extra file {filename!r}")
        return self._version_dir(name, version) / filename

    def config_path(self, name: str) -> Path:
        return self.root / name / CONFIG_FILE

    # --- writing ---------------------------------------------------------------------------
    def register(self, name: str, onnx_bytes: bytes, *, feature_names: Sequence[str],
                 metrics: Mapping[str, float], training_data_hash: str, description: str,
                 extra_files: Mapping[str, bytes] = NO_FILES, actor: str | None = None) -> int:
        """Store a new version and return its number. Tensor specs are read from the graph.

        The first version of a model is promoted at once (there is nothing it could regress
        from); later versions wait for an explicit promote.
        """
        _check_name(name)
        for filename in extra_files:
            if not EXTRA_FILE_NAME.match(filename) or filename in RESERVED_FILES:
                raise InvalidModel(f"extra file name {filename!r} must match "
                                   f"{EXTRA_FILE_NAME.pattern} and not be one of "
                                   f"{sorted(RESERVED_FILES)}")
        graph = _parse_onnx(onnx_bytes)
        inputs, outputs = graph_specs(graph)
        check_feature_names(feature_names, inputs)
        with self._locked(name):
            version = max(self._version_dirs(name), default=0) + 1
            metadata = ModelMetadata(
                name=name, version=version, description=description,
                created_at=datetime.now(UTC), feature_names=tuple(feature_names),
                inputs=inputs, outputs=outputs,
                metrics={k: float(v) for k, v in metrics.items()},
                training_data_hash=training_data_hash,
                model_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
                producer=f"{graph.producer_name} {graph.producer_version}".strip(),
                opsets={o.domain or "ai.onnx": o.version for o in graph.opset_import},
                libraries=library_versions(), extra_files=tuple(sorted(extra_files)),
            )
            self._write_version(metadata, onnx_bytes, extra_files)
            logger.info("registered model version", extra={"model": name, "version": version})
            if version == 1:
                self._promote_locked(name, version, "promote", actor or default_actor())
        return version

    def promote(self, name: str, version: int, actor: str | None = None) -> None:
        """Make `version` the production version; promoting the current one changes nothing.
        `actor` (default: the OS user) is recorded in the history with the change."""
        with self._locked(name):
            self._promote_locked(name, version, "promote", actor or default_actor())

    def rollback(self, name: str, actor: str | None = None) -> int:
        """Point production back at the version that served before the current one."""
        with self._locked(name):
            stack = self._production_stack(name)
            if len(stack) < 2:
                raise NothingToRollBack(f"{name} has no earlier production version to go back to")
            self._promote_locked(name, stack[-2], "rollback", actor or default_actor())
            return stack[-2]

    # --- internals -------------------------------------------------------------------------
    def _version_dirs(self, name: str) -> list[int]:
        folder = self.root / name
        if not MODEL_NAME.match(name) or not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir()
                      if VERSION_DIR.match(p.name) and (p / METADATA_FILE).is_file())

    def _version_dir(self, name: str, version: int) -> Path:
        if version not in self.versions(name):
            raise VersionNotFound(f"model {name!r} has no version {version}")
        return self.root / name / str(version)

    def _locked(self, name: str) -> AbstractContextManager[None]:
        """One writer of a model's versions and promotions at a time, across processes."""
        return exclusive(self.root / name / LOCK_FILE)

    def _write_version(self, metadata: ModelMetadata, onnx_bytes: bytes,
                       extra_files: Mapping[str, bytes]) -> None:
        folder = self.root / metadata.name
        staging = folder / f".staging-{metadata.version}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            _fsynced_write(staging / MODEL_FILE, onnx_bytes)
            for filename, data in extra_files.items():
                _fsynced_write(staging / filename, data)
            _fsynced_write(staging / METADATA_FILE, metadata.to_json().encode())
            # rename() of a folder is atomic and fails if the target exists: never overwrites.
            os.rename(staging, folder / str(metadata.version))
        finally:
            if staging.exists():
                shutil.rmtree(staging)

    def _read_history(self, name: str) -> list[Promotion]:
        try:
            text = (self.root / name / HISTORY_FILE).read_text()
        except FileNotFoundError:
            return []
        return [Promotion.from_json(entry) for entry in json.loads(text)]

    def _production_stack(self, name: str) -> list[int]:
        """Production versions as a stack: promote pushes, rollback pops; the top serves."""
        stack: list[int] = []
        for entry in self._read_history(name):
            if entry.action == "rollback":
                stack = stack[:-1]
            elif not stack or stack[-1] != entry.version:
                stack.append(entry.version)
        # The pointer is written before the history: after a crash between the two, or a hand
        # edit, the pointer is the truth and the history is one entry behind.
        current = self.production_version(name)
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)
        return stack

    def _promote_locked(self, name: str, version: int, action: Action, actor: str) -> None:
        metadata = self.metadata(name, version)  # VersionNotFound for a version not on disk
        previous = self.production_version(name)
        if previous == version:
            return
        config = render_config(name, version, metadata.inputs, metadata.outputs)
        _replace_atomically(self.config_path(name), config.encode())
        history = [*self._read_history(name), Promotion(version, action, previous,
                                                        datetime.now(UTC), actor)]
        _replace_atomically(self.root / name / HISTORY_FILE,
                            (json.dumps([h.to_json() for h in history], indent=1) + "\n").encode())
        logger.info("production version changed", extra={
            "model": name, "version": version, "previous": previous, "action": action,
            "actor": actor})
