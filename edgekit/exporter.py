"""export(): load -> plan -> steps (converters, then a quantizer) -> parity -> publish, bookkeeping in one place."""

from __future__ import annotations

import copy
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit._lazy import available
from edgekit.artifact import prepare_out_dir, publish, staging
from edgekit.backends.base import Backend, Converter, StepContext, StepFn, StepNotes
from edgekit.backends.options import BackendOptions
from edgekit.backends.registry import backend_for_runtime, find_routes, resolve_options, supports
from edgekit.catalog import get_device, get_target, local_device, resolve
from edgekit.catalog.requirements import engine_lacking
from edgekit.catalog.schema import Device, Recipe, Target
from edgekit.checksum import sha256_path, size_of
from edgekit.data import (
    CALIB_HINT,
    CALIB_LIMIT,
    Dataset,
    batch_size_for,
    check_tokenizer_dir,
    generated_inputs,
    read_data,
    static_shapes,
)
from edgekit.dispatch import check_device_rules
from edgekit.errors import (
    ConversionError,
    GateError,
    ModelLoadError,
    NoRouteError,
    ParityError,
    UnsupportedOpError,
    UsageError,
    first_line,
)
from edgekit.fallback import FallbackOptions, Gate, Verdict, fallback_record_json, rank, search
from edgekit.parity import ParityResult
from edgekit.progress import SILENT, Progress
from edgekit.sensitivity import SAMPLES, LayerSensitivity, measure, quantizable_layers, resolve_patterns
from edgekit.sidecar import ArtifactIO, Sidecar, sidecar_path
from edgekit.sources import Model, load
from edgekit.spec import InputSpecs, Signature

NOT_TAKEN = "not taken"  # a route_choice `tried` result: a later route tried after the chosen one passed

_VERSIONED = (
    "onnx",
    "torch",
    "onnxscript",
    "tensorflow",
    "tf2onnx",
    "tf_keras",
    "keras",
    "transformers",
    "numpy",
)  # the source side's tools; each backend names its own (Backend.versioned)


@dataclass
class ExportResult:
    artifact: Path
    sidecar: dict[str, Any]  # the sidecar as written (edgekit.sidecar.Sidecar, dumped to JSON)
    parity: ParityResult
    warnings: list[str] = field(default_factory=list)
    engine: Path | None = None  # the second file built from `artifact` where the runtime runs (TensorRT)

    @property
    def size_bytes(self) -> int:
        """What the artifact weighs: the file and its companions (an OpenVINO .xml and its .bin)."""
        return self.sidecar["size_bytes"] + sum(c["size_bytes"] for c in self.sidecar["companions"])


def tool_versions() -> dict[str, str]:
    from edgekit.backends.registry import backends

    out = {"edgekit": __version__}
    for name in dict.fromkeys([*_VERSIONED, *(v for b in backends().values() for v in b.versioned)]):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _backend(tgt: Target) -> Backend:
    backend = backend_for_runtime(tgt.runtime)
    if backend is None or not supports(tgt.runtime, tgt.quantization):
        raise NoRouteError(
            f"Target '{tgt.name}' ({tgt.description}) has no exporter in this version of edgekit.",
            hint="Run `edgekit targets` to see which targets export here.",
        )
    return backend


def _diff_command(rejected: Path, source, weights, calib) -> str:
    """The `edgekit diff` command line for a file that failed its gate."""
    parts = ["edgekit diff", shlex.quote(str(rejected)), "--data", shlex.quote(str(calib or "DATA"))]
    parts += ["--reference", shlex.quote(str(source))] + (["--weights", shlex.quote(str(weights))] if weights else [])
    return " ".join(parts)


