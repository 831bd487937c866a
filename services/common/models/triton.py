"""config.pbtxt: the Triton model configuration whose version_policy is the production pointer.

Triton's ModelConfig is a protobuf in text format. `render_config` writes the subset this project
needs; `production_version` reads back the one line that matters, the specific version served:

    version_policy: { specific: { versions: [ 3 ] } }

so the folder NVIDIA Triton would load and the folder our server watches agree on what serves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.common.models.datatypes import by_oip
from services.common.models.metadata import TensorSpec

PLATFORM = "onnxruntime_onnx"
DEFAULT_MAX_BATCH_SIZE = 4096
_POLICY = re.compile(
    r"^version_policy:\s*\{\s*specific:\s*\{\s*versions:\s*\[\s*(\d+)\s*\]\s*\}\s*\}\s*$",
    re.MULTILINE,
)


def _batches(specs: Sequence[TensorSpec]) -> bool:
    # Triton batches a model only when every input and output starts with the batch dimension.
    return all(spec.batched for spec in specs)


def _tensor(spec: TensorSpec, batched: bool) -> list[str]:
    dims = spec.shape[1:] if batched else spec.shape
    lines = [f'    name: "{spec.name}"', f"    data_type: {by_oip(spec.datatype).triton}"]
    if dims:
        lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:
        # A [batch] tensor has no dims left once the batch is taken out; Triton spells that
        # dims [1] reshaped to [] (its model-configuration guide, "Reshape").
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    return ["  {", *lines, "  }"]


def _section(kind: str, specs: Sequence[TensorSpec], batched: bool) -> list[str]:
    body: list[str] = []
    for i, spec in enumerate(specs):
        block = _tensor(spec, batched)
        if i < len(specs) - 1:
            block[-1] += ","
        body += block
    return [f"{kind} [", *body, "]"]


def render_config(name: str, production: int, inputs: Sequence[TensorSpec],
                  outputs: Sequence[TensorSpec],
                  max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> str:
    """config.pbtxt for `name`, serving version `production`, with that version's tensors."""
    batched = _batches([*inputs, *outputs])
    lines = [
        "# Written by services.common.models (python -m services.common.models promote|rollback).",
        "# version_policy is the production pointer: edit it through those commands only.",
        f'name: "{name}"',
        f'platform: "{PLATFORM}"',
        f"max_batch_size: {max_batch_size if batched else 0}",
        f"version_policy: {{ specific: {{ versions: [ {production} ] }} }}",
        *_section("input", inputs, batched),
        *_section("output", outputs, batched),
        "instance_group [ { count: 1, kind: KIND_CPU } ]",
        # The same session sizing as our server's, for a small CPU box (onnxruntime_backend).
        'parameters { key: "intra_op_thread_count" value: { string_value: "1" } }',
        'parameters { key: "inter_op_thread_count" value: { string_value: "1" } }',
    ]
    return "\n".join(lines) + "\n"


def production_version(config_text: str) -> int | None:
    """The version the config's specific version_policy names; None when it names no single one."""
    match = _POLICY.search(config_text)
    return int(match.group(1)) if match else None
