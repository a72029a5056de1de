"""Column layouts of the sandbox's Medicare files.

Fixed-width (2011+): the 51-column `mbsf_ab_summary` layout is the real one (NSAPH's registry of the
real FTS files); `mbsf_d_cmpnts`, `mbsf_abcd_summary` and `medpar_all_file` use the real short names
for the columns that matter and fewer columns than the real files (78 / 185 / 365-415).
SAS7BDAT (1999-2010): lower-case names that differ by era the way the preprocessed NSAPH files do
(`qid`/`bene_id`, `enrolyr` with 2-digit years, numeric YYYYMMDD dates before 2006 and SAS day
numbers after, `hmoind` as one 12-character string before 2006 and 12 monthly columns after).
"""

from __future__ import annotations

from dataclasses import dataclass

from include.sandbox.sasfile import SasColumn

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
MONTHS = [f"{m:02d}" for m in range(1, 13)]


@dataclass(frozen=True)
class FwfField:
    long: str
    short: str
    type: str  # CHAR | NUM | DATE
    width: int
    scale: int = 0
    desc: str = ""

    @property
    def width_text(self) -> str:
        return f"{self.width}.{self.scale}" if self.scale else str(self.width)


def _f(long: str, short: str, type_: str, width: int | str, desc: str) -> FwfField:
    if isinstance(width, str):
        w, s = width.split(".")
        return FwfField(long, short, type_, int(w), int(s), desc)
    return FwfField(long, short, type_, width, 0, desc)


def mbsf_ab_layout() -> list[FwfField]:
    """The real 2011-2014 `mbsf_ab_summary` layout: 51 columns, 119 bytes."""
    fields = [
        _f("BENE_ID", "BENE_ID", "CHAR", 15, "Encrypted 723 Beneficiary ID (Unique Key)"),
        _f("BENE_ENROLLMT_REF_YR", "RFRNC_YR", "NUM", 4, "Beneficiary Enrollment Reference Year"),
        _f("FIVE_PERCENT_FLAG", "FIVEPCT", "CHAR", 1, "Strict 5% Flag"),
        _f("ENHANCED_FIVE_PERCENT_FLAG", "EFIVEPCT", "CHAR", 1, "Enhanced 5% Flag"),
        _f("COVSTART", "COVSTART", "DATE", 8, "Medicare Coverage Start Date"),
        _f("CRNT_BIC_CD", "CRNT_BIC", "CHAR", 2, "Beneficiary Identification Code"),
        _f("STATE_CODE", "STATE_CD", "CHAR", 2, "State Code"),
        _f("BENE_COUNTY_CD", "CNTY_CD", "CHAR", 3, "County Code"),
        _f("BENE_ZIP_CD", "BENE_ZIP", "CHAR", 9, "Zip Code of Residence"),
        _f("BENE_AGE_AT_END_REF_YR", "AGE", "NUM", 3, "Age at End of Reference Year"),
        _f("BENE_BIRTH_DT", "BENE_DOB", "DATE", 8, "Date of Birth"),
        _f("BENE_VALID_DEATH_DT_SW", "V_DOD_SW", "CHAR", 1, "Valid Date of Death Switch"),
        _f("BENE_DEATH_DT", "DEATH_DT", "DATE", 8, "Date of Death"),
        _f("NDI_DEATH_DT", "NDI_DEATH_DT", "DATE", 8, "NDI Date of Death"),
        _f("BENE_SEX_IDENT_CD", "SEX", "CHAR", 1, "Sex"),
        _f("BENE_RACE_CD", "RACE", "CHAR", 1, "Beneficiary Race Code"),
        _f("RTI_RACE_CD", "RTI_RACE_CD", "CHAR", 1, "Research Triangle Institute (RTI) Race Code"),
        _f("BENE_ENTLMT_RSN_ORIG", "OREC", "CHAR", 1, "Original Reason for Entitlement Code"),
        _f("BENE_ENTLMT_RSN_CURR", "CREC", "CHAR", 1, "Current Reason for Entitlement Code"),
        _f("BENE_ESRD_IND", "ESRD_IND", "CHAR", 1, "ESRD Indicator"),
        _f("BENE_MDCR_STATUS_CD", "MS_CD", "CHAR", 2, "Medicare Status Code"),
        _f("BENE_PTA_TRMNTN_CD", "A_TRM_CD", "CHAR", 1, "Part A Termination Code"),
        _f("BENE_PTB_TRMNTN_CD", "B_TRM_CD", "CHAR", 1, "Part B Termination Code"),
        _f("BENE_HI_CVRAGE_TOT_MONS", "A_MO_CNT", "NUM", 3, "HI Coverage Count"),
        _f("BENE_SMI_CVRAGE_TOT_MONS", "B_MO_CNT", "NUM", 3, "SMI Coverage Count"),
        _f("BENE_STATE_BUYIN_TOT_MONS", "BUYIN_MO", "NUM", 3, "State Buy-In Coverage Count"),
        _f("BENE_HMO_CVRAGE_TOT_MONS", "HMO_MO", "NUM", 3, "HMO Coverage Count"),
    ]
    fields += [_f(f"BENE_MDCR_ENTLMT_BUYIN_IND_{m}", f"BUYIN{m}", "CHAR", 1, f"Medicare Entitlement/Buy-In Indicator {ROMAN[i]}")
               for i, m in enumerate(MONTHS)]
    fields += [_f(f"BENE_HMO_IND_{m}", f"HMOIND{m}", "CHAR", 1, f"HMO Indicator {ROMAN[i]}") for i, m in enumerate(MONTHS)]
    return fields


