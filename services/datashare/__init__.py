"""The datashare service (数据共享): the status registry of the data-exchange hub and the audit of agency reads."""
