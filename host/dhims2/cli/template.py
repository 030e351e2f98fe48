"""`dhims2 template`: list and show mapping templates, and suggest one for a new sheet layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The form suggestions are made for: the In-Patient program bundled with the package, so a
# suggestion needs neither a server nor a sign-in. An upload checks the template against the
# server's own form before any row is read.
_SUGGEST_FOR = "the bundled In-Patient form"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the templates that come with dhims2")
    show = actions.add_parser("show", help="print a template as JSON")
    show.add_argument("template", metavar="T", help="a shipped template's name or a .json file")
    suggest = actions.add_parser(
        "suggest", help="suggest a template for a sheet from its headers and values"
    )
    suggest.add_argument("file", type=Path, help="the sheet (.xlsx, .csv, .tsv, .txt or .json)")
    suggest.add_argument("--sheet", metavar="NAME", help="the workbook sheet to read")
    suggest.add_argument("--name", help="the template's name (default: from the file name)")
    suggest.add_argument("--save", type=Path, metavar="T.json", help="save the template there")
    suggest.add_argument("--force", action="store_true", help="let --save replace a file")
    suggest.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    if args.action == "show":
        from dhims2.sheets.templates import load_template

        print(json.dumps(load_template(args.template).to_json(), indent=2, ensure_ascii=False))
        return 0
    return _suggest(args)


def _list() -> int:
    from dhims2.sheets.templates import load_template, shipped_templates

    for name in shipped_templates():
        description = load_template(name).description
        print(f"{name}: {description}" if description else name)
    return 0


def _suggest(args: argparse.Namespace) -> int:
    from dhims2.forms.synthetic import in_patient_form
    from dhims2.sheets.reading import open_records
    from dhims2.sheets.suggestion import suggest_template
    from dhims2.sheets.templates import save_template
    from dhims2.workspace.connection import UsageError

    with open_records(args.file, sheet=args.sheet) as source:
        suggestion = suggest_template(
            source, in_patient_form(), name=args.name or Path(args.file).stem
        )
    if args.save is not None:
        try:
            save_template(suggestion.template, args.save, overwrite=args.force)
        except FileExistsError:
            raise UsageError(f"{args.save} exists; pass --force to replace it") from None
        except OSError as error:
            raise UsageError(f"cannot write {args.save}: {error.strerror}") from error
    if args.json:
        print(json.dumps(suggestion.to_json(), ensure_ascii=False))
        return 0
    print(f'Template "{suggestion.template.name}" for {args.file.name}, made for {_SUGGEST_FOR}:')
    width = max(len(choice.rule.column) for choice in suggestion.choices)
    for choice in suggestion.choices:
        rule = choice.rule
        target = rule.label or rule.property or "(ignored)"
        print(f"  {rule.column:<{width}}  ->  {target}: {choice.reason}")
    occurred_at = suggestion.template.occurred_at
    print(
        f'  Report date (occurredAt) from "{occurred_at}"'
        if occurred_at
        else "  No column gives the report date: add one, or set occurredAt in the template"
    )
    if suggestion.unfilled:
        print("  Compulsory fields no column fills: " + ", ".join(suggestion.unfilled))
    if args.save is not None:
        print(f"Saved to {args.save}; upload with: dhims2 upload FILE --template {args.save}")
    else:
        print("Save it with --save T.json, check it, then upload with --template T.json")
    return 0 if not suggestion.unfilled else 1