def _part_d_monthly() -> list[FwfField]:
    fields = []
    for prefix, long, width, desc in (("CNTRCT", "PTD_CNTRCT_ID", 5, "Part D Contract Number"),
                                      ("PBPID", "PTD_PBP_ID", 3, "Part D Plan Benefit Package Number"),
                                      ("SGMTID", "PTD_SGMT_ID", 3, "Part D Segment Number"),
                                      ("RDSIND", "RDS_IND", 1, "Retiree Drug Subsidy Indicator"),
                                      ("DUAL_", "DUAL_STUS_CD", 2, "State Reported Dual Eligible Status Code"),
                                      ("CSTSHR", "CST_SHR_GRP_CD", 2, "Cost Share Group")):
        fields += [_f(f"{long}_{m}", f"{prefix}{m}", "CHAR", width, f"{desc} ({ROMAN[i]})") for i, m in enumerate(MONTHS)]
    return fields


def mbsf_d_layout() -> list[FwfField]:
    """`mbsf_d_cmpnts` (2011-2014): Part D and dual-eligibility months, 78 columns."""
    return [
        _f("BENE_ID", "BENE_ID", "CHAR", 15, "Encrypted 723 Beneficiary ID (Unique Key)"),
        _f("BENE_ENROLLMT_REF_YR", "RFRNC_YR", "NUM", 4, "Beneficiary Enrollment Reference Year"),
        _f("FIVE_PERCENT_FLAG", "FIVEPCT", "CHAR", 1, "Strict 5% Flag"),
        *_part_d_monthly(),
        _f("PLAN_CVRG_MO_CNT", "PLNCOVMO", "NUM", 3, "Months of Part D Coverage"),
        _f("RDS_CVRG_MO_CNT", "RDSMO", "NUM", 3, "Months of Retiree Drug Subsidy"),
        _f("DUAL_ELGBL_MONS", "DUAL_MO", "NUM", 3, "Months of Dual Eligibility"),
    ]


def mbsf_abcd_layout() -> list[FwfField]:
    """`mbsf_abcd_summary` (2015+): A/B/C/D in one file; the zip is `ZIP_CD` here."""
    ab = {f.short: f for f in mbsf_ab_layout()}
    zip_cd = _f("BENE_ZIP_CD", "ZIP_CD", "CHAR", 9, "Zip Code of Residence")
    head = [ab[s] for s in ("BENE_ID", "RFRNC_YR", "FIVEPCT", "EFIVEPCT", "COVSTART", "CRNT_BIC", "STATE_CD", "CNTY_CD")]
    rest = [f for f in mbsf_ab_layout() if f.short not in {*(h.short for h in head), "BENE_ZIP"}]
    return [*head, zip_cd, *rest, *_part_d_monthly(),
            _f("PLAN_CVRG_MO_CNT", "PLNCOVMO", "NUM", 3, "Months of Part D Coverage"),
            _f("RDS_CVRG_MO_CNT", "RDSMO", "NUM", 3, "Months of Retiree Drug Subsidy"),
            _f("DUAL_ELGBL_MONS", "DUAL_MO", "NUM", 3, "Months of Dual Eligibility")]


