"""Stage 2: the serialized TensorRT engine, built from the stage-1 ONNX where TensorRT runs.

Locally (the `tensorrt` module and an NVIDIA GPU here) build_script.py drives the TensorRT Python API; on a
remote NVIDIA host (`--build-on ssh://user@host`, a Jetson or a GPU server) trtexec builds it there. Either
way the engine, the build log, the per-layer report and the timing cache come back beside the ONNX, and
the engine gets its own sidecar: TensorRT version, GPU, compute capability, flags, profiles, layer precisions.
An engine is named for its GPU (`...-sm87.plan`): it runs only on that GPU with that TensorRT version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekit.artifact import publish, staging
from edgekit.backends.tensorrt.options import TensorRTOptions
from edgekit.backends.tensorrt.profiles import Profile
from edgekit.backends.tensorrt.trtexec import WELL_KNOWN_PATHS, build_command, parse_device, parse_parser_errors
from edgekit.checksum import sha256_path
from edgekit.errors import ConversionError, UnsupportedOpError, UsageError
from edgekit.progress import SILENT, Progress
from edgekit.sidecar import Sidecar, read_sidecar

BUILD_SCRIPT = Path(__file__).with_name("build_script.py")
ENGINE_SUFFIX = ".plan"


class MissingOnDeviceError(UsageError):
    """The build host lacks what an engine build needs (TensorRT, trtexec): says what was looked for (exit 2)."""


@dataclass(frozen=True)
class EngineOptions:
    """Where and how to build: build_on None is this machine; an ssh:// URL a remote NVIDIA host."""

    build_on: str | None = None
    workspace_mib: int = 1024
    trtexec: str | None = None  # the remote trtexec; default: on PATH, then /usr/src/tensorrt/bin/trtexec
    transport: dict[str, Any] = field(default_factory=dict)  # ssh options (identity, options, timeout)


def engine_options(options: TensorRTOptions) -> EngineOptions:
    """Where and how to build, from TensorRT's export options."""
    transport = {
        **({"identity": options.identity} if options.identity else {}),
        **({"options": options.ssh_options} if options.ssh_options else {}),
    }
    return EngineOptions(options.build_on, options.workspace_mib, options.trtexec, transport)


def local_build_missing(target: str = "tensorrt-fp32") -> list[str]:
    """What this machine lacks to build (and run) the target's engines itself, as its YAML's `engine.requires`
    says (the same answer `edgekit targets` gives); empty when it can."""
    from edgekit.catalog import get_target
    from edgekit.catalog.requirements import engine_lacking

    return engine_lacking(get_target(target))


@dataclass
class BuildRecord:
    """What a build returned: the files in staging and the facts for the sidecar."""

    engine: Path
    layer_info: Path | None
    timing_cache: Path | None
    log: str
    facts: dict[str, Any]


def _stage1(onnx_file: Path) -> tuple[Sidecar, tuple[str, ...], list[Profile]]:
    """The stage-1 sidecar with the builder flags and profiles its steps recorded."""
    sidecar = read_sidecar(onnx_file)
    if not onnx_file.is_file() or sidecar is None or sidecar.runtime != "tensorrt" or onnx_file.suffix != ".onnx":
        raise UsageError(
            f"{onnx_file} is not a TensorRT-ready ONNX written by edgekit (with its sidecar).",
            hint="Write one with: edgekit export SOURCE --target tensorrt-fp32|tensorrt-fp16|tensorrt-int8 -o DIR",
        )
    flags: tuple[str, ...] = ()
    profiles: list[Profile] = []
    for step in sidecar.route:
        extra = step.model_extra or {}
        if "builder_flags" in extra:
            flags = tuple(extra["builder_flags"])
        if "profiles" in extra:
            profiles = [Profile.from_json(name, p) for name, p in extra["profiles"].items()]
    return sidecar, flags, profiles


