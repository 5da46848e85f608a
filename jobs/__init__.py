"""Ready-made jobs; importing this package registers them."""
from jobs import counting, daily, export, lifecycle, streaming  # noqa: F401
