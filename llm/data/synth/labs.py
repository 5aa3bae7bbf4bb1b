"""Laboratory tests and vital signs: LOINC codes, units, reference ranges.

Reference ranges are typical adult ranges of US hospital laboratories. Every
lab value the cohort writes carries its range, so "abnormal" is decidable from
the record alone (the readmission rule counts abnormal discharge labs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabTest:
    """One orderable test."""

    key: str
    code: str  # LOINC
    name: str
    unit: str
    ref_low: float
    ref_high: float
    decimals: int


LAB_TESTS: dict[str, LabTest] = {
    t.key: t
    for t in (
        LabTest("wbc", "6690-2", "WBC", "10*3/uL", 4.0, 11.0, 1),
        LabTest("hemoglobin", "718-7", "Hemoglobin", "g/dL", 12.0, 17.5, 1),
        LabTest("platelets", "777-3", "Platelets", "10*3/uL", 150.0, 400.0, 0),
        LabTest("sodium", "2951-2", "Sodium", "mmol/L", 135.0, 145.0, 0),
        LabTest("potassium", "2823-3", "Potassium", "mmol/L", 3.5, 5.1, 1),
        LabTest("chloride", "2075-0", "Chloride", "mmol/L", 98.0, 107.0, 0),
        LabTest("bicarbonate", "1963-8", "Bicarbonate", "mmol/L", 22.0, 29.0, 0),
        LabTest("bun", "3094-0", "BUN", "mg/dL", 7.0, 20.0, 0),
        LabTest("creatinine", "2160-0", "Creatinine", "mg/dL", 0.6, 1.3, 2),
        LabTest("glucose", "2345-7", "Glucose", "mg/dL", 70.0, 140.0, 0),
        LabTest("anion_gap", "33037-3", "Anion gap", "mmol/L", 8.0, 16.0, 0),
        LabTest("lactate", "2524-7", "Lactate", "mmol/L", 0.5, 2.0, 1),
        LabTest("procalcitonin", "33959-8", "Procalcitonin", "ng/mL", 0.0, 0.5, 2),
        LabTest("bnp", "30934-4", "BNP", "pg/mL", 0.0, 100.0, 0),
        LabTest("troponin", "10839-9", "Troponin I", "ng/mL", 0.0, 0.04, 2),
        LabTest("pco2", "2019-8", "pCO2 arterial", "mm[Hg]", 35.0, 45.0, 0),
        LabTest("bhb", "53060-9", "Beta-hydroxybutyrate", "mmol/L", 0.0, 0.6, 1),
        LabTest("hba1c", "4548-4", "Hemoglobin A1c", "%", 4.0, 5.6, 1),
        LabTest("tsh", "3016-3", "TSH", "m[IU]/L", 0.4, 4.0, 2),
    )
}

# The basic panel every admission gets (CBC + BMP); anion gap is derived from it.
ADMISSION_PANEL = (
    "wbc",
    "hemoglobin",
    "platelets",
    "sodium",
    "potassium",
    "chloride",
    "bicarbonate",
    "bun",
    "creatinine",
    "glucose",
)
# Ordered for every admission from the emergency department, whatever the complaint
# (cardiac markers, sepsis markers, a blood gas and ketones), so that which tests
# were drawn says nothing about the diagnosis.
EMERGENCY_PANEL = ("troponin", "bnp", "lactate", "procalcitonin", "pco2", "bhb")
# Drawn on the morning of discharge; the readmission rule counts abnormal ones.
DISCHARGE_PANEL = ("sodium", "potassium", "creatinine", "hemoglobin")

# Normal values (low, high) for a patient without the disease that moves them.
NORMAL_LAB_RANGES: dict[str, tuple[float, float]] = {
    "wbc": (5.0, 9.5),
    "hemoglobin": (12.5, 15.5),
    "platelets": (170.0, 360.0),
    "sodium": (136.0, 143.0),
    "potassium": (3.7, 4.8),
    "bicarbonate": (23.0, 28.0),
    "bun": (9.0, 19.0),
    "creatinine": (0.7, 1.2),
    "glucose": (80.0, 135.0),
    "lactate": (0.7, 1.7),
    "procalcitonin": (0.02, 0.12),
    "bnp": (15.0, 90.0),
    "troponin": (0.0, 0.03),
    "pco2": (36.0, 44.0),
    "bhb": (0.0, 0.4),
    "hba1c": (4.8, 5.6),
    "tsh": (0.6, 3.5),
}


@dataclass(frozen=True)
class VitalSign:
    """One vital sign: record name, LOINC code, unit, display name."""

    name: str
    code: str
    unit: str
    display: str


VITAL_SIGNS: dict[str, VitalSign] = {
    v.name: v
    for v in (
        VitalSign("heart_rate", "8867-4", "/min", "heart rate"),
        VitalSign("sbp", "8480-6", "mmHg", "systolic blood pressure"),
        VitalSign("dbp", "8462-4", "mmHg", "diastolic blood pressure"),
        VitalSign("resp_rate", "9279-1", "/min", "respiratory rate"),
        VitalSign("temp_c", "8310-5", "Cel", "temperature"),
        VitalSign("spo2", "59408-5", "%", "oxygen saturation"),
        VitalSign("weight_kg", "29463-7", "kg", "weight"),
    )
}

NORMAL_VITAL_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate": (64.0, 96.0),
    "sbp": (108.0, 150.0),
    "dbp": (62.0, 88.0),
    "resp_rate": (14.0, 19.0),
    "temp_c": (36.3, 37.6),
    "spo2": (95.0, 99.0),
}


def is_abnormal(value: float, ref_low: float | None, ref_high: float | None) -> bool:
    """True when ``value`` lies outside its reference range."""
    return (ref_low is not None and value < ref_low) or (ref_high is not None and value > ref_high)


def format_lab(key: str, value: float) -> str:
    """``Creatinine 2.31 mg/dL`` with the test's usual precision."""
    test = LAB_TESTS[key]
    return f"{test.name} {value:.{test.decimals}f} {test.unit}"
