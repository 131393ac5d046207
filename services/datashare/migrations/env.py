from doudi.common.migrations import run_migrations
from services.datashare.tables import metadata

run_migrations(metadata)
