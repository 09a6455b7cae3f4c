"""The reference pages in docs/, generated from the catalog and the CLI so they cannot drift from them:
`python -m edgekit.docs` rewrites docs/catalog.md and docs/cli.md; a test fails when they differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DOCS = Path(__file__).resolve().parent.parent / "docs"


def catalog_page() -> str:
    """Every target, kind of quantization, device profile and quantization scheme, from targets/."""
    from edgekit.catalog import devices, quantizations, schemes, targets

    lines = ["# Targets, devices and schemes", "", "Generated from `targets/` by `python -m edgekit.docs`.", "",
             "## Targets", "", "| target | runtime | file | precision | quantization | calibration | what it is |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in targets().values():
        lines.append(f"| `{t.name}` | {t.runtime} | `{t.suffix}` | {t.precision} | {t.quantization} | "
                     f"{'needed' if t.needs_calibration else '-'} | {t.description} |")  # fmt: skip
    lines += ["", "## Kinds of quantization", "", "| quantization | device scheme | what it is |", "|---|---|---|"]
    lines += [f"| {name} | {k.device_scheme} | {k.description} |" for name, k in quantizations().items()]
    lines += [
        "",
        "## Device profiles",
        "",
        "| profile | what it is | detected when | runtimes (scheme) |",
        "|---|---|---|---|",
    ]
    for d in devices().values():
        rules = "; ".join(f"{r}: `{rule.scheme}`" + (f" on {rule.engine}" if rule.engine else "")
                          for r, rule in d.runtimes.items())  # fmt: skip
        lines.append(
            f"| `{d.name}` | {d.description} | {d.detect.explain() if d.detect else '`--device` only'} | {rules} |"
        )
    lines += ["", "## Quantization schemes", "", "| scheme | activations | weights | reduce range | what it is |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, s in schemes().items():
        act = f"{s.activations.dtype} {'symmetric' if s.activations.symmetric else 'asymmetric'}"
        wts = f"{s.weights.dtype} {'symmetric' if s.weights.symmetric else 'asymmetric'}" + (
            " per channel" if s.weights.per_channel else ""
        )
        lines.append(
            f"| `{name}` | {act} | {wts} | {'yes' if s.reduce_range else 'no'} | {' '.join(s.description.split())} |"
        )
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    """Every command's --help, as the CLI prints it."""
    from edgekit.cli import cli

    lines = ["# Command reference", "", "Generated from the CLI by `python -m edgekit.docs`.", ""]
    root = click.Context(cli, info_name="edgekit", **_LAYOUT)
    lines += ["## edgekit", "", "```text", cli.get_help(root), "```", ""]
    for name in sorted(cli.list_commands(root)):
        command = cli.get_command(root, name)
        if command is None:
            continue
        lines += _command(command, f"edgekit {name}", root)
    return "\n".join(lines)


def _command(command: click.Command, path: str, parent: click.Context) -> list[str]:
    ctx = click.Context(command, info_name=path.split()[-1], parent=parent, **_LAYOUT)
    out = [f"## {path}", "", "```text", command.get_help(ctx), "```", ""]
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None:
                out += _command(sub, f"{path} {name}", ctx)
    return out


# fixed, so the page does not depend on the terminal it is generated in
_LAYOUT: dict[str, Any] = {"terminal_width": 100, "max_content_width": 100, "help_option_names": ["-h", "--help"]}
PAGES = {"catalog.md": catalog_page, "cli.md": cli_page}


if __name__ == "__main__":
    for page, render in PAGES.items():
        (DOCS / page).write_text(render())
        print(DOCS / page)
