"""Ready-made jobs; importing this package registers them."""
from jobs import counting, daily, export, lifecycle, migrations, restore, streaming  # noqa: F401
