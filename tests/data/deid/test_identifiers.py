"""Safe Harbor identifiers in the formats clinical notes use, and numbers that are not PHI.

Written by hand from the HIPAA Safe Harbor list and common US formats (issue 24);
nothing is read from ``llm/data/deid/heldout/``.
"""

from __future__ import annotations

import pytest

from llm.data.deid.engine import Deidentifier
from llm.data.deid.identifiers import vin_check_digit_ok
from llm.data.deid.vocabulary import eponym_spans, is_protected

from .conftest import covered, touched


# ---------------------------------------------------------------- licences and certificates
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("DL# S530-4471-8820 copied to chart", "S530-4471-8820"),
        ("Driver's license: D1234567 (MA)", "D1234567"),
        ("drivers license number is 44Z918203", "44Z918203"),
        ("Medical license MA-228841, board certified", "MA-228841"),
        ("Ordering provider DEA: BK4471823", "BK4471823"),
        ("NPI 1457382910 on the claim", "1457382910"),
        ("RN license # RN2019-33817 verified by HR", "RN2019-33817"),
        ("Board certificate no. ABIM-554120", "ABIM-554120"),
        ("Lic. No. 0041187 (state of Ohio)", "0041187"),
        ("State license: 35.118842 active", "35.118842"),
    ],
)
def test_licence_and_certificate_numbers(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "MRN"


# ---------------------------------------------------------------- other unique identifiers
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("Claim number: 2131-CL-004481 denied", "2131-CL-004481"),
        ("APS case # 24-118873 opened", "24-118873"),
        ("Reference no. REF88213 for the appeal", "REF88213"),
        ("Order #55102938 for CBC", "55102938"),
        ("Requisition: Q7781204 sent with the specimen", "Q7781204"),
        ("Prior authorization number PA-2231-9981 approved", "PA-2231-9981"),
        ("Police report no. 24-00731 filed", "24-00731"),
        ("Specimen ID: SP-22-018833", "SP-22-018833"),
        ("Workers comp claim WC 4471823 pending", "WC 4471823"),
        ("See CLM-2131-004481 in the billing system", "CLM-2131-004481"),
    ],
)
def test_other_unique_identifiers(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "MRN"


# ---------------------------------------------------------------- health plan ids
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("Insurance: Aetna W2938811405", "W2938811405"),
        ("BCBS ID XKP884120931 on card", "XKP884120931"),
        ("Medicare 1EG4-TE5-MK73 primary", "1EG4-TE5-MK73"),
        ("Medicare beneficiary 1EG4TE5MK73", "1EG4TE5MK73"),
        ("Group 0049112, subscriber 882201934", "0049112"),
        ("Group 0049112, subscriber 882201934", "882201934"),
        ("Policy: HX-4471-2290", "HX-4471-2290"),
        ("old HICN 123-45-6789A on file", "123-45-6789A"),
        ("Card shows YRH448120917 as the member number", "YRH448120917"),
    ],
)
def test_health_plan_identifiers(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "MRN"


# ---------------------------------------------------------------- vehicles
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("Ohio plate GHK 4471 at the scene", "GHK 4471"),
        ("plate reads 7XYZ123", "7XYZ123"),
        ("tag # 8KDL392 noted by EMS", "8KDL392"),
        ("License plate: (MA) 4TRD92", "4TRD92"),
        ("car registration ABC-1234 expired", "ABC-1234"),
        ("vin: 1hgcm82633a004352", "1hgcm82633a004352"),
        ("Vehicle identification number 2T1BURHE0JC043821", "2T1BURHE0JC043821"),
        ("Truck 1FTFW1ET5DFC10312 rolled over", "1FTFW1ET5DFC10312"),
    ],
)
def test_vehicle_identifiers(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "VEHICLE_ID"


def test_vin_check_digit() -> None:
    assert vin_check_digit_ok("1HGCM82633A004352")
    assert vin_check_digit_ok("1M8GDM9AXKP042788")  # check digit X
    assert not vin_check_digit_ok("1HGCM82643A004352")
    assert not vin_check_digit_ok("1HGCM82633A00435")


# ---------------------------------------------------------------- SSNs
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("SSN 123 45 6789 verified", "123 45 6789"),
        ("Social Security number on file is 123456789.", "123456789"),
        ("SSN (per registration): 123.45.6789", "123.45.6789"),
        ("soc sec # 078-05-1120", "078-05-1120"),
        ("card reads 123 45 6789 under her name", "123 45 6789"),
    ],
)
def test_social_security_numbers(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "SSN"


# ---------------------------------------------------------------- ages over 89
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("She is 90 now and lives alone", "90"),
        ("Pt (M, 98) seen in clinic", "98"),
        ("aged 93, widowed", "93"),
        ("a 91 y/o woman with CHF", "91"),
        ("98M with fall", "98"),
        ("98 yo F presenting with cough", "98"),
        ("94yoF with dysuria", "94"),
        ("at the age of 95 she moved", "95"),
        ("celebrated his 100th birthday", "100"),
        ("Age/Sex: 96/M", "96"),
        ("He turned 102 last month", "102"),
    ],
)
def test_ages_over_89_in_prose(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "AGE"


# ---------------------------------------------------------------- cities and ZIPs
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("She lives in Tacoma with her son", "Tacoma"),
        ("Moved here from Winston-Salem last spring", "Winston-Salem"),
        ("Born in Lake Charles, raised in Opelousas.", "Lake Charles"),
        ("Born in Lake Charles, raised in Opelousas.", "Opelousas"),
        ("Visiting family in Bakersfield.", "Bakersfield"),
        ("Daughter in Fort Collins, CO helps", "Fort Collins"),
        ("Mailing address ends OH 45402", "45402"),
        ("zip code is 02114", "02114"),
    ],
)
def test_cities_and_zips(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "ADDRESS"


# ---------------------------------------------------------------- not identifiers
@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("Glucose 110 mg/dL 12/03/2131 fasting", "110 mg/dL"),
        ("Platelets 150, plate count normal", "150"),
        ("PLATELETS 150 K/uL", "150"),
        ("Order 1000 mL NS bolus", "1000 mL"),
        ("Plan: heparin 10000 units subcutaneous", "10000 units"),
        ("Case: 45-year-old man with chest pain", "45-year-old"),
        ("Room 12, bed 3, x 3 days", "Room 12"),
        ("Room 12, bed 3, x 3 days", "bed 3"),
        ("Room 12, bed 3, x 3 days", "x 3 days"),
        ("BP is 90/60, HR 98 on 2 L", "90/60"),
        ("BP is 90/60, HR 98 on 2 L", "98"),
        ("She is 92% on room air", "92%"),
        ("Temp 98 F, he is 95 kg", "98 F"),
        ("Temp 98 F, he is 95 kg", "95 kg"),
        ("T 98F, HR 80", "98F"),
        ("Tmax 99F overnight", "99F"),
        ("Temp 36.7 C (98 F)", "98 F"),
        ("He is 90 minutes late", "90 minutes"),
        ("Plan: Continue Lasix 40 mg PO daily, recheck BMP in 3 days", "40 mg"),
        ("Group therapy 3 times weekly; policy reviewed with family", "3 times"),
        ("Reference range 3.5-5.0 mmol/L", "3.5-5.0"),
        ("Plate and screws intact on XR", "Plate and screws"),
        ("Travelled to Mexico last year", "Mexico"),
        ("COVID-19 PCR negative", "COVID-19"),
        ("A1c 7.2, LDL 98", "A1c 7.2"),
        ("Seen in Cardiology, then in March", "Cardiology"),
        ("Seen in Cardiology, then in March", "March"),
        ("She speaks in Spanish and came from Rehab.", "Spanish"),
        ("Metoprolol 25 mg PO BID at 08:00", "25 mg"),
        ("Metoprolol 25 mg PO BID at 08:00", "08:00"),
    ],
)
def test_numbers_and_words_that_are_not_identifiers(
    tagger: Deidentifier, text: str, part: str
) -> None:
    assert touched(tagger, text, part) == []