def build_engine(onnx_file: str | Path, options: EngineOptions = EngineOptions(), progress: Progress = SILENT) -> Path:
    """Build the engine for a stage-1 ONNX; returns the published engine path (sidecar beside it)."""
    onnx_file = Path(onnx_file)
    sidecar, flags, profiles = _stage1(onnx_file)
    where = options.build_on or "this machine"
    if options.build_on is None:
        missing = local_build_missing(sidecar.target)
        if missing:
            raise MissingOnDeviceError(
                f"This machine cannot build TensorRT engines: it {'; '.join(missing)}.",
                hint="Build on an NVIDIA host with --build-on ssh://user@host (it needs trtexec), or run edgekit "
                "in docker/tensorrt.Dockerfile on a GPU machine. The TensorRT-ready ONNX works as it is.",
            )
    out = onnx_file.parent
    cache = onnx_file.with_name(onnx_file.stem + ".timing.cache")
    with staging(out) as tmp:
        with progress.step(f"build the TensorRT engine on {where} ({', '.join(flags) or 'fp32'})"):
            if options.build_on is None:
                record = _build_local(onnx_file, tmp, flags, profiles, cache, options)
            else:
                record = _build_remote(onnx_file, tmp, flags, profiles, cache, options)
        cc = record.facts.get("compute_capability")
        stem = f"{onnx_file.stem}-sm{cc.replace('.', '')}" if cc else f"{onnx_file.stem}-engine"
        final = out / f"{stem}{ENGINE_SUFFIX}"
        layers = layer_precisions(json.loads(record.layer_info.read_text())) if record.layer_info else None
        log_file = out / f"{stem}.build.log"
        log_file.write_text(record.log)
        if record.layer_info:
            record.layer_info.replace(out / f"{stem}.layers.json")
        if record.timing_cache and record.timing_cache.exists():
            record.timing_cache.replace(cache)
        parity = _engine_parity(onnx_file, record.engine, sidecar) if options.build_on is None else None
        engine_facts = {
            **record.facts,
            **({"parity_vs_onnx": parity} if parity else {}),
            "built_on": where,
            "builder_flags": list(flags),
            "profiles": {p.name: p.to_json() for p in profiles},
            "layer_precisions": layers,
            "build_log": log_file.name,
            "layer_report": f"{stem}.layers.json" if record.layer_info else None,
            "timing_cache": cache.name,
            "from_onnx": {"file": onnx_file.name, "sha256": sidecar.sha256},
        }
        data = sidecar.to_json()
        data.update(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            file=final.name,
            size_bytes=record.engine.stat().st_size,
            sha256=sha256_path(record.engine),
            engine=engine_facts,
        )
        publish(record.engine, final, Sidecar.model_validate(data))
    return final


def engine_onnx(engine: Path) -> tuple[Path, dict[str, Any]]:
    """The TensorRT-ready ONNX an engine was built from (beside it, as its sidecar hashed it) and the engine's
    build facts, where this machine can build engines: what rebuilding it with its layers exposed needs."""
    sidecar = read_sidecar(engine)
    facts = (sidecar.engine if sidecar else None) or {}
    source = facts.get("from_onnx") or {}
    if not source:
        raise UsageError(
            f"{engine.name} has no sidecar naming the ONNX it was built from: edgekit diff rebuilds a TensorRT "
            "engine from that ONNX with every layer's tensors exposed.",
            hint="Build engines with edgekit build-engine, which records it.",
        )
    onnx_file = engine.parent / source["file"]
    if not onnx_file.is_file() or sha256_path(onnx_file) != source.get("sha256"):
        raise UsageError(
            f"{engine.name} was built from {onnx_file.name}, which is not beside it as it was: edgekit diff rebuilds "
            "the engine from that ONNX with every layer's tensors exposed.",
            hint=f"Put the TensorRT-ready ONNX {onnx_file.name} (sha256 {str(source.get('sha256'))[:12]}...) back "
            f"beside the engine, or diff the ONNX itself: edgekit diff {onnx_file.name}",
        )
    missing = local_build_missing(_stage1(onnx_file)[0].target)
    if missing:
        raise MissingOnDeviceError(
            f"edgekit diff rebuilds a TensorRT engine with its layers exposed, and this machine cannot build "
            f"engines: it {'; '.join(missing)}.",
            hint=f"Run edgekit diff on the GPU machine, or diff the TensorRT-ready ONNX here: edgekit diff "
            f"{onnx_file.name} (ONNX Runtime runs it).",
        )
    return onnx_file, facts


