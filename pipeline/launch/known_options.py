"""Every option on the command line must be one that the mapper or Beam knows.

Beam's own parser only logs ``Unparseable argument: --shard`` and the run goes on with the
defaults, so a typo silently changes the run. Here the same parser Beam builds (every
``PipelineOptions`` subclass's arguments, no abbreviations) reads the command line first, and
anything it does not know stops the launch with one line naming the closest option.
"""
from __future__ import annotations

import difflib
from typing import Optional, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from pipeline.errors import UsageError

# Imported for its PipelineOptions subclass: the mapper's options are known too.
from pipeline.launch import beam_options  # noqa: F401


def beam_parser() -> _BeamArgumentParser:
    """The parser Beam itself builds in ``get_all_options``: every options class, no
    abbreviations."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def option_names(parser: Optional[_BeamArgumentParser] = None) -> list[str]:
    parser = parser or beam_parser()
    return sorted({s for a in parser._actions for s in a.option_strings  # noqa: SLF001
                   if s.startswith("--")})


def closest(name: str, names: Sequence[str]) -> Optional[str]:
    """The known option most like ``name`` (``--shard`` -> ``--shards``), or None."""
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_arguments(argv: Sequence[str]) -> list[str]:
    """What neither the mapper nor Beam knows in ``argv`` (an option's bad value is not
    reported here: Beam's parse reports it, ``cli.check_beam_options``)."""
    parser = beam_parser()
    try:
        _, unknown = parser.parse_known_args(list(argv))
    except SystemExit:  # a bad value: reported, with its message, by the options check
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
