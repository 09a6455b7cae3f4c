"""Benchmark-worker loader for .onnx files (self-contained: runs on devices with only onnxruntime + numpy)."""

ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def import_runtime():
    import onnxruntime

    return onnxruntime


def load(ort, path, threads, specs=None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    specs = [(i.name, ORT_TYPES.get(i.type, "float32"), list(i.shape)) for i in session.get_inputs()]
    names = [o.name for o in session.get_outputs()]

    def infer(feed):
        return session.run(names, feed)

    infer.session = session  # type: ignore[attr-defined]  # benchmarks/harness_self.py times the worker's loop against a bare session.run
    return specs, infer, {"onnxruntime": ort.__version__}
