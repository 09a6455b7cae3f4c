"""Benchmark-worker loader for .tflite files (self-contained: ai_edge_litert, or tflite_runtime on boards)."""


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "unknown"


def import_runtime():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, {"ai_edge_litert": _version("ai-edge-litert")}
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, {"tflite_runtime": _version("tflite-runtime")}


def load(imported, path, threads, specs=None):
    Interpreter, version = imported
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    specs = [(d["name"], d["dtype"].__name__, [int(x) for x in d["shape_signature"]]) for d in details]
    outputs = interpreter.get_output_details()

    def infer(feed):
        current = {d["index"]: list(d["shape"]) for d in interpreter.get_input_details()}
        if any(current[d["index"]] != list(feed[d["name"]].shape) for d in details):
            for d in details:
                interpreter.resize_tensor_input(d["index"], feed[d["name"]].shape)
            interpreter.allocate_tensors()
        for d in details:
            interpreter.set_tensor(d["index"], feed[d["name"]])
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]) for o in outputs]

    return specs, infer, version
