"""Settings shared by the CLI, :func:`dicomsql.session` and :func:`dicomsql.serve`, defined
once as ``(name, default, help)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Setting", "SETTINGS", "DEFAULTS"]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("master", "local[*]", "Spark master URL: local[*] (embedded) or e.g. spark://host:7077."),
    Setting(
        "home",
        None,
        "State directory (metastore, warehouse, demo data). Default: $DICOMSQL_HOME or ~/.dicomsql.",
    ),
    Setting("host", "127.0.0.1", "Address the HiveServer2 (JDBC) endpoint binds to."),
    Setting("port", 10000, "Port of the HiveServer2 (JDBC) endpoint."),
    Setting(
        "max_concurrent_queries",
        None,
        "Statements run at once (default: twice the driver's cores); more wait in a queue (PENDING).",
    ),
    Setting("demo_patients", 100, "Patients in the demo cohort written when no data is given."),
)

DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}
