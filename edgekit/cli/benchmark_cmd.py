"""`edgekit benchmark`: thin layer over edgekit.bench.harness.benchmark."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path

import click

from edgekit.cli.device_flags import ssh_flags, timeout_flag, transport_options


def read_baseline(path: Path) -> list[dict]:
    """An earlier --json, checked before anything runs: a list of runs with artifact, threads, batch, latency."""
    from edgekit.errors import UsageError

    try:
        runs = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"--baseline {path} is not readable JSON: {e}.") from None
    need = ("artifact", "threads", "batch", "latency_ms")
    if (
        not isinstance(runs, list)
        or not runs
        or not all(isinstance(r, dict) and all(k in r for k in need) for r in runs)
    ):
        raise UsageError(
            f"--baseline {path} is not an edgekit benchmark --json: it must be a list of runs, each with "
            f"{', '.join(need)}."
        )
    return runs


def a_a_pair(artifacts: list[str], folder: Path) -> list[str]:
    """The artifact and a byte-identical copy (with its sidecar) under another name: an A/A run measures
    what the harness and the machine alone make of two identical files."""
    import shutil

    from edgekit.dispatch import artifact_files, require_artifact
    from edgekit.errors import UsageError
    from edgekit.sidecar import sidecar_path

    if len(artifacts) != 1:
        raise UsageError("--aa benchmarks one artifact against a copy of itself: give exactly one.")
    original = Path(artifacts[0])
    require_artifact(original)
    copy = folder / f"{original.stem}.aa-copy{original.suffix}"
    for part, copied in zip(artifact_files(original), artifact_files(copy)):  # an OpenVINO .xml with its .bin
        shutil.copyfile(part, copied)
    if sidecar_path(original).exists():
        shutil.copyfile(sidecar_path(original), sidecar_path(copy))
    return [str(original), str(copy)]


def _ints(ctx, param, value: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter("give positive integers, e.g. 1,2,4")
    return values


@click.command("benchmark")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path())
@click.option("--device", default="local", show_default=True, help="local, ssh://user@host[:port] or adb://SERIAL.")
@click.option("--threads", default="1", callback=_ints, show_default=True, help="Thread counts, comma-separated.")
@click.option("--batch", default="1", callback=_ints, show_default=True, help="Batch sizes, comma-separated.")
@click.option(
    "--warmup", default=10, type=click.IntRange(min=0), show_default=True, help="Untimed inferences after the first."
)
@click.option(
    "--min-runs",
    default=50,
    type=click.IntRange(min=1),
    show_default=True,
    help="Timed inferences per process, at least.",
)
@click.option(
    "--min-time",
    default=1.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Seconds of timed inference per process, at least.",
)
@click.option(
    "--processes",
    default=3,
    type=click.IntRange(min=1),
    show_default=True,
    help="Fresh processes per artifact and setting.",
)
@click.option(
    "--max-time",
    type=click.FloatRange(min=0, min_open=True),
    help="Adaptive: after --processes rounds, add rounds until each ratio to the first artifact is known to "
    "+-target-ci, for at most this many seconds per setting.",
)
@click.option(
    "--target-ci",
    default=1.0,
    type=click.FloatRange(min=0, min_open=True),
    show_default=True,
    help="Adaptive: the ratio's 95%% interval, +- percent.",
)
@click.option(
    "--seq-len",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Size of every free non-batch input dim (a text model's sequence length, without padding).",
)
@click.option("--aa", is_flag=True, help="A/A check: the artifact against a byte-identical copy of itself.")
@click.option("--baseline", type=click.Path(exists=True), help="An earlier --json: fail (exit 1) on a regression.")
@click.option(
    "--threshold",
    default=5.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Regression threshold in percent (with --baseline).",
)
@ssh_flags()
@click.option(
    "--tool",
    type=click.Path(),
    help="The runtime's native benchmark tool instead of edgekit's worker: a local binary to push and run "
    "(TFLite benchmark_model, onnxruntime_perf_test; with --generate llama-bench or llama_main; required over adb), "
    "or a command the device has (benchmark_app beside OpenVINO).",
)
@click.option("--adb", "adb", default="adb", show_default=True, help="adb: the adb client to use.")
@timeout_flag
@click.option(
    "--generate",
    is_flag=True,
    help="Causal-LM files: time generation (time to first token, prefill and decode tokens/s) instead of one "
    "forward pass; --processes and --threads apply, and --tool runs the runtime's own program (llama-bench, "
    "llama_main).",
)
@click.option(
    "--prompt-tokens",
    default="64",
    callback=_ints,
    show_default=True,
    help="--generate: prompt lengths, comma-separated.",
)
@click.option(
    "--new-tokens", default=128, type=click.IntRange(min=2), show_default=True, help="--generate: tokens to generate."
)
@click.option(
    "--generations",
    default=3,
    type=click.IntRange(min=1),
    show_default=True,
    help="--generate: timed generations per process (after one untimed).",
)
@click.option("--json", "json_path", type=click.Path(), help="Write the runs as JSON here ('-': stdout).")
@click.option("--quiet", "-q", is_flag=True)
def benchmark_cmd(
    artifacts,
    device,
    threads,
    batch,
    warmup,
    min_runs,
    min_time,
    processes,
    max_time,
    target_ci,
    seq_len,
    aa,
    baseline,
    threshold,
    python,
    identity,
    ssh_options,
    tool,
    adb,
    timeout,
    generate,
    prompt_tokens,
    new_tokens,
    generations,
    json_path,
    quiet,
) -> None:
    """Latency, init time, first inference, peak memory, throughput and size, each repetition in a fresh process.

    Example: edgekit benchmark out/model-onnx-fp32.onnx out/model-onnx-int8.onnx --threads 1,2 --json bench.json
    """
    from edgekit.artifact import check_json_path, write_json_output
    from edgekit.bench.harness import Settings, benchmark, compare_baseline
    from edgekit.bench.report import print_runs
    from edgekit.progress import Progress

    options = transport_options(device, timeout, python, identity, ssh_options, adb)
    settings = Settings(
        threads,
        batch,
        warmup,
        min_runs,
        min_time,
        processes,
        max_time=max_time,
        target_ci=target_ci / 100,
        seq_len=seq_len,
    )
    if generate:
        from edgekit.bench.generation import GenerationSettings
        from edgekit.errors import UsageError

        given = {"--aa": aa, "--baseline": baseline, "--max-time": max_time}
        if any(given.values()):
            raise UsageError(
                f"--generate does not take {', '.join(k for k, v in given.items() if v)}: it times generation in "
                "fresh processes, here, over ssh, or with --tool over adb.",
                hint="Compare generation runs by their JSON (decode_tokens_per_s has a 95% interval).",
            )
        lm = GenerationSettings(threads, prompt_tokens, new_tokens, processes, generations)
        _generate(artifacts, device, lm, tool, options, json_path, quiet)
        return
    old_runs = read_baseline(Path(baseline)) if baseline else None  # a bad baseline fails before the run
    if json_path:
        check_json_path(json_path)
    with contextlib.ExitStack() as stack:
        files = list(artifacts)
        if aa:
            files = a_a_pair(files, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgekit-aa-"))))
        runs, error = benchmark(files, device, settings, Progress(quiet=quiet), tool=tool, **options)
    failures = compare_baseline(runs, old_runs, threshold / 100) if old_runs is not None else []
    if runs:
        print_runs(runs, stderr=json_path == "-")
    if aa:
        for run in runs:
            if run.get("ratio_to_first"):
                r = run["ratio_to_first"]
                click.echo(
                    f"A/A (threads={run['threads']}, batch={run['batch']}): ratio {r['ratio']:.4f}, 95% interval "
                    f"{r['ci95'][0]:.4f}-{r['ci95'][1]:.4f} over {r['rounds']} rounds",
                    err=json_path == "-",
                )
    if json_path:
        write_json_output(json_path, runs)
    for failure in failures:
        click.secho(f"regression: {failure}", err=True, fg="red")
    if error:
        kept = "\nThe runs above were completed before it and are kept." if runs else ""
        click.secho(f"error: {error}{kept}", err=True, fg="red")
    if failures or error:
        sys.exit(1)


def _generate(artifacts, device, settings, tool, options, json_path, quiet):
    """benchmark --generate: the generation runs, their table and JSON."""
    from edgekit.artifact import check_json_path, write_json_output
    from edgekit.bench.generation import benchmark_generation
    from edgekit.bench.report import print_generation_runs
    from edgekit.progress import Progress

    if json_path:
        check_json_path(json_path)
    runs, error = benchmark_generation(list(artifacts), device, settings, Progress(quiet=quiet), tool, **options)
    if runs:
        print_generation_runs(runs, stderr=json_path == "-")
    if json_path:
        write_json_output(json_path, runs)
    if error:
        kept = "\nThe runs above were completed before it and are kept." if runs else ""
        click.secho(f"error: {error}{kept}", err=True, fg="red")
        sys.exit(1)
