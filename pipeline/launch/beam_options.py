"""The mapper's options as a Beam ``PipelineOptions`` subclass: ``options.view_as(MapperOptions)``
gives them beside Beam's own, from the same argv (``pipeline.launch.options`` defines them)."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.launch.options import add_mapper_arguments


class MapperOptions(PipelineOptions):
    """The mapper's own options, beside Beam's."""

    @classmethod
    def _add_argparse_args(cls, parser):
        add_mapper_arguments(parser)