def export(
    source: str | Path,
    target: str,
    out_dir: str | Path,
    *,
    calib: str | Path | None = None,
    device: str | None = None,
    inputs: InputSpecs = (),
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    calib_limit: int = CALIB_LIMIT,
    allow_float_fallback: bool = False,
    fallback: FallbackOptions = FallbackOptions(),
    options: Mapping[str, Any] | BackendOptions | None = None,
    progress: Progress = SILENT,
) -> ExportResult:
    """Export `source` to `target` in folder `out_dir`; raise ParityError if the file disagrees with its source.

    calib: calibration and parity data (DATA); calib_limit: use at most this many samples of it.
    allow_float_fallback: an integer target may keep ops without integer kernels in float (they are
    listed in the sidecar); without it such a file is refused.
    fallback: the per-layer float fallback and the gate it works to (edgekit.fallback).
    options: the target's backend's own settings (its options model, or a mapping of its fields: ONNX
    Runtime's fuse, TensorRT's profiles and engine build); a key the backend lacks is a UsageError.
    """
    tgt = get_target(target)
    backend = _backend(tgt)
    resolved = resolve_options(backend, options, tgt.name)
    dev = _device(device, tgt, backend, progress)
    check_device_rules([dev.name])
    out = prepare_out_dir(out_dir)
    if calib is None and tgt.needs_calibration:
        raise UsageError(f"Target '{tgt.name}' needs calibration data to set its int8 ranges.", hint=CALIB_HINT)

    tokenizer_dir = check_tokenizer_dir(Path(tokenizer)) if tokenizer else None
    with progress.step(f"load {source}"):
        model = load(source, inputs, weights)
    if tokenizer_dir:
        model.tokenizer_dir = tokenizer_dir
    recipe = replace(resolve(tgt, dev), allow_float_fallback=allow_float_fallback)
    routes = _routes(model.format, backend, tgt.quantization, whole_integer=recipe.supported_ops is not None)
    data = read_data(calib, model.signature, model.tokenizer_dir, calib_limit) if calib else None
    warnings: list[str] = []
    parity_data = data
    if parity_data is None:
        parity_data = generated_inputs(model.signature, vocab_size=model.extra.get("vocab_size"))
    measured = fallback.run_on != "local" or backend.cannot_run_here() is None  # else the gate says it is not
    if data is None and measured:
        warnings.append(
            "parity was checked on generated random inputs, not real data: pass --calib DATA "
            "for a check that means something"
        )
        progress.warn(warnings[-1])
    job = _Job(model, tgt, backend, dev, recipe, backend.plan(recipe), data, parity_data, resolved, fallback, progress)

    with staging(out) as tmp:
        outcome, route, tried = _first_route_that_passes(job, routes, tmp)
        artifact = out / f"{model.name}-{tgt.name}{tgt.suffix}"
        sidecar = _publish(job, outcome, artifact, _route_choice(routes, route, tried) if len(routes) > 1 else None,
                           warnings)  # fmt: skip
        if not outcome.chosen.verdict.passed:
            raise _rejection(job, outcome, artifact, tried, _diff_command(_rejected(artifact), source, weights, calib))
    engine = _build_engine(backend, tgt, artifact, resolved, progress, warnings)
    return ExportResult(artifact, sidecar.to_json(), outcome.chosen.parity, warnings, engine)


def _first_route_that_passes(
    job: _Job, routes: list[list[Converter]], tmp: Path
) -> tuple[_Outcome, list[Converter], list[dict[str, str]]]:
    """Try the routes in order until one makes a file that passes its gate (or none is left): the outcome, its
    route, and what the routes before it did. A route that fails to convert moves on to the next one."""
    tried: list[dict[str, str]] = []
    for i, route in enumerate(routes):
        last_route = i == len(routes) - 1
        folder = tmp / f"route{i}"
        folder.mkdir()
        try:
            outcome = _through(job, route, folder)
        except (ConversionError, UnsupportedOpError, GateError) as e:  # GateError: no fallback met the gate
            if last_route:
                if tried:
                    e.hint = "; ".join(
                        filter(None, [(e.hint or "").rstrip("."), "routes tried before: " + _tried_text(tried)])
                    )
                raise
            tried.append({"route": route_name(route), "result": f"failed: {first_line(e)}"})
            job.progress.warn(f"{route_name(route)} failed ({first_line(e, 160)}): trying {route_name(routes[i + 1])}")
            continue
        if outcome.chosen.verdict.passed and not last_route:
            whole = _whole_layers_instead(job, route, outcome, routes[i + 1 :], tmp / f"route{i}-whole")
            if isinstance(whole, tuple):
                tried.append({"route": route_name(route), "result": whole[2]})
                return whole[0], whole[1], tried
            if whole is not None:  # tried and not taken: recorded after the routes before the chosen one
                tried.append(whole)
        if outcome.chosen.verdict.passed or last_route:
            return outcome, route, tried
        tried.append({"route": route_name(route), "result": "; ".join(outcome.chosen.verdict.failures())})
        job.progress.warn(f"{route_name(route)} made a file that failed its gate: trying {route_name(routes[i + 1])}")
    raise AssertionError("the last route returns or raises")


