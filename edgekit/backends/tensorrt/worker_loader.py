"""Running a TensorRT engine: TensorRT's Python API for the engine, cuda-python (cuda.bindings) for device
memory and the stream. Self-contained (numpy + tensorrt + cuda-python): the benchmark worker runs it on
NVIDIA hosts, and edgekit's TensorRT runner wraps the same EngineSession.
"""


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _ok(result):
    """cuda-python returns (error, value...): raise on an error, return the value(s)."""
    err, rest = result[0], result[1:]
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {int(err)} ({err})")
    return rest[0] if len(rest) == 1 else rest


def compute_capability():
    """'major.minor' of CUDA device 0."""
    props = _ok(_cudart().cudaGetDeviceProperties(0))
    return f"{props.major}.{props.minor}"


class EngineSession:
    """One deserialized engine with an execution context and a CUDA stream."""

    def __init__(self, trt, path):
        self.trt, self.cudart = trt, _cudart()
        with open(path, "rb") as f:
            blob = f.read()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {path} (another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.stream = _ok(self.cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]

    def dtype(self, name):
        import numpy as np

        return np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))

    def specs(self):
        """(name, dtype, shape) of every input; -1 marks a dim the profile leaves free."""
        return [(n, self.dtype(n).name, list(self.engine.get_tensor_shape(n))) for n in self.inputs]

    def run(self, feed):
        import numpy as np

        cudart = self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        buffers = []
        hosts: dict = {}  # name -> its host array (inputs), or (host array, device pointer) (outputs)
        try:
            for name in self.inputs:
                array = np.ascontiguousarray(feed[name], dtype=self.dtype(name))
                self.context.set_input_shape(name, array.shape)
                ptr = _ok(cudart.cudaMalloc(max(array.nbytes, 1)))
                buffers.append(ptr)
                _ok(cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, h2d, self.stream))
                self.context.set_tensor_address(name, ptr)
                hosts[name] = array  # kept alive until the stream is synchronized
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                out = np.empty(shape, dtype=self.dtype(name))
                ptr = _ok(cudart.cudaMalloc(max(out.nbytes, 1)))
                buffers.append(ptr)
                self.context.set_tensor_address(name, ptr)
                hosts[name] = (out, ptr)
            if not self.context.execute_async_v3(self.stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            for name in self.outputs:
                out, ptr = hosts[name]
                _ok(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream))
            _ok(cudart.cudaStreamSynchronize(self.stream))
            return {name: hosts[name][0] for name in self.outputs}
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)

    def close(self):
        self.cudart.cudaStreamDestroy(self.stream)
        self.context = self.engine = self.runtime = None


def import_runtime():
    import tensorrt

    _cudart()  # fail here, as a missing runtime, when cuda-python is absent
    return tensorrt


def load(trt, path, threads, specs=None):
    session = EngineSession(trt, path)

    def infer(feed):
        return session.run(feed)

    return session.specs(), infer, {"tensorrt": trt.__version__}