AMOUNTS = (  # (short, long, description)
    ("DRGPRICE", "DRG_PRICE_AMT", "DRG Price Amount"),
    ("OUTLRAMT", "DRG_OUTLIER_PMT_AMT", "DRG Outlier Approved Payment Amount"),
    ("PASSTHRU", "PASS_THRU_AMT", "Pass Thru Amount"),
    ("PMT_AMT", "MDCR_PMT_AMT", "Medicare Payment Amount"),
    ("BLDDEDAM", "BENE_BLOOD_DDCTBL_AMT", "Blood Deductible Liability Amount"),
    ("PRPAYAMT", "BENE_PRMRY_PYR_AMT", "Primary Payer Amount"),
    ("DED_AMT", "BENE_IP_DDCTBL_AMT", "Inpatient Deductible Liability Amount"),
    ("COIN_AMT", "BENE_PTA_COINSRNC_AMT", "Part A Coinsurance Liability Amount"),
    ("TOTCHRG", "TOT_CHRG_AMT", "Total Charge Amount"),
)


def medpar_layout(year: int) -> list[FwfField]:
    """`medpar_all_file`: one stay per record. Later years carry more columns, as the real ones do."""
    fields = [
        _f("BENE_ID", "BENE_ID", "CHAR", 15, "Encrypted 723 Beneficiary ID"),
        _f("MEDPAR_ID", "MEDPARID", "CHAR", 15, "MEDPAR ID"),
        _f("MEDPAR_YR_NUM", "MEDPAR_YR_NUM", "CHAR", 4, "MEDPAR Year"),
        _f("NCH_CLM_TYPE_CD", "CLM_TYPE", "CHAR", 2, "NCH Claim Type Code"),
        _f("BENE_IDENTIFICATION_CD", "BIC", "CHAR", 2, "Beneficiary Identification Code"),
        _f("BENE_EQUATED_BIC", "EQ_BIC", "CHAR", 2, "Beneficiary Equated BIC"),
        _f("BENE_AGE_CNT", "AGE_CNT", "NUM", 4, "Beneficiary Age Count"),
        _f("BENE_SEX_CD", "SEX", "CHAR", 1, "Beneficiary Sex Code"),
        _f("BENE_RACE_CD", "RACE", "CHAR", 1, "Beneficiary Race Code"),
        _f("BENE_MDCR_STUS_CD", "MS_CD", "CHAR", 2, "Beneficiary Medicare Status Code"),
        _f("BENE_RSDNC_SSA_STATE_CD", "STATE_CD", "CHAR", 2, "Beneficiary Residence SSA Standard State Code"),
        _f("BENE_RSDNC_SSA_CNTY_CD", "CNTY_CD", "CHAR", 3, "Beneficiary Residence SSA Standard County Code"),
        _f("BENE_MLG_CNTCT_ZIP_CD", "BENE_ZIP", "CHAR", 5, "Beneficiary Mailing Contact ZIP Code"),
        _f("BENE_DSCHRG_STUS_CD", "DSCHRGCD", "CHAR", 1, "Beneficiary Discharge Status Code"),
        _f("PRVDR_NUM", "PRVDR_NUM", "CHAR", 6, "Provider Number"),
        _f("ADMSN_DT", "ADMSNDT", "DATE", 8, "Admission Date"),
        _f("ADMSN_DAY_CD", "ADMSNDAY", "CHAR", 1, "Admission Day Code"),
        _f("DSCHRG_DT", "DSCHRGDT", "DATE", 8, "Discharge Date"),
        _f("DSCHRG_DSTNTN_CD", "DSTNTNCD", "CHAR", 2, "Discharge Destination Code"),
        _f("IP_ADMSN_TYPE_CD", "TYPE_ADM", "CHAR", 1, "Inpatient Admission Type Code"),
        _f("SRC_IP_ADMSN_CD", "SRC_ADMS", "CHAR", 1, "Source Inpatient Admission Code"),
        _f("LOS_DAY_CNT", "LOSCNT", "NUM", 3, "Length of Stay Day Count"),
        _f("DRG_CD", "DRG_CD", "CHAR", 3, "Diagnosis Related Group Code"),
        _f("ADMTG_DGNS_CD", "AD_DGNS", "CHAR", 7, "Admitting Diagnosis Code"),
    ]
    for ix in range(1, 26):
        fields.append(_f(f"DGNS_{ix}_CD", f"DGNSCD{ix}", "CHAR", 7, f"Diagnosis Code {ix}"))
    for ix in range(1, 26):
        fields.append(_f(f"DGNS_VRSN_CD_{ix}", f"DGNS_VRSN_CD_{ix}", "CHAR", 1, f"Diagnosis Version Code {ix}"))
    for ix in range(1, 26):
        fields.append(_f(f"SRGCL_PRCDR_{ix}_CD", f"PRCDRCD{ix}", "CHAR", 7, f"Surgical Procedure Code {ix}"))
    for ix in range(1, 26):
        fields.append(_f(f"SRGCL_PRCDR_PRFRM_{ix}_DT", f"PRCDRDT{ix}", "DATE", 8, f"Surgical Procedure Performed Date {ix}"))
    fields += [_f(long, short, "NUM", "12.2", desc) for short, long, desc in AMOUNTS]
    if year >= 2013:  # present-on-admission flags arrive in later years
        fields += [_f(f"POA_DGNS_{ix}_IND_CD", f"POA_DGNS{ix}", "CHAR", 1, f"Diagnosis {ix} Present on Admission") for ix in range(1, 26)]
    if year >= 2016:
        fields.append(_f("BNDLD_MODEL_DSCNT_PCT", "BNDLD_MODEL_DSCNT_PCT", "NUM", "4.2", "Bundled Model Discount Percent"))
    return fields


