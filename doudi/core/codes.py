"""The vocabularies that cases, packs and services share (docs/case-format.md, docs/domain.md sections 3-6)."""

from __future__ import annotations

from typing import Final

SCHEMES: Final = {
    "resident": "城乡居民基本医疗保险 (insutype 390)",
    "employee": "职工基本医疗保险 (insutype 310)",
}

EMPLOYMENTS: Final = {"in_service": "在职", "retired": "退休"}

TIERS: Final = {
    "child": "学生儿童档",
    "adult_low": "成年居民低档",
    "adult_mid": "成年居民中档",
    "adult_high": "成年居民高档",
}

VISIT_TYPES: Final = {
    "inpatient": "住院",
    "outpatient_chronic": "门诊慢性病",
    "outpatient_major": "重特大疾病门诊 / 门诊特殊病",
    "outpatient_general": "普通门诊",
    "pharmacy": "定点药店购药",
}
INPATIENT: Final = "inpatient"
PHARMACY: Final = "pharmacy"
# Visits counted as a person's "outpatient costs" (Tianjin's reductions and carry-over).
OUTPATIENT_TYPES: Final = frozenset(
    {"outpatient_chronic", "outpatient_major", "outpatient_general"}
)

# Outpatient certificates (门诊慢特病): each kind of certificate and the visit type it pays
# for. A chronic or major-disease outpatient visit is paid as such only for a diagnosis
# that a certificate valid on the visit's date covers (docs/domain.md section 5).
CERTIFICATE_KINDS: Final = {
    "chronic": "门诊慢性病",
    "special": "门诊特殊病 / 重特大疾病门诊",
}
CERTIFIED_VISIT_TYPES: Final = {"outpatient_chronic": "chronic", "outpatient_major": "special"}

# Registrations for care outside the home region (docs/domain.md section 6).
REGISTRATION_KINDS: Final = {"relocated": "异地安置", "referred": "转诊备案"}

ITEM_CLASSES: Final = {"A": "甲类", "B": "乙类", "C": "丙类 / 全自费"}

HOSPITAL_LEVELS: Final = {1: "一级 (乡镇卫生院)", 2: "二级", 3: "三级"}

# Status codes and the agency that may assert each (docs/domain.md section 3).
STATUSES: Final = {
    "extreme_poverty": ("特困供养", "civil_affairs"),
    "dibao": ("低保", "civil_affairs"),
    "orphan": ("孤儿", "civil_affairs"),
    "low_income": ("低收入 / 低保边缘", "civil_affairs"),
    "expenditure_hardship": ("支出型重病", "civil_affairs"),
    "unsupported_child": ("事实无人抚养儿童", "civil_affairs"),
    "marginal": ("边缘家庭", "civil_affairs"),
    "registered_poor": ("建档立卡贫困户", "poverty_office"),
    "poverty_exited": ("脱贫户", "poverty_office"),
    "at_risk": ("易返贫致贫 / 监测对象", "poverty_office"),
    "difficult_worker": ("困难职工", "trade_union"),
    "retired_cadre": ("离休干部", "veteran_cadre_bureau"),
    "severely_disabled": ("重度残疾", "disabled_persons_federation"),
    "entitled_group": ("优抚对象", "veterans_affairs"),
}

# National fund-pay-type codes (基金支付类型) a pack may name; a pack declares its own others.
NATIONAL_FUNDS: Final = {
    "310100": "职工基本医疗保险统筹基金",
    "310200": "职工基本医疗保险个人账户",
    "320100": "公务员医疗补助资金",
    "330100": "职工大额医疗费用补助基金",
    "340100": "离休人员医疗保障基金",
    "390100": "城乡居民基本医疗保险基金",
    "390200": "城乡居民大病医疗保险资金",
    "610100": "医疗救助基金",
}
