"""Doudi's gRPC services, one package each: enrollment, datashare, settlement, assistance."""
