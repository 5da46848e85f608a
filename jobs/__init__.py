"""Ready-made jobs; importing this package registers them."""
from jobs import (  # noqa: F401
    backup,
    counting,
    daily,
    export,
    lifecycle,
    migrations,
    restore,
    streaming,
)
