"""`edgekit compress distill|prune|lowrank|qat`: thin layers over edgekit.compress."""

from __future__ import annotations

import functools

import click

from edgekit.cli import unsafe_load_option

_SOURCE_HELP = "A SOURCE as for `edgekit export` (file, folder, or package.module:factory)."
_EPOCHS_HELP = "The most training epochs: training stops earlier once the validation loss stops improving (--patience)."


def _training_options(epochs: int | None, lr: float | str):
    """The options every method shares (prune names its epochs --finetune-epochs, so epochs=None leaves it out);
    the command receives the training ones as one `settings` (TrainSettings)."""

    def wrap(command):
        @functools.wraps(command)
        def fn(**kwargs):
            from edgekit.compress import TrainSettings

            most = kwargs.pop("epochs") if epochs is not None else kwargs["finetune_epochs"]
            shared = {k: kwargs.pop(k) for k in ("lr", "batch", "seed", "patience", "val_fraction")}
            return command(settings=TrainSettings(epochs=most, **shared), **kwargs)

        epochs_option = [click.option("--epochs", default=epochs, show_default=True, help=_EPOCHS_HELP)]
        for option in reversed(
            [
                click.option(
                    "--val",
                    type=click.Path(),
                    help="Validation DATA: metrics before and after, and when to stop "
                    "(default: --val-fraction of --data held out).",
                ),
                *(epochs_option if epochs is not None else []),
                click.option(
                    "--patience",
                    default=5,
                    show_default=True,
                    help="Stop after this many epochs without a better validation loss, keeping the best epoch "
                    "(the learning rate halves after every second one); 0: run every epoch, no validation split.",
                ),
                click.option(
                    "--val-fraction",
                    default=0.1,
                    show_default=True,
                    help="Share of --data held out for validation when --val is not given.",
                ),
                click.option("--lr", type=float, help=f"Learning rate (AdamW / Adam); default {lr}."),
                click.option("--batch", default=32, show_default=True, help="Batch size."),
                click.option("--seed", default=0, show_default=True, help="Seed: the same seed gives the same result."),
                click.option(
                    "--input",
                    "inputs",
                    multiple=True,
                    metavar="NAME:DTYPE:SHAPE",
                    help="Input spec, as for export (needed for factories).",
                ),
                click.option(
                    "--output",
                    "-o",
                    "out",
                    required=True,
                    type=click.Path(),
                    help="Output folder: itself a SOURCE for `edgekit export`.",
                ),
                click.option("--quiet", "-q", is_flag=True, help="No progress output."),
            ]
        ):
            fn = option(fn)
        return fn

    return wrap


def _report(result) -> None:
    record = result.record
    before = record.get("metrics_before")
    after = record.get("metrics_after") or record.get("metrics_after_fake_quant")
    if before or after:
        click.echo(f"validation before: {before}  after: {after}")
    stopped = record.get("training")
    if stopped:
        best = f", best epoch {stopped['best_epoch']}" if stopped.get("best_epoch") else ""
        click.echo(
            f"training: {stopped['stopped']} ({stopped['epochs_run']} of at most {stopped['max_epochs']} epochs{best})"
        )
    click.echo(f"{result.out} (edgekit export {result.out} --target T)")


@click.group("compress")
def compress_cmd() -> None:
    """Distill, prune (weights, units, vocabulary), factorize or train with quantization in the loop; the output is
    a SOURCE."""