def _whole_layers_instead(
    job: _Job, route: list[Converter], outcome: _Outcome, later: list[list[Converter]], tmp: Path
) -> tuple[_Outcome, list[Converter], str] | dict[str, str] | None:
    """When a file passed only by keeping its converter's float-first groups float (TFLite's non-linear ops), it
    is no more integer than a later route's file that keeps them float by design, whose int8 layers are whole
    rather than split into channel groups (on MiniLM 2.5x faster): that route's file, when it passes its gate,
    with what to record of the first one; the record of why not, when it was tried and not taken; else None.
    Not when the user chose the layers kept float (they name the first route's groups) or changed an option from
    its default (LiteRT's steer its ONNX route)."""
    chose = job.fallback.keep_float or job.fallback.keep_sensitive
    if chose or job.options.model_dump() != type(job.options)().model_dump():
        return None
    kept = [g for g in (route[-1].float_first if route else ()) if g in outcome.chosen.verdict.kept]
    quantization = job.tgt.quantization
    by_design = next((r for r in later if r and quantization in r[-1].partly_float), None)
    if not kept or by_design is None:
        return None
    job.progress.info(f"{route_name(route)} passed keeping {', '.join(kept)} float: trying {route_name(by_design)}, "
                      "which keeps them float by design with its layers whole")  # fmt: skip
    tmp.mkdir()
    name = route_name(by_design)
    try:
        other = _through(job, by_design, tmp)
    except (ConversionError, UnsupportedOpError, GateError) as e:
        why = f"{NOT_TAKEN}: failed ({first_line(e, 160)})"
    else:
        layers = lambda o: [k for k in o.chosen.verdict.kept if k not in (*kept, *by_design[-1].float_last)]
        if other.chosen.verdict.passed and len(layers(other)) <= len(layers(outcome)):
            return other, by_design, f"passed keeping {', '.join(kept)} float, as this route's file does by design"
        why = (f"{NOT_TAKEN}: its file failed its gate" if not other.chosen.verdict.passed else
               f"{NOT_TAKEN}: its file kept {len(layers(other))} layers float ({', '.join(layers(other))}), the first "
               f"{len(layers(outcome))}")  # fmt: skip
    job.progress.info(f"{name} {why}: keeping the first file")
    return {"route": name, "result": why}


def _rejected(artifact: Path) -> Path:
    return artifact.with_name(f"{artifact.stem}.rejected{artifact.suffix}")


def _publish(job: _Job, outcome: _Outcome, artifact: Path, route_choice: Any, warnings: list[str]) -> Sidecar:
    """Publish the chosen file with its sidecar: as ARTIFACT when it passed its gate (removing what an earlier
    failed export left), else as the .rejected file kept for inspection."""
    chosen, backend = outcome.chosen, job.backend
    verdict = chosen.verdict
    warnings.extend(chosen.parity.warnings)
    fallback_record = (
        fallback_record_json(job.fallback, verdict, outcome.gate.tried, outcome.table, outcome.pinned)
        if outcome.keeps
        else None
    )
    rejected = _rejected(artifact)
    quantization = {
        **job.recipe.to_json(),
        **chosen.quantized,
        "applied": chosen.applied,
        **({"fallback": fallback_record} if fallback_record else {}),
    }
    sidecar = _sidecar(
        job.model,
        job.tgt,
        job.dev,
        quantization,
        job.data,
        chosen.parity,
        chosen.steps,
        backend.describe_io(chosen.file, job.model),
        warnings,
        chosen.file,
        artifact if verdict.passed else rejected,
        verdict.evaluation,
        backend,
        route_choice,
    )
    if not verdict.passed:
        publish(chosen.file, rejected, sidecar, backend.companions)
        return sidecar
    publish(chosen.file, artifact, sidecar, backend.companions)
    for stale in (rejected, sidecar_path(rejected), *backend.companions(rejected)):
        stale.unlink(missing_ok=True)  # an earlier failed attempt no longer describes this export
    return sidecar


