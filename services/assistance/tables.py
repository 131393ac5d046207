"""The assistance service's tables (SQLAlchemy Core); its migrations create them.

None yet: the monitoring issue adds the burden ledger, warnings and payments.
"""

from __future__ import annotations

import sqlalchemy

metadata = sqlalchemy.MetaData()
