from __future__ import annotations

from llm.data.schema import Diagnosis, Lab, Vital
from llm.data.tasks.serialize import (
    format_diagnoses,
    format_labs,
    format_number,
    format_vitals,
    lab_flag,
)


def test_number_format() -> None:
    assert format_number(14.2) == "14.2"
    assert format_number(140.0) == "140"
    assert format_number(0.1 + 0.2) == "0.3"
    assert format_number(0.012) == "0.012"
    assert format_number(1234567.8) == "1234570"
    assert format_number(-0.0) == "0"
    assert format_number(1e-7) == "0.0000001"


def test_labs_latest_per_test_flags_and_order() -> None:
    labs = [
        Lab(code="6690-2", name="WBC", value=16.0, unit="K/uL", ref_low=4, ref_high=11,
            time="2131-04-02T09:00:00"),
        Lab(code="6690-2", name="WBC", value=14.2, unit="K/uL", ref_low=4, ref_high=11,
            time="2131-04-03T06:00:00"),
        Lab(code="2524-7", name="Lactate", value=3.1, unit="mmol/L", ref_high=2.0),
        Lab(code="2160-0", name="creatinine", value=0.9, unit="mg/dL", ref_low=0.6, ref_high=1.2),
        Lab(code="2951-2", name="Sodium", value=131, unit="mmol/L", ref_low=135, ref_high=145),
        Lab(code="X1", name="Influenza A", value="positive; confirmed\nby PCR"),
    ]  # fmt: skip
    assert format_labs(labs) == (
        "LABS: creatinine 0.9 mg/dL; Influenza A positive, confirmed by PCR; "
        "Lactate 3.1 mmol/L [H]; Sodium 131 mmol/L [L]; WBC 14.2 K/uL [H]"
    )


def test_labs_timed_result_beats_untimed_and_later_line_wins_ties() -> None:
    untimed_late = Lab(code="A", name="K", value=9.0)
    timed_early = Lab(code="A", name="K", value=4.0, time="2131-01-01T00:00:00")
    assert format_labs([timed_early, untimed_late]) == "LABS: K 4"
    same_time = [Lab(code="A", name="K", value=v, time="2131-01-01T00:00:00") for v in (1, 2)]
    assert format_labs(same_time) == "LABS: K 2"


def test_lab_flags_only_for_numbers_with_a_range() -> None:
    assert lab_flag(Lab(code="a", name="a", value=5.0)) is None
    assert lab_flag(Lab(code="a", name="a", value=5.0, ref_low=1, ref_high=5)) is None
    assert lab_flag(Lab(code="a", name="a", value="high", ref_high=5)) is None
    assert lab_flag(Lab(code="a", name="a", value=0.5, ref_low=1)) == "L"


def test_empty_lines_say_none_recorded() -> None:
    assert format_labs([]) == "LABS: none recorded"
    assert format_vitals([]) == "VITALS: none recorded"
    assert format_diagnoses([]) == "DIAGNOSES: none recorded"


def test_vitals_fixed_order_units_and_others_after() -> None:
    vitals = [
        Vital(name="spo2", value=91, unit="%"),
        Vital(name="temp_c", value=38.6, unit="Cel"),
        Vital(name="pain_score", value=7),
        Vital(name="dbp", value=58, unit="mmHg"),
        Vital(name="heart_rate", value=120, unit="/min", time="2131-01-01T08:00:00"),
        Vital(name="heart_rate", value=112, unit="/min", time="2131-01-01T09:00:00"),
        Vital(name="sbp", value=92, unit="mmHg"),
        Vital(name="resp_rate", value=24, unit="/min"),
        Vital(name="glucose_fingerstick", value=180, unit="mg/dL"),
    ]
    assert format_vitals(vitals) == (
        "VITALS: HR 112/min; BP 92/58 mmHg; RR 24/min; Temp 38.6 C; SpO2 91%; "
        "glucose_fingerstick 180 mg/dL; pain_score 7"
    )


def test_vitals_half_a_blood_pressure() -> None:
    assert format_vitals([Vital(name="sbp", value=88)]) == "VITALS: SBP 88 mmHg"


def test_diagnoses_primary_first_deduplicated_system_prefixed() -> None:
    diagnoses = [
        Diagnosis(code="I10", description="Essential hypertension"),
        Diagnosis(code="J18.9", description="Pneumonia, unspecified organism", primary=True),
        Diagnosis(code="I10", description="Essential hypertension"),
        Diagnosis(system="ICD-9", code="428.0"),
    ]
    assert format_diagnoses(diagnoses, header="PRIOR DIAGNOSES") == (
        "PRIOR DIAGNOSES: J18.9 Pneumonia, unspecified organism; I10 Essential hypertension; "
        "ICD-9 428.0"
    )
