"""The model repository: immutable numbered versions, a Triton-ready layout, promote, rollback."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from services.common.models import (
    InvalidModel,
    ModelNotFound,
    ModelRepository,
    NothingToRollBack,
    TensorSpec,
    VersionNotFound,
)
from services.common.models import __main__ as cli
from services.common.models import repository as repository_module
from services.common.models.testing import logistic_model
from services.common.models.triton import production_version, render_config

FEATURES = ("amount", "velocity", "distance", "night")


@pytest.fixture(scope="module")
def sklearn_onnx() -> bytes:
    """A LogisticRegression on random data, exported the way the trainer does (ZipMap off)."""
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    labels = (rows[:, 0] + rows[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(rows, labels)
    return bytes(to_onnx(model, rows[:1], options={id(model): {"zipmap": False}})
                 .SerializeToString())


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    return ModelRepository(tmp_path / "models")


def register(repository: ModelRepository, onnx_bytes: bytes, name: str = "fraud",
             extra_files: dict[str, bytes] | None = None) -> int:
    return repository.register(name, onnx_bytes, feature_names=FEATURES,
                               metrics={"auc": 0.91}, training_data_hash="sha256:abc",
                               description="test model", extra_files=extra_files or {})


def test_register_numbers_versions_from_one_and_reads_tensor_specs_from_the_graph(
        repository: ModelRepository, sklearn_onnx: bytes) -> None:
    assert register(repository, sklearn_onnx) == 1
    assert register(repository, sklearn_onnx) == 2

    metadata = repository.metadata("fraud", 2)
    assert repository.versions("fraud") == [1, 2]
    assert repository.models() == ["fraud"]
    assert metadata.inputs == (TensorSpec("X", "FP32", (-1, 4)),)
    assert metadata.outputs == (TensorSpec("label", "INT64", (-1,)),
                                TensorSpec("probabilities", "FP32", (-1, 2)))
    assert metadata.feature_names == FEATURES
    assert metadata.metrics == {"auc": 0.91}
    assert metadata.training_data_hash == "sha256:abc"
    assert metadata.producer.startswith("skl2onnx")
    assert repository.model_path("fraud", 2).read_bytes() == sklearn_onnx


def test_metadata_records_the_libraries_and_python_that_made_the_model(
        repository: ModelRepository, sklearn_onnx: bytes) -> None:
    register(repository, sklearn_onnx)
    libraries = repository.metadata("fraud", 1).libraries
    assert {"python", "numpy", "onnx", "onnxruntime", "scikit-learn", "skl2onnx"} <= set(libraries)
    assert libraries["skl2onnx"] == "1.20.0"
    raw = json.loads((repository.root / "fraud/1/metadata.json").read_text())
    assert raw["created_at"].endswith("+00:00")


def test_the_first_version_serves_at_once_and_later_ones_wait_for_a_promote(
        repository: ModelRepository) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    register(repository, logistic_model([0, 1, 0, 0]))
    assert repository.production_version("fraud") == 1


def test_a_registered_version_is_never_changed_by_later_registrations(
        repository: ModelRepository, sklearn_onnx: bytes) -> None:
    register(repository, sklearn_onnx)
    before = repository.metadata("fraud", 1)
    register(repository, logistic_model([1, 2, 3, 4]))
    assert repository.metadata("fraud", 1) == before
    assert repository.model_path("fraud", 1).read_bytes() == sklearn_onnx


def test_a_registration_that_fails_half_way_leaves_no_version_and_no_debris(
        repository: ModelRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    real_write = repository_module._fsynced_write

    def fail_on_metadata(path: Path, data: bytes) -> None:
        if path.name == "metadata.json":
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(repository_module, "_fsynced_write", fail_on_metadata)
    with pytest.raises(OSError, match="disk full"):
        register(repository, logistic_model([0, 1, 0, 0]))

    assert repository.versions("fraud") == [1]
    assert sorted(p.name for p in (repository.root / "fraud").iterdir()) == [
        ".lock", "1", "config.pbtxt", "promotions.json"]


def test_concurrent_registrations_get_distinct_versions(repository: ModelRepository) -> None:
    model = logistic_model([1, 0, 0, 0])
    versions: list[int] = []
    threads = [threading.Thread(target=lambda: versions.append(register(repository, model)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [1, 2, 3, 4]


@pytest.mark.parametrize("payload", [b"", b"not a model", b"\x08\x07\x12\x03abc"])
def test_bytes_that_are_not_an_onnx_model_are_refused(repository: ModelRepository,
                                                      payload: bytes) -> None:
    with pytest.raises(InvalidModel):
        register(repository, payload)
    assert repository.models() == []


def test_feature_names_must_match_the_number_of_input_columns(
        repository: ModelRepository) -> None:
    with pytest.raises(InvalidModel, match="4 columns but 3 feature names"):
        repository.register("fraud", logistic_model([1, 2, 3, 4]), feature_names=["a", "b", "c"],
                            metrics={}, training_data_hash="h", description="d")


def test_feature_names_must_be_unique(repository: ModelRepository) -> None:
    with pytest.raises(InvalidModel, match="unique"):
        repository.register("fraud", logistic_model([1, 2]), feature_names=["a", "a"],
                            metrics={}, training_data_hash="h", description="d")


@pytest.mark.parametrize("name", ["Fraud", "../etc", "a/b", "", "9lives", "x" * 65])
def test_model_names_must_be_plain_folder_names(repository: ModelRepository, name: str) -> None:
    with pytest.raises(InvalidModel, match="model name"):
        register(repository, logistic_model([1, 0, 0, 0]), name=name)


@pytest.mark.parametrize("filename", ["../escape.txt", "model.onnx", "metadata.json", ".hidden",
                                      "sub/dir.txt"])
def test_extra_files_must_have_plain_names_that_are_not_reserved(
        repository: ModelRepository, filename: str) -> None:
    with pytest.raises(InvalidModel, match="extra file name"):
        repository.register("fraud", logistic_model([1, 0, 0, 0]), feature_names=FEATURES,
                            metrics={}, training_data_hash="h", description="d",
                            extra_files={filename: b"x"})


def test_extra_files_are_stored_beside_the_model_and_found_by_name(
        repository: ModelRepository) -> None:
    version = register(repository, logistic_model([1, 0, 0, 0]),
                       extra_files={"thresholds.json": b'{"block": 0.9}'})
    path = repository.extra_file("fraud", version, "thresholds.json")
    assert path == repository.root / "fraud/1/thresholds.json"
    assert path.read_bytes() == b'{"block": 0.9}'
    assert repository.metadata("fraud", 1).extra_files == ("thresholds.json",)
    with pytest.raises(FileNotFoundError):
        repository.extra_file("fraud", version, "missing.json")


def test_unknown_models_and_versions_are_not_found(repository: ModelRepository) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    with pytest.raises(ModelNotFound):
        repository.versions("ranker")
    with pytest.raises(ModelNotFound):
        repository.production_version("ranker")
    with pytest.raises(VersionNotFound):
        repository.metadata("fraud", 2)
    with pytest.raises(VersionNotFound):
        repository.model_path("fraud", 0)


def test_config_pbtxt_describes_the_model_the_way_triton_loads_it(
        repository: ModelRepository, sklearn_onnx: bytes) -> None:
    register(repository, sklearn_onnx)
    config = repository.config_path("fraud").read_text()
    assert 'name: "fraud"' in config
    assert 'platform: "onnxruntime_onnx"' in config
    # Every tensor starts with the batch dimension, so Triton batches: dims leave it out.
    assert "max_batch_size: 4096" in config
    assert 'name: "X"\n    data_type: TYPE_FP32\n    dims: [ 4 ]' in config
    assert 'name: "probabilities"\n    data_type: TYPE_FP32\n    dims: [ 2 ]' in config
    # A [batch] tensor becomes dims [1] reshaped to [], as Triton's guide says.
    assert ('name: "label"\n    data_type: TYPE_INT64\n    dims: [ 1 ]\n'
            '    reshape: { shape: [ ] }') in config
    assert "version_policy: { specific: { versions: [ 1 ] } }" in config
    assert config.count("{") == config.count("}") and config.count("[") == config.count("]")


def test_config_pbtxt_parses_as_tritons_own_model_config_message(
        repository: ModelRepository, sklearn_onnx: bytes) -> None:
    # tritonclient ships Triton's ModelConfig descriptor (serialized, in model_config_pb2.py);
    # load it into a private pool so its protobuf 6 gencode check never runs here.
    spec = importlib.util.find_spec("tritonclient.grpc")
    assert spec is not None and spec.submodule_search_locations
    source = (Path(spec.submodule_search_locations[0]) / "model_config_pb2.py").read_text()
    match = re.search(r"AddSerializedFile\((b'.*?')\)\n", source, re.DOTALL)
    assert match, "tritonclient's model_config_pb2.py changed shape"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(match.group(1))))
    model_config = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("inference.ModelConfig"))
    register(repository, sklearn_onnx)

    config = text_format.Parse(repository.config_path("fraud").read_text(), model_config())

    assert (config.name, config.platform, config.max_batch_size) == ("fraud", "onnxruntime_onnx",
                                                                     4096)
    assert list(config.version_policy.specific.versions) == [1]
    assert [(i.name, list(i.dims)) for i in config.input] == [("X", [4])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("label", [1]),
                                                               ("probabilities", [2])]
    assert config.output[0].HasField("reshape") and not config.output[0].reshape.shape
    assert config.parameters["intra_op_thread_count"].string_value == "1"


def test_a_model_without_a_batch_dimension_gets_max_batch_size_zero_and_full_dims() -> None:
    config = render_config("scorer", 2, [TensorSpec("x", "FP64", (1, 3))],
                           [TensorSpec("y", "FP64", (1,))])
    assert "max_batch_size: 0" in config
    assert "dims: [ 1, 3 ]" in config
    assert production_version(config) == 2


def test_promote_moves_the_pointer_that_triton_and_our_server_read(
        repository: ModelRepository) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    register(repository, logistic_model([0, 1, 0, 0]))
    repository.promote("fraud", 2)
    assert repository.production_version("fraud") == 2
    assert "versions: [ 2 ]" in repository.config_path("fraud").read_text()


def test_promoting_a_version_that_does_not_exist_changes_nothing(
        repository: ModelRepository) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    before = repository.config_path("fraud").read_text()
    with pytest.raises(VersionNotFound):
        repository.promote("fraud", 5)
    assert repository.config_path("fraud").read_text() == before
    assert len(repository.history("fraud")) == 1


def test_promoting_the_production_version_again_records_nothing(
        repository: ModelRepository) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    repository.promote("fraud", 1)
    assert [h.version for h in repository.history("fraud")] == [1]


def test_rollback_goes_back_one_production_version_at_a_time(
        repository: ModelRepository) -> None:
    for weight in range(3):
        register(repository, logistic_model([weight, 0, 0, 0]))
    repository.promote("fraud", 2)
    repository.promote("fraud", 3)

    assert repository.rollback("fraud") == 2
    assert repository.production_version("fraud") == 2
    assert repository.rollback("fraud") == 1
    with pytest.raises(NothingToRollBack):
        repository.rollback("fraud")
    assert repository.production_version("fraud") == 1


def test_history_records_every_promotion_and_rollback_in_order(
        repository: ModelRepository) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    register(repository, logistic_model([0, 1, 0, 0]))
    repository.promote("fraud", 2)
    repository.rollback("fraud")

    history = [(h.action, h.version, h.previous) for h in repository.history("fraud")]
    assert history == [("promote", 1, None), ("promote", 2, 1), ("rollback", 1, 2)]


def test_a_pointer_moved_without_its_history_entry_still_rolls_back_to_the_one_before(
        repository: ModelRepository) -> None:
    for weight in range(3):
        register(repository, logistic_model([weight, 0, 0, 0]))
    repository.promote("fraud", 2)
    # A crash between writing the pointer and the history (the pointer is written first).
    config = repository.config_path("fraud")
    config.write_text(config.read_text().replace("versions: [ 2 ]", "versions: [ 3 ]"))

    assert repository.production_version("fraud") == 3
    assert repository.rollback("fraud") == 2


def test_the_command_line_lists_promotes_and_rolls_back(
        repository: ModelRepository, capsys: pytest.CaptureFixture[str]) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    register(repository, logistic_model([0, 1, 0, 0]))
    root = ["--root", str(repository.root)]

    assert cli.main([*root, "promote", "fraud", "2"]) == 0
    assert cli.main([*root, "list"]) == 0
    assert cli.main([*root, "rollback", "fraud"]) == 0
    assert cli.main([*root, "promote", "fraud", "7"]) == 1

    out = capsys.readouterr().out
    assert "fraud: production v1 -> v2" in out
    assert "production 2" in out and "versions 1, 2*" in out
    assert "fraud: rolled back to v1" in out
    assert repository.production_version("fraud") == 1


def test_the_command_line_shows_metadata_and_history(
        repository: ModelRepository, capsys: pytest.CaptureFixture[str]) -> None:
    register(repository, logistic_model([1, 0, 0, 0]))
    assert cli.main(["--root", str(repository.root), "show", "fraud"]) == 0
    out = capsys.readouterr().out
    assert '"training_data_hash": "sha256:abc"' in out
    assert "promote  -> v1" in out
