"""The assistance service (医疗救助): monitoring, early warning, secondary and proactive assistance."""