def _rejection(
    job: _Job, outcome: _Outcome, artifact: Path, tried: list[dict[str, str]], diff_command: str
) -> ParityError:
    """The error of a file that failed its gate: why no fallback could help, where the file was kept, and the
    command that finds the layer where it diverges."""
    tgt, backend, fallback = job.tgt, job.backend, job.fallback
    off = ""
    if not fallback.enabled:
        off = " (--no-fallback)"
    elif not outcome.step_keeps and tgt.quantization != "none":
        off = f" ({backend.runtime} keeps no layers float in {tgt.quantization} quantization)"
    elif not outcome.keeps and tgt.quantization != "none":
        off = f" (no layers of this {job.model.kind} source can be kept float)"
    return ParityError(
        f"{tgt.name} failed its gate{off}: " + "; ".join(outcome.chosen.verdict.failures()),
        hint=f"The file was kept for inspection as {_rejected(artifact)}, not as {artifact.name}."
        + (f" Routes tried before: {_tried_text(tried)}." if tried else "")
        # only where the runtime exposes its intermediates to edgekit diff (not .ptl, .pte, engines)
        + (f" Find the layer where it diverges: {diff_command}" if backend.layer_taps else ""),
    )


@dataclass(frozen=True)
class _Job:
    """What every route of one export shares: the source, the target and its recipe, the data, the options."""

    model: Model
    tgt: Target
    backend: Backend
    dev: Device
    recipe: Recipe
    plan: Any
    data: Dataset | None
    parity_data: Dataset
    options: BackendOptions
    fallback: FallbackOptions
    progress: Progress


@dataclass
class _Outcome:
    """One route's result: the attempt chosen (after the per-layer fallback, when it ran) and its records."""

    chosen: _Attempt
    gate: Gate
    table: list[LayerSensitivity]
    pinned: tuple[str, ...]
    keeps: bool  # the quantizing step honours keep_float and has layers it can name
    step_keeps: bool  # this route's quantizing step can keep layers float at all


def route_name(route: list[Converter]) -> str:
    """A route as the sidecar and messages name it: `torch->onnx (torch.onnx), onnx->tflite (onnx2tf ...)`."""
    return ", ".join(f"{e.src}->{e.dst} ({e.tool})" for e in route) or "no conversion"


def _tried_text(tried: list[dict[str, str]]) -> str:
    return "; ".join(f"{t['route']}: {t['result']}" for t in tried)


def _routes(src: str, backend: Backend, quantization: str, whole_integer: bool = False) -> list[list[Converter]]:
    """The routes from format `src` that can make this target here, in the order they are tried: each
    converter's modules importable, and the target's quantization applied by the route's last converter or the
    backend's quantizer. The registry orders them (a direct converter first); a route whose file keeps ops float by
    design goes last, and is left out when the device runs only listed ops (`whole_integer`)."""
    candidates = find_routes(src, backend.format)

    def partly_float(route: list[Converter]) -> bool:
        return bool(route) and quantization in route[-1].partly_float

    usable = [
        r
        for r in candidates
        if all(available(m) for e in r for m in e.needs)
        and (
            quantization == "none"
            or backend.quantizer(quantization) is not None
            or bool(r and quantization in r[-1].quantizes)
        )
        and not (whole_integer and partly_float(r))
    ]
    usable.sort(key=partly_float)  # stable: the registry's order otherwise
    return usable or candidates[:1]  # none usable: the first one fails with its own words (a missing module)


def _route_choice(routes: list[list[Converter]], chosen: list[Converter], tried: list[dict[str, str]]) -> dict:
    """Why the file came through the route it did, for the sidecar: the candidates in order, what each route
    tried before it gave, and why a later route tried after it was not taken."""
    before = [t for t in tried if not t["result"].startswith(NOT_TAKEN)]
    why = (
        "the first route whose file passed its gate"
        if not before
        else f"the routes before it failed, or kept as much float with their layers split ({len(before)})"
    )
    if len(before) < len(tried):
        why += "; a later route whose file keeps the non-linear ops float by design was tried and not taken"
    return {"chosen": route_name(chosen), "candidates": [route_name(r) for r in routes], "tried": tried, "why": why}


def _through(job: _Job, route: list[Converter], tmp: Path) -> _Outcome:
    """Run one route: its conversions, the graph optimization, then the quantizing step with the gate and,
    when the gate fails, the per-layer float fallback. Files are written in `tmp`."""
    run = _RouteRun(job, route, tmp)
    run.convert()
    return run.quantize_and_gate()


