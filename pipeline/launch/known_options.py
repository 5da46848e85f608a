"""Every option on the command line must be one that the mapper or Beam knows.

Beam's own parser only logs ``Unparseable argument: --shard`` and the run goes on with the
defaults, so a typo silently changes the run. Here a parser with the options Beam's own parser
has (every ``PipelineOptions`` subclass's arguments, no abbreviations) reads the command line
first, and anything it does not know stops the launch with one line naming the closest option.

The option names come from tables, not from Beam itself, so that a refused option costs no
import of Beam (~2 s): Beam's from a generated one (``beam_option_table``), the mapper's from
its option table (``pipeline.launch.options.OPTIONS``: a new mapper option needs nothing
regenerated here). ``tests/unit/test_known_options.py`` checks that the two are what Beam's
parser has; after a Beam upgrade, regenerate Beam's with ``python -m
pipeline.launch.known_options``.
"""
from __future__ import annotations

import argparse
import difflib
import pprint
import sys
from typing import Optional, Sequence

from pipeline.errors import UsageError
from pipeline.launch.beam_option_table import OPTIONS as BEAM_OPTIONS
from pipeline.launch.options import FLAG
from pipeline.launch.options import OPTIONS as MAPPER_OPTIONS

TABLE = "pipeline/launch/beam_option_table.py"


def beam_parser():
    """The parser Beam itself builds in ``get_all_options``: every options class (the mapper's
    included), no abbreviations. Imports Beam and the launcher: for the table and its test."""
    # Beam and the whole launcher, for every PipelineOptions subclass a run defines.
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    import pipeline.launch.launcher  # noqa: F401  (imported for its options classes)

    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def table_of(parser) -> dict:
    """{option: how many values it takes}: 0 (a flag), "?" (one, optional) or 1."""
    out = {}
    for action in parser._actions:  # noqa: SLF001
        for name in action.option_strings:
            if name.startswith("--") and name != "--help":
                out[name] = 0 if action.nargs == 0 else ("?" if action.nargs == "?" else 1)
    return dict(sorted(out.items()))


def mapper_table() -> dict:
    """The mapper's own options, as ``table_of`` shows them: a flag takes a value or none."""
    return {f"--{name}": "?" if o.kind == FLAG else 1
            for o in MAPPER_OPTIONS for name in (o.name, *o.aliases)}


def known_table() -> dict:
    """Every option a run knows, Beam's and the mapper's, and how many values it takes."""
    return {**BEAM_OPTIONS, **mapper_table()}


def known_parser() -> argparse.ArgumentParser:
    """A parser that knows the names (and arities) of Beam's parser, without Beam."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for i, (name, nargs) in enumerate(known_table().items()):
        if nargs == 0:
            parser.add_argument(name, dest=f"o{i}", action="store_true")
        else:
            parser.add_argument(name, dest=f"o{i}", nargs="?" if nargs == "?" else None)
    return parser


def option_names() -> list[str]:
    return sorted(known_table())


def closest(name: str, names: Sequence[str]) -> Optional[str]:
    """The known option most like ``name`` (``--shard`` -> ``--shards``), or None."""
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_arguments(argv: Sequence[str]) -> list[str]:
    """What neither the mapper nor Beam knows in ``argv`` (an option's bad value is not
    reported here: Beam's parse reports it, ``launcher.check_beam_options``)."""
    argv = [a for a in argv if a not in ("-h", "--help")]
    try:
        _, unknown = known_parser().parse_known_args(argv)
    except SystemExit:  # a value missing: reported, with its message, by the options check
        return []
    return unknown


def check_known_options(argv: Sequence[str]) -> None:
    """Refuse (a UsageError, one line) the first argument nobody knows, naming the closest
    option."""
    unknown = unknown_arguments(argv)
    if not unknown:
        return
    first = unknown[0]
    if not first.startswith("-"):
        raise UsageError(f"unexpected argument {first!r}: options are --name=value or --name "
                         "value (--help lists the mapper's options; Beam's are accepted too)")
    name = first.split("=", 1)[0]
    near = closest(name, option_names())
    hint = f"; did you mean {near}?" if near else ""
    raise UsageError(f"unknown option {name}{hint} (--help lists the mapper's options; every "
                     "Beam option is accepted too; no abbreviations)")


def main() -> int:
    """Write Beam's table from the installed Beam's parser (the mapper's options left out)."""
    mapper = mapper_table()
    table = {k: v for k, v in table_of(beam_parser()).items() if k not in mapper}
    text = ('"""Generated by ``python -m pipeline.launch.known_options`` from Beam\'s parser: '
            "every option\nit knows (not the mapper's: those are the option table's) and how "
            'many values it takes: 0 (a\nflag), "?" or 1."""\n\nOPTIONS = ' + pprint.pformat(table,
                                                              width=100, sort_dicts=False) + "\n")
    with open(TABLE, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {TABLE} ({len(table)} options)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