@compress_cmd.command("distill")
@click.option("--teacher", required=True, help=_SOURCE_HELP)
@click.option("--teacher-weights", type=click.Path(), help="Weights for a factory teacher.")
@click.option("--student", help="The student SOURCE (its outputs must match the teacher's classes).")
@click.option("--student-weights", type=click.Path(), help="Weights for a factory student.")
@click.option("--student-layers", type=int, help="Build the student from N of a Hugging Face teacher's layers.")
@click.option(
    "--student-width",
    type=float,
    help="Build the student with this share (0-1] of each feed-forward block's units (the teacher's strongest).",
)
@click.option("--data", required=True, type=click.Path(), help="Training DATA (labels needed unless --alpha 0).")
@click.option("--alpha", default=0.5, show_default=True, help="Weight of the hard-label loss (0: soft targets only).")
@click.option("--temperature", default=2.0, show_default=True, help="Softening temperature T.")
@click.option("--tokenizer", type=click.Path(), help="Tokenizer folder for text data (default: the teacher's).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@_training_options(epochs=100, lr="3e-3 for a student of its own, 1e-4 for one from pretrained weights")
@unsafe_load_option
def distill_cmd(
    teacher,
    teacher_weights,
    student,
    student_weights,
    student_layers,
    student_width,
    data,
    alpha,
    temperature,
    tokenizer,
    resume,
    val,
    settings,
    inputs,
    out,
    quiet,
) -> None:
    """Train a smaller student on a teacher's soft targets: α·CE(labels) + (1−α)·T²·KL(teacher ‖ student).

    Example: edgekit compress distill TEACHER_DIR --student-layers 3 --data train.csv -o student/
    """
    from edgekit.compress import distill
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    result = distill(
        teacher,
        data,
        out,
        student=student,
        student_layers=student_layers,
        student_width=student_width,
        val=val,
        alpha=alpha,
        temperature=temperature,
        settings=settings,
        inputs=parse_input_specs(inputs),
        teacher_weights=teacher_weights,
        student_weights=student_weights,
        tokenizer=tokenizer,
        resume=resume,
        progress=Progress(quiet=quiet),
    )
    _report(result)


@compress_cmd.command("prune")
@click.option("--model", required=True, help=_SOURCE_HELP)
@click.option("--weights", type=click.Path(), help="Weights for a factory model.")
@click.option("--sparsity", required=True, type=float, help="Fraction of weights (or units) to remove, in (0, 1).")
@click.option(
    "--method",
    type=click.Choice(["magnitude", "structured"]),
    default="magnitude",
    show_default=True,
    help="magnitude: zero the smallest weights; structured: remove whole channels and neurons.",
)
@click.option(
    "--schedule",
    type=click.Choice(["polynomial", "one-shot"]),
    default="polynomial",
    show_default=True,
    help="Reach the sparsity gradually over --ramp-epochs, or at once.",
)
@click.option("--ramp-epochs", default=2, show_default=True, help="Epochs over which the sparsity rises to its target.")
@click.option("--finetune-epochs", default=30, show_default=True, help=_EPOCHS_HELP)
@click.option("--data", required=True, type=click.Path(), help="Fine-tuning DATA (with labels).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@_training_options(epochs=None, lr=1e-3)
@unsafe_load_option
def prune_cmd(
    model,
    weights,
    sparsity,
    method,
    schedule,
    ramp_epochs,
    finetune_epochs,
    data,
    resume,
    val,
    settings,
    inputs,
    out,
    quiet,
) -> None:
    """Prune by magnitude or structure, then fine-tune; reports sparsity, parameters and size.

    Example: edgekit compress prune pkg.mod:factory --weights w.pt --sparsity 0.5 --data train.npz -o pruned/
    """
    from edgekit.compress import prune
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    result = prune(
        model,
        data,
        out,
        sparsity=sparsity,
        method=method,
        schedule=schedule,
        finetune_epochs=finetune_epochs,
        ramp_epochs=ramp_epochs,
        val=val,
        settings=settings,
        inputs=parse_input_specs(inputs),
        weights=weights,
        resume=resume,
        progress=Progress(quiet=quiet),
    )
    r = result.record
    if r["pruning"] == "structured":
        reached = f"{r['parameters_removed']:.1%} of parameters removed (channel/neuron ratio {r['sparsity_target']})"
    else:
        reached = f"sparsity {r['sparsity_reached']:.3f} (asked {r['sparsity_target']})"
    size = f", weights {r['size']['raw_bytes']} B raw, {r['size']['gzip_bytes']} B gzip" if "size" in r else ""
    click.echo(f"{reached}, parameters {r['parameters_before']} -> {r['parameters_after']}{size}")
    _report(result)


@compress_cmd.command("lowrank")
@click.option("--model", required=True, help=_SOURCE_HELP + " PyTorch.")
@click.option("--weights", type=click.Path(), help="Weights for a factory model.")
@click.option("--rank-ratio", type=float, help="Keep this fraction of each Linear layer's rank, in (0, 1].")
@click.option("--energy", type=float, help="Keep the rank that holds this share of the squared singular values.")
@click.option("--finetune-epochs", default=30, show_default=True, help=_EPOCHS_HELP + " 0: no fine-tuning.")
@click.option("--data", required=True, type=click.Path(), help="Fine-tuning DATA (with labels).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@_training_options(epochs=None, lr=1e-3)
@unsafe_load_option
def lowrank_cmd(
    model,
    weights,
    rank_ratio,
    energy,
    finetune_epochs,
    data,
    resume,
    val,
    settings,
    inputs,
    out,
    quiet,
) -> None:
    """Replace Linear layers by two thin ones from a truncated SVD, then fine-tune; reports ranks and parameters.

    Example: edgekit compress lowrank --model pkg.mod:factory --weights w.pt --rank-ratio 0.25 --data train.npz -o lr/
    """
    from edgekit.compress import lowrank
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    result = lowrank(
        model,
        data,
        out,
        rank_ratio=rank_ratio,
        energy=energy,
        finetune_epochs=finetune_epochs,
        val=val,
        settings=settings,
        inputs=parse_input_specs(inputs),
        weights=weights,
        resume=resume,
        progress=Progress(quiet=quiet),
    )
    r = result.record
    done = [f"{x['layer']} {x['out']}x{x['in']} -> rank {x['rank']}" for x in r["layers"] if "energy_kept" in x]
    click.echo(f"{len(done)} Linear layer(s) factorized ({'; '.join(done)})")
    click.echo(f"parameters {r['parameters_before']} -> {r['parameters_after']}")
    _report(result)


@compress_cmd.command("qat")
@click.option("--model", required=True, help=_SOURCE_HELP + " PyTorch or tf_keras.")
@click.option("--weights", type=click.Path(), help="Weights for a factory model.")
@click.option("--data", required=True, type=click.Path(), help="Training DATA (with labels).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
@_training_options(epochs=100, lr=1e-4)
@unsafe_load_option
def qat_cmd(model, weights, data, resume, val, settings, inputs, out, quiet) -> None:
    """Quantization-aware training; export the output with executorch-int8 (PyTorch) or tflite-int8 (Keras).

    Example: edgekit compress qat model.keras --data train.npz -o qat/
    """
    from edgekit.compress import qat
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    result = qat(
        model,
        data,
        out,
        val=val,
        settings=settings,
        inputs=parse_input_specs(inputs),
        weights=weights,
        resume=resume,
        progress=Progress(quiet=quiet),
    )
    _report(result)


@compress_cmd.command("vocab")
@click.option("--model", required=True, help="A Hugging Face model folder with a WordPiece tokenizer (vocab.txt).")
@click.option("--data", required=True, type=click.Path(), help="CSV/JSONL text whose tokens are kept.")
@click.option("--val", type=click.Path(), help="Validation DATA: metrics before and after.")
@click.option("--input", "inputs", multiple=True, metavar="NAME:DTYPE:SHAPE", help="Input spec, as for export.")
@click.option("--output", "-o", "out", required=True, type=click.Path(), help="Output folder (a SOURCE).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@unsafe_load_option
def vocab_cmd(model, data, val, inputs, out, quiet) -> None:
    """Keep only the token embeddings DATA uses (and the special tokens); the tokenizer is rebuilt to match.

    Example: edgekit compress vocab HF_MODEL_DIR --data tweets.csv -o small-vocab/
    """
    from edgekit.compress import prune_vocabulary
    from edgekit.progress import Progress
    from edgekit.spec import parse_input_specs

    result = prune_vocabulary(
        model, data, out, val=val, inputs=parse_input_specs(inputs), progress=Progress(quiet=quiet)
    )
    r = result.record
    click.echo(
        f"tokens {r['tokens_before']} -> {r['tokens_after']}, parameters {r['parameters_before']} -> "
        f"{r['parameters_after']}"
    )
    _report(result)