class _RouteRun:
    """One route's steps in order, each timed and recorded in the route record (`steps`)."""

    def __init__(self, job: _Job, route: list[Converter], tmp: Path) -> None:
        self.job, self.route, self.tmp = job, route, tmp
        self.steps: list[dict[str, Any]] = []
        self.applied = "none"
        tgt, backend = job.tgt, job.backend
        self.quantizer = backend.quantizer(tgt.quantization)
        # a converter that quantizes while converting (TFLite, PyTorch Mobile, ExecuTorch) is the step the
        # fallback re-runs; otherwise the quantizer after the route is
        last = route[-1] if route and self.quantizer is None and tgt.quantization in route[-1].quantizes else None
        self.last = last
        # converters that need fixed shapes (onnx2tf, ExecuTorch): the whole route then exports with them
        self.edge_model = _with_static_shapes(job.model, job.data) if any(e.static_shapes for e in route) else job.model
        self.float_file: Path | None = None  # the file before quantization; None while the model is only in memory

    @property
    def float_first(self) -> list[str]:
        """The groups the quantizing converter keeps float before any layer (TFLite's non-linear ops)."""
        return list(self.last.float_first) if self.last else []

    @property
    def float_last(self) -> tuple[str, ...]:
        """The groups the quantizer keeps float when every layer float fails (ONNX Runtime's non-layer ops,
        TFLite's embedding lookups)."""
        if self.quantizer:
            return self.quantizer.float_last
        return self.last.float_last if self.last else ()

    def _context(self, model: Model, current: Path | None, out: Path, **extra: Any) -> StepContext:
        job = self.job
        return StepContext(model, current, job.recipe, job.plan, job.data, out, options=job.options, **extra)

    def _step(self, name: str, tool: str | None, fn: StepFn, ctx: StepContext, label: str) -> StepNotes:
        """Run one step with its timing and progress line; its notes go into the route record."""
        with self.job.progress.step(label):
            t0 = time.perf_counter()
            notes = fn(ctx)
        self.applied = notes.applied or self.applied
        self.steps.append(
            {
                "step": name,
                "tool": tool or notes.details.get("method"),
                "seconds": round(time.perf_counter() - t0, 2),
                **({"applied": notes.applied} if notes.applied else {}),
            }
        )
        return notes

    def convert(self) -> None:
        """The conversions (all but a quantizing last one) and the backend's graph optimization."""
        tgt, backend, tmp = self.job.tgt, self.job.backend, self.tmp
        current: Path | None = None
        if not self.route:
            current = tmp / f"float{tgt.suffix}"
            _save_source_copy(self.job.model, current)
        for i, edge in enumerate(self.route[:-1] if self.last else self.route):
            step_file = tmp / f"step{i}{tgt.suffix if i == len(self.route) - 1 else '.' + edge.dst}"
            ctx = self._context(self.edge_model, current, step_file)
            notes = self._step(
                f"{edge.src}->{edge.dst}", edge.tool, edge.run, ctx, f"convert {edge.src} -> {edge.dst} ({edge.tool})"
            )
            self.steps[-1].update(notes.details)
            current = step_file
        if backend.optimize is not None and current is not None:
            ctx = self._context(self.job.model, current, tmp / f"optimized{tgt.suffix}")
            notes = self._step("optimize", None, backend.optimize, ctx, f"optimize the graph for {backend.runtime}")
            if notes.details:
                self.steps[-1].update(notes.details)
            else:
                self.steps.pop()  # nothing to optimize in this graph: no record
            current = ctx.out if ctx.out.exists() else current
        self.float_file = current

    def attempt(self, gate: Gate, keep: tuple[str, ...], converted: int) -> _Attempt:
        """Run the quantizing step with `keep` in float, then the gate; each attempt writes its own file."""
        job, tgt, last = self.job, self.job.tgt, self.last
        del self.steps[converted:]
        tag = f"{len(gate.tried)}{tgt.suffix}"
        quantized: dict[str, Any] = {}  # a converter's quantization facts stay in its route step
        if last is not None:
            ctx = self._context(self.edge_model, self.float_file, self.tmp / f"last{tag}", keep_float=keep)
            label = f"convert {last.src} -> {last.dst} ({last.tool})"
            notes = self._step(f"{last.src}->{last.dst}", last.tool, last.run, ctx, label)
            self.steps[-1].update(notes.details)
            produced = ctx.out
        elif self.quantizer is not None:
            ctx = self._context(
                job.model, self.float_file, self.tmp / f"final{tag}", batch_size=batch_size_for(job.model.signature, 8),
                keep_float=keep,
            )  # fmt: skip
            scheme = f" ({job.recipe.scheme_name})" if job.recipe.scheme_name else ""
            label = f"quantize for {tgt.name} on {job.dev.name}{scheme}" + (
                f", {len(keep)} layer(s) float" if keep else ""
            )
            quantized = self._step(tgt.quantization, None, self.quantizer.run, ctx, label).details
            produced = ctx.out
        else:
            assert self.float_file is not None
            produced = self.float_file
        verdict = gate.judge(produced, job.backend.describe_io(produced, job.model), keep)
        return _Attempt(produced, quantized, verdict, gate.parities[-1], copy.deepcopy(self.steps), self.applied)

    def layer_names(self) -> tuple[list[str], bool, bool]:
        """The layers the fallback may keep float (the converter's float-first groups first), whether the
        quantizing step honours that, and whether it has layers to name; --keep-float (or --keep-sensitive) without
        them is refused."""
        job, tgt, backend = self.job, self.job.tgt, self.job.backend
        step_keeps = backend.keeps_float(tgt.quantization)
        # this route's quantizing step: another route's converter may keep layers where this one cannot
        route_keeps = tgt.quantization in self.last.keeps_float if self.last else step_keeps
        groups = [*self.float_first, *self.float_last]
        names = groups + quantizable_layers(job.model) if route_keeps and tgt.quantization != "none" else []
        keeps = len(names) > len(groups)
        flag = "--keep-float" if job.fallback.keep_float else "--keep-sensitive" if job.fallback.keep_sensitive else ""
        if flag and step_keeps and not route_keeps:
            raise ConversionError(f"{route_name(self.route)} cannot keep layers float for {tgt.name} ({flag})")
        if flag and not keeps:
            raise UsageError(
                f"{flag}: {tgt.name} from a {job.model.format} source ({job.model.kind}) has no layers edgekit "
                "can keep float"
                + (
                    f" ({backend.runtime} quantizes in its converter, which takes no layer list)"
                    if not step_keeps
                    else ""
                )
                + ".",
                hint="The per-layer fallback works on onnx-int8, onnx-int8-dynamic, pytorch-mobile-int8, "
                "executorch-int8, tflite-int8, tflite-int16x8 (from PyTorch) and openvino-int8, from Python (factory, "
                "Hugging Face), Keras 3 and ONNX sources.",
            )
        return names, keeps, route_keeps

    def sensitivity(self) -> list[LayerSensitivity]:
        """Each quantizable layer's error in int8 alone, in the fallback's order (measured in the source)."""
        job = self.job
        with job.progress.step(f"measure per-layer sensitivity on {min(len(job.parity_data), SAMPLES)} samples"):
            dynamic = job.recipe.quantization == "dynamic"
            outliers = job.recipe.scheme.max_outlier_ratio if job.recipe.scheme else None
            return rank(measure(job.model, job.data or job.parity_data, dynamic), outliers)

    def quantize_and_gate(self) -> _Outcome:
        """The first attempt (with --keep-float's layers), then the per-layer fallback when it fails its gate."""
        job, fallback, progress = self.job, self.job.fallback, self.job.progress
        gate = Gate(job.model, job.tgt, job.parity_data, fallback, progress)
        converted = len(self.steps)
        names, keeps, step_keeps = self.layer_names()
        pinned = tuple(resolve_patterns(fallback.keep_float, names)) if fallback.keep_float else ()
        table: list[LayerSensitivity] = []
        order = lambda: self.float_first + [s.layer for s in table]  # the fallback's order, once measured
        if fallback.keep_sensitive:  # measured before the first attempt
            table = self.sensitivity()
            pinned += tuple([n for n in order() if n not in pinned][: fallback.keep_sensitive])
        chosen = self.attempt(gate, pinned, converted)
        if keeps and not table and (fallback.report_sensitivity or (not chosen.verdict.passed and fallback.enabled)):
            table = self.sensitivity()
        if not chosen.verdict.passed and fallback.enabled and keeps:
            progress.warn(
                f"{job.tgt.name} failed its gate ({'; '.join(chosen.verdict.failures())}): keeping sensitive layers "
                "float"
            )
            attempts: dict[tuple[str, ...], _Attempt] = {}

            def tracked(keep: tuple[str, ...]) -> Verdict:
                try:
                    attempts[keep] = self.attempt(gate, keep, converted)
                except ModelLoadError as e:
                    gate.tried.append(Verdict.unloadable(keep, first_line(e, 300)))
                    return gate.tried[-1]
                return attempts[keep].verdict

            try:
                best, _ = search(tracked, pinned, order, chosen.verdict, last_resort=self.float_last)
            except GateError as e:
                e.hint = job.backend.gate_hint(chosen.file) or e.hint
                raise
            chosen = attempts[best.kept]
        gate.evaluate(
            chosen.verdict, chosen.file, job.backend.describe_io(chosen.file, job.model)
        )  # a rejected file's figures
        return _Outcome(chosen, gate, table, pinned, keeps, step_keeps)


