"""The contracts' enums as the core's codes, for every service that reads or writes them."""

from __future__ import annotations

from doudi.assistance.v1 import assistance_pb2
from doudi.common.protos import EnumCodes
from doudi.datashare.v1 import datashare_pb2
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2

SCHEMES = EnumCodes(enrollment_pb2.Scheme, "SCHEME_")
EMPLOYMENTS = EnumCodes(enrollment_pb2.Employment, "EMPLOYMENT_")
TIERS = EnumCodes(enrollment_pb2.Tier, "TIER_")
PREMIUM_PAYERS = EnumCodes(enrollment_pb2.PremiumPayer, "PREMIUM_PAYER_")
STATUSES = EnumCodes(datashare_pb2.Status, "STATUS_")
AGENCIES = EnumCodes(datashare_pb2.Agency, "AGENCY_")
ASSERTION_KINDS = EnumCodes(datashare_pb2.AssertionKind, "ASSERTION_KIND_")
COMPARISON_CLASSES = EnumCodes(datashare_pb2.ComparisonClass, "COMPARISON_CLASS_")
GAP_REASONS = EnumCodes(datashare_pb2.GapReason, "GAP_REASON_")
ROSTER_STATES = EnumCodes(datashare_pb2.RosterState, "ROSTER_STATE_")
CONSOLE_ROLES = EnumCodes(datashare_pb2.ConsoleRole, "CONSOLE_ROLE_")

# Settlement's own copies of the vocabularies it keeps of a person (its contract imports
# no other service's), with the owners' names and numbers: what enrollment and datashare
# send it.
SETTLEMENT_SCHEMES = EnumCodes(settlement_pb2.Scheme, "SCHEME_")
SETTLEMENT_EMPLOYMENTS = EnumCodes(settlement_pb2.Employment, "EMPLOYMENT_")
SETTLEMENT_TIERS = EnumCodes(settlement_pb2.Tier, "TIER_")
SETTLEMENT_STATUSES = EnumCodes(settlement_pb2.Status, "STATUS_")
SETTLEMENT_AGENCIES = EnumCodes(settlement_pb2.Agency, "AGENCY_")

# Assistance's own copies of what it keeps of settlements (its contract imports no other
# service's), with the owners' names and numbers: what settlement, enrollment and the
# hub send it.
ASSISTANCE_VISIT_TYPES = EnumCodes(assistance_pb2.VisitType, "VISIT_TYPE_")
ASSISTANCE_STATUSES = EnumCodes(assistance_pb2.Status, "STATUS_")
SETTLEMENT_EVENT_KINDS = EnumCodes(assistance_pb2.SettlementEventKind, "SETTLEMENT_EVENT_KIND_")
ASSISTANCE_AGENCIES = EnumCodes(assistance_pb2.Agency, "AGENCY_")

# The dual early warning (issue 18): assistance raises, the hub's agencies decide; the
# hub's copies of the kinds and states have assistance's names and numbers.
WARNING_KINDS = EnumCodes(assistance_pb2.WarningKind, "WARNING_KIND_")
WARNING_STATES = EnumCodes(assistance_pb2.WarningState, "WARNING_STATE_")
HUB_WARNING_KINDS = EnumCodes(datashare_pb2.WarningKind, "WARNING_KIND_")
HUB_WARNING_STATES = EnumCodes(datashare_pb2.WarningState, "WARNING_STATE_")

# Accident cover claims (意外伤害附加保险), settlement's own vocabulary.
ACCIDENT_KINDS = EnumCodes(settlement_pb2.AccidentKind, "ACCIDENT_KIND_")
ACCIDENT_CLAIM_STATES = EnumCodes(settlement_pb2.AccidentClaimState, "ACCIDENT_CLAIM_STATE_")
# Outpatient certificates and registrations (issue 21): enrollment owns them and sends
# them to settlement, whose copies have enrollment's names and numbers.
CERTIFICATE_KINDS = EnumCodes(enrollment_pb2.CertificateKind, "CERTIFICATE_KIND_")
CERTIFICATE_APPLICATION_STATES = EnumCodes(
    enrollment_pb2.CertificateApplicationState, "CERTIFICATE_APPLICATION_STATE_"
)
REGISTRATION_KINDS = EnumCodes(enrollment_pb2.RegistrationKind, "REGISTRATION_KIND_")
SETTLEMENT_CERTIFICATE_KINDS = EnumCodes(settlement_pb2.CertificateKind, "CERTIFICATE_KIND_")
SETTLEMENT_REGISTRATION_KINDS = EnumCodes(settlement_pb2.RegistrationKind, "REGISTRATION_KIND_")
