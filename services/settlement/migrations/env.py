from doudi.common.migrations import run_migrations
from services.settlement.tables import metadata

run_migrations(metadata)
