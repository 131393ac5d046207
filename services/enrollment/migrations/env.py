from doudi.common.migrations import run_migrations
from services.enrollment.tables import metadata

run_migrations(metadata)