# -------------------------------------------------------------------------------------------- SAS eras

def sas_era(year: int) -> str:
    """Before 2006 the preprocessed files use the old names (qid, enrolyr, numeric YYYYMMDD dates)."""
    return "old" if year <= 2005 else "new"


def sas_denominator_columns(year: int) -> list[SasColumn]:
    if sas_era(year) == "old":
        return [
            SasColumn("qid", "str", 15, "Beneficiary ID"),
            SasColumn("enrolyr", "num", label="Enrollment year (2 digits)"),
            SasColumn("ssa_state", "str", 2, "SSA state code"),
            SasColumn("ssa_county", "str", 3, "SSA county code"),
            SasColumn("zipcode", "num", label="ZIP code (9 digits as a number)"),
            SasColumn("bene_dob", "num", label="Date of birth (YYYYMMDD)"),
            SasColumn("death_dt", "num", label="Date of death (YYYYMMDD)"),
            SasColumn("sex", "str", 1, "Sex"),
            SasColumn("race", "str", 1, "Race"),
            SasColumn("age", "num", label="Age"),
            SasColumn("orig_ent", "str", 1, "Original reason for entitlement"),
            SasColumn("cur_ent", "str", 1, "Current reason for entitlement"),
            SasColumn("hmoind", "str", 12, "HMO indicators, one character per month"),
            SasColumn("hmocovg", "num", label="HMO coverage months"),
            SasColumn("medicare_buy_in", "str", 12, "Buy-in indicators, one character per month"),
            SasColumn("buycovg", "num", label="State buy-in months"),
        ]
    return [
        SasColumn("bene_id", "str", 15, "Encrypted beneficiary ID"),
        SasColumn("rfrnc_yr", "num", label="Reference year"),
        SasColumn("state_code", "str", 2, "SSA state code"),
        SasColumn("cnty_cd", "str", 3, "SSA county code"),
        SasColumn("bene_zip", "str", 9, "ZIP code of residence"),
        SasColumn("bene_birth_dt", "date", label="Date of birth"),
        SasColumn("bene_death_dt", "date", label="Date of death"),
        SasColumn("ndi_death_dt", "date", label="NDI date of death"),
        SasColumn("bene_sex_ident_cd", "str", 1, "Sex"),
        SasColumn("bene_race_cd", "str", 1, "Race"),
        SasColumn("rti_race_cd", "str", 1, "RTI race code"),
        SasColumn("age", "num", label="Age at end of reference year"),
        SasColumn("orec", "str", 1, "Original reason for entitlement"),
        SasColumn("bene_entlmt_rsn_curr", "str", 1, "Current reason for entitlement"),
        *[SasColumn(f"hmoind{m}", "str", 1, f"HMO indicator {ROMAN[i]}") for i, m in enumerate(MONTHS)],
        SasColumn("hmo_mo", "num", label="HMO coverage months"),
        *[SasColumn(f"buyin{m}", "str", 1, f"Buy-in indicator {ROMAN[i]}") for i, m in enumerate(MONTHS)],
        SasColumn("buyin_mo", "num", label="State buy-in months"),
    ]


