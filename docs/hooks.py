"""MkDocs hook: the variant page and the CLI reference, generated from the code at build time."""

from __future__ import annotations

import dataclasses

from mkdocs.structure.files import File


def _variants() -> str:
    from aekit import variants

    out = ["# Variants\n", "Generated from `aekit.variants.specs()` at build time.\n"]
    for spec in variants.specs():
        out.append(f"## `{spec.name}`\n\n{spec.summary}\n")
        fields = dataclasses.fields(spec.options)
        if fields:
            out.append("| option | default | choices | help |\n|---|---|---|---|")
            for f in fields:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                choices = ", ".join(map(str, f.metadata.get("choices") or ()))
                help_ = str(f.metadata.get("help", "")).replace("|", "\\|")
                out.append(f"| `--{f.name.replace('_', '-')}` | `{default!r}` | {choices} | {help_} |")
            out.append("")
    return "\n".join(out)


def _cli() -> str:
    from aekit.cli import build_parser

    parser = build_parser()
    out = ["# CLI reference\n", "Generated from `aekit.cli.build_parser()` at build time.\n"]
    out.append("```text\n" + parser.format_help() + "```\n")
    for action in parser._actions:
        for name, sub in (getattr(action, "choices", None) or {}).items():
            if hasattr(sub, "format_help"):
                out.append(f"## `aekit {name}`\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(out)


def on_files(files, config):
    files.append(File.generated(config, "variants.md", content=_variants()))
    files.append(File.generated(config, "cli.md", content=_cli()))
    return files
