from doudi.common.migrations import run_migrations
from services.assistance.tables import metadata

run_migrations(metadata)