def sas_inpatient_columns(year: int) -> list[SasColumn]:
    if sas_era(year) == "old":  # no year column at all: the year comes from the folder
        return [
            SasColumn("qid", "str", 15, "Beneficiary ID"),
            SasColumn("ssa_state", "str", 2, "SSA state code"),
            SasColumn("zip", "str", 5, "ZIP code"),
            SasColumn("admsndt", "num", label="Admission date (YYYYMMDD)"),
            SasColumn("dschrgdt", "num", label="Discharge date (YYYYMMDD)"),
            SasColumn("admsnday", "num", label="Admission day of week"),
            SasColumn("type_adm", "str", 1, "Admission type"),
            SasColumn("src_adms", "str", 1, "Admission source"),
            SasColumn("dstntncd", "num", label="Discharge destination"),
            SasColumn("dschrgcd", "str", 1, "Discharge status"),
            SasColumn("loscnt", "num", label="Length of stay"),
            *[SasColumn(f"dgns_cd{ix:02d}", "str", 7, f"Diagnosis {ix}") for ix in range(1, 11)],
            SasColumn("drgprice", "num", label="DRG price"),
            SasColumn("pmt_amt", "num", label="Medicare payment"),
            SasColumn("ded_amt", "num", label="Inpatient deductible"),
            SasColumn("coin_amt", "num", label="Part A coinsurance"),
        ]
    return [
        SasColumn("bene_id", "str", 15, "Encrypted beneficiary ID"),
        SasColumn("year", "num", label="MedPAR year"),
        SasColumn("medpar_bene_rsdnc_ssa_state_cd", "str", 2, "Residence SSA state code"),
        SasColumn("medpar_bene_mlg_cntct_zip_cd", "str", 9, "Mailing ZIP code"),
        SasColumn("medpar_admsn_dt", "date", label="Admission date"),
        SasColumn("medpar_dschrg_dt", "date", label="Discharge date"),
        SasColumn("medpar_admsn_day_cd", "str", 1, "Admission day code"),
        SasColumn("medpar_ip_admsn_type_cd", "str", 1, "Admission type"),
        SasColumn("medpar_src_ip_admsn_cd", "str", 1, "Admission source"),
        SasColumn("medpar_dschrg_dstntn_cd", "str", 2, "Discharge destination"),
        SasColumn("medpar_bene_dschrg_stus_cd", "str", 1, "Discharge status"),
        SasColumn("medpar_los_day_cnt", "num", label="Length of stay"),
        *[SasColumn(f"medpar_dgns_cd_{ix}", "str", 7, f"Diagnosis {ix}") for ix in range(1, 26)],
        SasColumn("medpar_drg_price_amt", "num", label="DRG price"),
        SasColumn("medpar_mdcr_pmt_amt", "num", label="Medicare payment"),
        SasColumn("medpar_bene_ip_ddctbl_amt", "num", label="Inpatient deductible"),
        SasColumn("medpar_bene_pta_coinsrnc_amt", "num", label="Part A coinsurance"),
    ]


# The uniform columns each sandbox file carries, for the expected-results file (what an ingester
# should find with the seed's candidate lists; None = not present, e.g. the old inpatient year).
UNIFORM = {
    "mbsf_ab_summary": {"bene_id": "BENE_ID", "state": "STATE_CD", "zip": "BENE_ZIP", "year": "RFRNC_YR"},
    "mbsf_d_cmpnts": {"bene_id": "BENE_ID", "state": None, "zip": None, "year": "RFRNC_YR"},
    "mbsf_abcd_summary": {"bene_id": "BENE_ID", "state": "STATE_CD", "zip": "ZIP_CD", "year": "RFRNC_YR"},
    "medpar_all_file": {"bene_id": "BENE_ID", "state": "STATE_CD", "zip": "BENE_ZIP", "year": "MEDPAR_YR_NUM"},
    "denominator/old": {"bene_id": "qid", "state": "ssa_state", "zip": "zipcode", "year": "enrolyr"},
    "denominator/new": {"bene_id": "bene_id", "state": "state_code", "zip": "bene_zip", "year": "rfrnc_yr"},
    "inpatient/old": {"bene_id": "qid", "state": "ssa_state", "zip": "zip", "year": None},
    "inpatient/new": {"bene_id": "bene_id", "state": "medpar_bene_rsdnc_ssa_state_cd",
                      "zip": "medpar_bene_mlg_cntct_zip_cd", "year": "year"},
}