def _device(name: str | None, tgt: Target, backend: Backend, progress: Progress) -> Device:
    """The named profile; else this machine's, or the backend's default when this machine's profile has no
    rule for the runtime (a TensorRT export on a CPU-only machine is for some NVIDIA GPU)."""
    if name:
        return get_device(name)
    here = local_device()
    if tgt.runtime not in here.runtimes and backend.default_device:
        progress.info(
            f"{tgt.name}: this machine ({here.name}) has no {tgt.runtime}; using --device {backend.default_device}"
        )
        return get_device(backend.default_device)
    return here


def _build_engine(
    backend: Backend, tgt: Target, artifact: Path, options: BackendOptions, progress: Progress, warnings: list[str]
) -> Path | None:
    """The engine stage after a published export: on the host the options name, or here when this machine can."""
    if tgt.engine is None or backend.engine is None:
        return None
    if options.engine_host() is None:
        missing = engine_lacking(tgt)
        if missing:
            warnings.append(
                f"the {tgt.engine.suffix} engine was not built: this machine {'; '.join(missing)}. Build it "
                f"where {tgt.runtime} runs: edgekit build-engine {artifact} [--build-on ssh://user@host]"
            )
            progress.info(warnings[-1])
            return None
    return backend.engine(artifact, options, progress)


