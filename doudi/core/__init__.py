"""The pure domain core: money, identity numbers, policy packs and the one-window engine.

Nothing here imports a database, RPC or web framework; services and the gateway
call into it (docs/domain.md sections 2, 5, 6).
"""
