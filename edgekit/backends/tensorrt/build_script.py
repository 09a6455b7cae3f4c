"""Build a TensorRT engine from an ONNX file with the TensorRT Python API; print one JSON line.

Self-contained on purpose (standard library + tensorrt): edgekit runs it with the Python that has
TensorRT, locally or on an NVIDIA host, so it must not import edgekit.

    python build_script.py --onnx M.onnx --engine M.plan --flags FP16,INT8 --profiles JSON \
        --timing-cache M.timing.cache --layer-info M.layers.json --workspace-mib 1024

TensorRT 10 takes the precision from builder flags; TensorRT 11 builds every network strongly typed
(precision from the ONNX's own types and Q/DQ nodes) and has no such flags, so only the flags the
installed version knows are set, and the JSON says which.
"""

import argparse
import json
import os
import sys


def _gpu():
    """GPU name and compute capability of device 0, from cuda-python when installed."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) != 0:
            return {}
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {"gpu": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:
        return {}


def build(args, trt):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(args.onnx):
        errors = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            where = ""
            if hasattr(error, "node_name") and error.node_name():
                where = f" (node {error.node_name()}, op {error.node_operator()})"
            errors.append(f"{error.desc()}{where}")
        return {"error": "parse", "parser_errors": errors}
    marked = _mark_outputs(network, json.loads(args.mark))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, args.workspace_mib << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    set_flags, unknown_flags = [], []
    for name in [f for f in args.flags.split(",") if f]:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            unknown_flags.append(name)
        else:
            config.set_flag(flag)
            set_flags.append(name)
    profiles = json.loads(args.profiles)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, shape in profiles.items():
            profile.set_shape(name, shape["min"], shape["opt"], shape["max"])
        config.add_optimization_profile(profile)
    cache_bytes = b""
    if os.path.exists(args.timing_cache):
        with open(args.timing_cache, "rb") as f:
            cache_bytes = f.read()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        return {"error": "build", "message": "builder.build_serialized_network returned nothing (see the log)"}
    with open(args.engine, "wb") as out:
        out.write(serialized)
    with open(args.timing_cache, "wb") as out:
        out.write(memoryview(config.get_timing_cache().serialize()))
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    inspector = engine.create_engine_inspector()
    with open(args.layer_info, "w") as text:
        text.write(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    done = {"builder_flags_set": set_flags, "builder_flags_not_in_this_version": unknown_flags}
    return {**done, "marked": marked} if marked else done


def _mark_outputs(network, names):
    """Make the named tensors outputs too (edgekit diff reads each layer's input and output); returns those the
    parsed network has (a tensor the parser folded away has none to mark)."""
    wanted, marked = set(names), []
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for k in range(layer.num_outputs):
            tensor = layer.get_output(k)
            if tensor.name in wanted and tensor.name not in outputs:
                network.mark_output(tensor)
                outputs.add(tensor.name)
                marked.append(tensor.name)
    return marked


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--engine", required=True)
    parser.add_argument("--flags", default="")
    parser.add_argument("--profiles", default="{}")
    parser.add_argument("--timing-cache", required=True)
    parser.add_argument("--layer-info", required=True)
    parser.add_argument("--workspace-mib", type=int, default=1024)
    parser.add_argument("--mark", default="[]", help="JSON list of tensor names to make outputs as well")
    args = parser.parse_args()
    try:
        import tensorrt as trt
    except ImportError as e:
        print(json.dumps({"error": "missing", "message": f"the Python module tensorrt does not import: {e}"}))
        return 3
    result = {"tensorrt_version": trt.__version__, **_gpu()}
    try:
        result.update(build(args, trt))
    except Exception as e:  # TensorRT raises RuntimeError/TypeError with its own message
        result.update({"error": "build", "message": f"{type(e).__name__}: {e}"})
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
