"""Benchmark-worker loader for OpenVINO IR (self-contained: runs on devices with only openvino + numpy).

The .xml is read with its .bin beside it; the IR's rt_info names the OpenVINO device and the float precision
edgekit exported it for (written by edgekit.backends.openvino.convert), so the file runs the same everywhere.
"""

OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "f64": "float64",
    "i64": "int64",
    "i32": "int32",
    "i8": "int8",
    "u8": "uint8",
    "boolean": "bool",
}
RT_INFO = "edgekit"  # the rt_info section edgekit writes: device, inference_precision


def import_runtime():
    import openvino

    return openvino


def setting(model, key, default):
    """A value edgekit stored in the IR's rt_info, else `default`."""
    return model.get_rt_info([RT_INFO, key]).astype(str) if model.has_rt_info([RT_INFO, key]) else default


def placement(core, model):
    """Where the IR runs: the device its rt_info names where this machine has it, else the CPU in fp32 (an IR
    exported for an Intel GPU or NPU is checked on the CPU of the machine that exported it)."""
    device = setting(model, "device", "CPU")
    if device.split(".")[0] in {d.split(".")[0] for d in core.available_devices}:
        return device, setting(model, "inference_precision", None)
    return "CPU", "f32"


def compile_config(device, threads, precision):
    """OpenVINO compile properties: one latency stream; thread count and float precision where the device
    takes them (the CPU; GPU and NPU pick their own threads)."""
    config: dict = {"PERFORMANCE_HINT": "LATENCY"}
    if device == "CPU":
        config["NUM_STREAMS"] = "1"
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def load(ov, path, threads, specs=None):
    core = ov.Core()
    model = core.read_model(path)
    device, precision = placement(core, model)
    compiled = core.compile_model(model, device, compile_config(device, threads, precision))
    specs = [  # named as the IR declares them (a compiled port may answer to several names)
        (
            i.get_any_name(),
            OV_TYPES.get(i.get_element_type().get_type_name(), "float32"),
            [-1 if d.is_dynamic else d.get_length() for d in i.get_partial_shape()],
        )
        for i in model.inputs
    ]
    request = compiled.create_infer_request()
    outputs = list(compiled.outputs)

    def infer(feed):
        results = request.infer(feed)
        return [results[o] for o in outputs]

    return specs, infer, {"openvino": ov.get_version(), "openvino_device": device}