def tapped_engine(onnx_file: Path, facts: dict[str, Any], marks: tuple[str, ...], tmp: Path) -> tuple[Path, list[str]]:
    """An engine rebuilt here from its ONNX and build facts (engine_onnx) with the same builder flags and profiles
    and each of `marks` made an output (what edgekit diff reads); returns it and the tensors marked."""
    profiles = _stage1(onnx_file)[2]
    flags = tuple(facts.get("builder_flags") or ())
    record = _build_local(onnx_file, tmp, flags, profiles, tmp / "unused.cache", EngineOptions(), marks)
    return record.engine, list(record.facts.get("marked") or [])


def _engine_parity(onnx_file: Path, engine: Path, sidecar: Sidecar) -> dict[str, Any]:
    """The engine against its ONNX in ONNX Runtime, on generated inputs at the profiles' opt shapes, with the
    target's tolerance; a miss is a ParityError and nothing is published (runs only where the engine does)."""
    from edgekit.backends.onnxruntime.runner import OnnxRuntimeRunner
    from edgekit.backends.tensorrt.runner import TensorRTRunner
    from edgekit.catalog import get_target
    from edgekit.data import generated_inputs
    from edgekit.errors import ParityError
    from edgekit.parity import check_parity
    from edgekit.spec import Signature

    signature = Signature(sidecar.tensors.input_specs())
    data = generated_inputs(signature, n=8)
    with OnnxRuntimeRunner(onnx_file) as ref, TensorRTRunner(engine) as got:
        roles = {name: str(role) for name, role in sidecar.tensors.roles().items()}
        result = check_parity(ref, got, data, 1, get_target(sidecar.target).parity, roles=roles)
    if not result.passed:
        raise ParityError(f"The TensorRT engine disagrees with its ONNX: {'; '.join(result.failures())}")
    return result.to_json()


