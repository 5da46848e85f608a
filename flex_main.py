"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): see pipeline/launch/template.py."""
import sys

from pipeline.launch.template import main

if __name__ == "__main__":
    sys.exit(main())