def _with_static_shapes(model: Model, data: Dataset | None) -> Model:
    shapes = static_shapes(model.signature.inputs, data)
    inputs = tuple(replace(s, shape=shapes[s.name]) for s in model.signature.inputs)
    return replace(model, signature=Signature(inputs, model.signature.outputs))


def _save_source_copy(model: Model, dst: Path) -> None:
    import onnx

    onnx.save(model.obj, str(dst))


@dataclass
class _Attempt:
    """One run of the quantizing step and its gate: what is published if it is the one chosen."""

    file: Path
    quantized: dict[str, Any]  # a quantizer's notes: the sidecar's quantization facts
    verdict: Verdict
    parity: ParityResult
    steps: list[dict[str, Any]]  # the route record as it stood after this attempt
    applied: str


def _sidecar(
    model: Model,
    tgt: Target,
    dev: Device,
    quantization: dict[str, Any],
    data: Dataset | None,
    parity: ParityResult,
    steps: list[dict[str, Any]],
    io: ArtifactIO,
    warnings: list[str],
    staged: Path,
    final: Path,
    evaluation: dict[str, Any] | None,
    backend: Backend,
    route_choice: dict[str, Any] | None,
) -> Sidecar:
    companions = [
        {"file": placed.name, "size_bytes": staged_part.stat().st_size, "sha256": sha256_path(staged_part)}
        for staged_part, placed in zip(backend.companions(staged), backend.companions(final))
    ]
    return Sidecar.model_validate(
        {
            "edgekit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "target": tgt.name,
            "runtime": tgt.runtime,
            "precision": tgt.precision,
            "file": final.name,
            "size_bytes": size_of(staged),
            "sha256": sha256_path(staged),
            "route": steps,
            "device": {"name": dev.name, "description": dev.description},
            "tools": tool_versions(),
            "source": model.describe(),
            # absolute: evaluate and bundle read it from wherever they run
            "tokenizer": str(Path(model.tokenizer_dir).resolve()) if model.tokenizer_dir else None,
            "tensors": io,
            "quantization": quantization,
            "calibration": {"path": data.source, "sha256": data.sha256, "samples": len(data)} if data else None,
            "parity": parity.to_json(),
            "notes": model.notes,
            "warnings": warnings,
            "compression": model.extra.get("compression"),
            # the gate ran on the staged file; the published one is the same bytes under its final name
            "evaluation": {**evaluation, "artifact": final.name} if evaluation else None,
            "companions": companions,
            "route_choice": route_choice,
        }
    )