def _build_local(
    onnx_file: Path,
    tmp: Path,
    flags: tuple[str, ...],
    profiles: list[Profile],
    cache: Path,
    options: EngineOptions,
    marks: tuple[str, ...] = (),
) -> BuildRecord:
    """Build in a subprocess on this machine's GPU; `marks`: tensors to make outputs too (edgekit diff)."""
    engine, layers, cache_tmp = tmp / "engine.plan", tmp / "layers.json", tmp / "timing.cache"
    if cache.exists():
        cache_tmp.write_bytes(cache.read_bytes())
    argv = [
        sys.executable,
        str(BUILD_SCRIPT),
        "--onnx",
        str(onnx_file),
        "--engine",
        str(engine),
        "--flags",
        ",".join(flags),
        "--profiles",
        json.dumps({p.name: p.to_json() for p in profiles}),
        "--timing-cache",
        str(cache_tmp),
        "--layer-info",
        str(layers),
        "--workspace-mib",
        str(options.workspace_mib),
        "--mark",
        json.dumps(list(marks)),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise ConversionError(f"The TensorRT build crashed: {(proc.stderr or proc.stdout).strip()[-800:]}") from None
    _raise_for(result, proc.stderr, "this machine")
    return BuildRecord(engine, layers, cache_tmp, proc.stderr, _facts(result))


def _raise_for(result: dict[str, Any], log: str, where: str) -> None:
    if result.get("error") == "missing":
        raise MissingOnDeviceError(f"{where}: {result['message']}.")
    if result.get("error") == "parse":
        raise UnsupportedOpError(
            f"TensorRT's ONNX parser on {where} refused the model: " + "; ".join(result["parser_errors"][:5]),
            hint="The op named is not supported by this TensorRT version; see the build log.",
        )
    if result.get("error"):
        raise ConversionError(f"The TensorRT build on {where} failed: {result.get('message')}", hint=log[-800:])


def _facts(result: dict[str, Any]) -> dict[str, Any]:
    built = ("tensorrt_version", "gpu", "compute_capability", "builder_flags_set", "builder_flags_not_in_this_version")
    keep = (*built, "marked")  # marked: the tensors made outputs for edgekit diff (tapped_engine)
    return {k: result[k] for k in keep if k in result}


def find_trtexec(transport, given: str | None) -> str:
    """The remote trtexec: the one given, else the first of WELL_KNOWN_PATHS that runs there."""
    candidates = (given,) if given else WELL_KNOWN_PATHS
    found = transport.find_tool(candidates)
    if found:
        return found
    raise MissingOnDeviceError(
        f"{transport.name} has no trtexec: looked for {' and '.join(candidates)}.",
        hint="Install TensorRT there (JetPack ships /usr/src/tensorrt/bin/trtexec) or pass --trtexec PATH.",
    )


def remote_version(transport, tool: str) -> str | None:
    """The TensorRT version trtexec reports in its banner (`[TensorRT v100300]`), or None."""
    banner = transport.run([tool, "--help"], timeout=120)
    return parse_device(banner.stdout + banner.stderr).get("tensorrt_version")


def _build_remote(
    onnx_file: Path, tmp: Path, flags: tuple[str, ...], profiles: list[Profile], cache: Path, options: EngineOptions
) -> BuildRecord:
    from edgekit.transport import open_transport

    if not options.build_on or not options.build_on.startswith("ssh://"):
        raise UsageError(f"--build-on '{options.build_on}' is not an ssh:// URL.", hint="Write ssh://user@host[:port].")
    with open_transport(options.build_on, **options.transport) as t:
        tool = find_trtexec(t, options.trtexec)
        version = remote_version(t, tool)
        # TensorRT 11 builds every network strongly typed and dropped the precision flags
        sent = flags if version is None or int(version.split(".")[0]) < 11 else ()
        onnx_remote = t.push(onnx_file)
        cache_remote = t.push(cache) if cache.exists() else f"{t.workdir}/timing.cache"
        engine_remote, layers_remote = f"{t.workdir}/engine.plan", f"{t.workdir}/layers.json"
        argv = build_command(
            tool, onnx_remote, engine_remote, sent, profiles, cache_remote, layers_remote, options.workspace_mib
        )
        result = t.run(argv)
        log = result.stdout + result.stderr
        if result.returncode != 0:
            errors = parse_parser_errors(log)
            parse_failed = "Failed to parse onnx file" in log or any("ModelImporter" in e for e in errors)
            failure = {
                "error": "parse" if parse_failed else "build",
                "parser_errors": errors,
                "message": "; ".join(errors[:3]) or f"trtexec exited {result.returncode}",
            }
            _raise_for(failure, log, t.name)
        engine, layers, cache_tmp = tmp / "engine.plan", tmp / "layers.json", tmp / "timing.cache"
        t.fetch(engine_remote, engine)
        t.fetch(layers_remote, layers)
        t.fetch(cache_remote, cache_tmp)
    facts = {**parse_device(log), "builder_flags_set": list(sent), "tool": "trtexec"}
    return BuildRecord(engine, layers, cache_tmp, log, facts)


def _precision(layer: dict[str, Any]) -> str:
    """A layer's precision from TensorRT's layer report: its weights' type, else its first output's format."""
    weights = (layer.get("Weights") or {}).get("Type")
    text = weights or " ".join(str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", [])[:1])
    for needle, name in (("Int8", "int8"), ("FP8", "fp8"), ("Half", "fp16"), ("FP16", "fp16"), ("Float", "fp32"),
                         ("FP32", "fp32"), ("Int32", "int32"), ("Int64", "int64"), ("Bool", "bool")):  # fmt: skip
        if needle in text:
            return name
    return "unknown"


def layer_precisions(info: dict[str, Any]) -> dict[str, Any]:
    """Counts of layers per precision and each layer's (name, type, precision), from the JSON that
    trtexec --exportLayerInfo and IEngineInspector write (names only unless built with detailed verbosity)."""
    layers = []
    for layer in info.get("Layers", []):
        if isinstance(layer, str):  # not built with --profilingVerbosity=detailed
            layers.append({"name": layer, "type": None, "precision": "unknown"})
        else:
            layers.append({"name": layer.get("Name"), "type": layer.get("LayerType"), "precision": _precision(layer)})
    return {"counts": dict(Counter(r["precision"] for r in layers)), "layers": layers}
