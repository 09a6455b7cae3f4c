"""Run calibration data through an ONNX graph with some of its inner tensors as outputs: what the float-graph
transformations before static int8 (smoothing, bias correction) measure."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset


def probe(model: Any, names: list[str], data: Dataset, batch_size: int) -> Iterator[list[np.ndarray]]:
    """Each calibration batch's values of the tensors `names` (in that order), from a copy of `model` that outputs
    them (float tensors; the graph's own outputs may be among them)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    outputs = {o.name for o in copy.graph.output}
    for name in names:
        if name not in outputs:
            copy.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx.save(copy, str(path), save_as_external_data=copy.ByteSize() > 1_500_000_000)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in data.batches(batch_size):
            yield session.run(names, batch)
