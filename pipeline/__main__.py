import sys

from pipeline.launch.cli import main

sys.exit(main())