@pytest.mark.parametrize(
    ("text", "part", "entity"),
    [
        ("Call 617-555-0142 or 617 555 0199", "617 555 0199", "SSN"),
        ("labs 123 456 7890 pending", "123 456 7890", "SSN"),
        ("She speaks in Spanish and came from Rehab.", "Rehab", "ADDRESS"),
        ("Phone 617.555.0142, fax 617.555.0199", "617.555.0142", "SSN"),
        ("SSN unknown; phone 6175550142", "6175550142", "SSN"),
    ],
)
def test_near_misses_are_not_typed_as(
    tagger: Deidentifier, text: str, part: str, entity: str
) -> None:
    assert entity not in touched(tagger, text, part)


# ---------------------------------------------------------------- eponyms
@pytest.mark.parametrize(
    ("text", "eponym"),
    [
        ("Braden scale 14, turning q2h", "Braden"),
        ("History of Charcot-Marie-Tooth disease", "Charcot"),
        ("Recovering from Guillain-Barre syndrome", "Guillain-Barre"),
        ("Knee pain from Osgood-Schlatter disease", "Osgood-Schlatter"),
        ("Foley catheter removed, voiding", "Foley"),
        ("Swan-Ganz catheter placed", "Swan-Ganz"),
        ("Positive Murphy's sign and McBurney point tenderness", "McBurney"),
        ("Kernig and Brudzinski signs negative", "Brudzinski"),
        ("Roux-en-Y gastric bypass in 2120", "Roux-en-Y"),
        ("Pfannenstiel incision healing well", "Pfannenstiel"),
        ("Wolff-Parkinson-White pattern on ECG", "Wolff-Parkinson-White"),
        ("Glasgow Coma Scale 15", "Glasgow"),
    ],
)
def test_eponyms_are_kept(tagger: Deidentifier, text: str, eponym: str) -> None:
    assert touched(tagger, text, eponym) == []


def test_eponym_vocabulary() -> None:
    for word in ("Charcot-Marie-Tooth", "Guillain-Barré", "Crohn's", "Roux-en-Y", "Braden"):
        assert is_protected(word), word
    for word in ("Jean-Marie", "Mary-Jane", "Smith-Jones"):
        assert not is_protected(word), word
    text = "Bence Jones protein; Mr. Smith's fracture; Dr. Murphy's sign; Jones negative for flu"
    assert [text[a:b] for a, b in eponym_spans(text)] == ["Bence Jones"]
