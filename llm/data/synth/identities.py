"""Fake identities: the PHI that synthetic notes carry.

Everything here is invented. Phone numbers use the 555-01xx fictional range
where the format allows, SSNs start with 9 (never issued), e-mail domains end
in ``.example`` (reserved) and street names are generic, so no value can be a
real person's identifier by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from llm.data.synth.text import pick

FEMALE_FIRST = (
    "Mary", "Patricia", "Linda", "Barbara", "Elizabeth", "Jennifer", "Maria", "Susan", "Margaret",
    "Dorothy", "Lisa", "Nancy", "Karen", "Betty", "Helen", "Sandra", "Donna", "Carol", "Ruth",
    "Sharon", "Michelle", "Laura", "Sarah", "Kimberly", "Deborah", "Jessica", "Shirley", "Cynthia",
    "Angela", "Melissa", "Brenda", "Amy", "Anna", "Rebecca", "Virginia", "Kathleen", "Pamela",
    "Martha", "Debra", "Amanda", "Lucia", "Guadalupe", "Rosa", "Mei", "Aisha", "Keisha", "Latoya",
    "Priya", "Nguyen Thi", "Fatima", "Yolanda", "Ebony", "Ingrid", "Colleen", "Wanda", "Ming",
)  # fmt: skip
MALE_FIRST = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Charles", "Joseph",
    "Thomas", "Christopher", "Daniel", "Paul", "Mark", "Donald", "George", "Kenneth", "Steven",
    "Edward", "Brian", "Ronald", "Anthony", "Kevin", "Jason", "Matthew", "Gary", "Timothy", "Jose",
    "Larry", "Jeffrey", "Frank", "Scott", "Eric", "Stephen", "Andrew", "Raymond", "Gregory",
    "Joshua", "Jerry", "Dennis", "Walter", "Juan", "Carlos", "Luis", "Wei", "Darnell", "Jamal",
    "Tyrone", "Rajesh", "Ahmed", "Hung", "Malik", "Terrence", "Hector", "Olaf", "Earl",
)  # fmt: skip
LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Patel", "Washington",
    "Okafor", "Kowalski", "O'Brien", "Schneider", "Yamamoto", "Begay", "Tran", "Kim", "Singh",
    "Jefferson", "Oyelaran", "McAllister", "Fitzgerald", "Nakamura", "Castillo", "Vasquez",
)  # fmt: skip
STREETS = (
    "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Main",
    "Walnut", "Sunset", "Highland", "Meadow", "Ridge", "Willow", "Church", "Mill", "River",
    "Chestnut", "Spring", "Franklin", "Jackson", "Lincoln", "Prospect", "Orchard", "Forest",
)  # fmt: skip
STREET_KINDS = ("Street", "St", "Avenue", "Ave", "Road", "Rd", "Drive", "Lane", "Court", "Blvd")
CITIES = (
    ("Springfield", "IL", "627"), ("Riverton", "WY", "825"), ("Fairview", "OH", "441"),
    ("Georgetown", "TX", "786"), ("Madison", "WI", "537"), ("Clinton", "MS", "390"),
    ("Franklin", "TN", "370"), ("Greenville", "SC", "296"), ("Salem", "OR", "973"),
    ("Arlington", "VA", "222"), ("Ashland", "KY", "411"), ("Dover", "DE", "199"),
    ("Marion", "IN", "469"), ("Oxford", "MS", "386"), ("Burlington", "VT", "054"),
    ("Milton", "MA", "021"), ("Lakewood", "CO", "802"), ("Kingston", "NY", "124"),
)  # fmt: skip
HOSPITAL_STEMS = (
    "Riverside", "St. Agnes", "Mercy", "Northbrook", "Lakeview", "Good Samaritan", "Providence",
    "Memorial", "Sacred Heart", "Valley", "Bayview", "Holy Cross", "Summit", "Cedar Grove",
)  # fmt: skip
HOSPITAL_KINDS = ("General Hospital", "Medical Center", "Regional Medical Center", "Hospital")
CLINIC_KINDS = ("Family Health Clinic", "Primary Care Associates", "Community Clinic")
EMAIL_DOMAINS = ("mailbox.example", "inbox.example", "webmail.example", "post.example")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip


@dataclass(frozen=True)
class Person:
    """A named person: patient, relative or clinician."""

    first: str
    last: str
    sex: str

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def courtesy(self) -> str:
        """``Mr.``/``Ms.`` by sex (patients of other or unknown sex get ``Mx.``)."""
        return {"male": "Mr.", "female": "Ms."}.get(self.sex, "Mx.")


@dataclass(frozen=True)
class Identity:
    """Every identifier of one patient and of the people around them."""

    patient: Person
    birth_date: date
    mrn: str
    ssn: str
    street: str
    city_line: str  # "Springfield, IL 62704"
    phone: str
    email: str
    relative: Person
    relative_role: str
    relative_phone: str
    hospital: str
    clinic: str
    clinic_phone: str
    clinic_fax: str
    attending: Person
    resident: Person
    radiologist: Person
    cardiologist: Person
    pcp: Person
    accession: str


def _person(rng: np.random.Generator, sex: str) -> Person:
    if sex not in ("female", "male"):
        sex_for_name = "female" if rng.random() < 0.5 else "male"
    else:
        sex_for_name = sex
    first = pick(rng, FEMALE_FIRST if sex_for_name == "female" else MALE_FIRST)
    return Person(first=first, last=pick(rng, LAST), sex=sex)


def _phone(rng: np.random.Generator) -> str:
    area = int(rng.integers(201, 990))
    line = f"01{int(rng.integers(0, 100)):02d}"
    style = int(rng.integers(3))
    if style == 0:
        return f"({area}) 555-{line}"
    if style == 1:
        return f"{area}-555-{line}"
    return f"{area}.555.{line}"


def _ssn(rng: np.random.Generator) -> str:
    area, group, serial = rng.integers(10, 99), rng.integers(10, 99), rng.integers(1000, 9999)
    return f"9{area}-{group}-{serial}"  # area numbers 900-999 are never issued


def make_identity(rng: np.random.Generator, *, sex: str, birth_date: date) -> Identity:
    """Invent a patient's identity and care team.

    Args:
        rng: the patient's identity stream.
        sex: the patient's administrative sex (names follow it).
        birth_date: date of birth, already consistent with the patient's age.

    Returns:
        The identity.
    """
    patient = _person(rng, sex)
    relative_sex = "female" if rng.random() < 0.5 else "male"
    relative = _person(rng, relative_sex)
    if rng.random() < 0.6:  # spouses and children often share the surname
        relative = Person(relative.first, patient.last, relative.sex)
    role = pick(rng, ("wife", "daughter", "sister", "niece") if relative_sex == "female"
                else ("husband", "son", "brother", "nephew"))  # fmt: skip
    city, state, zip3 = CITIES[int(rng.integers(len(CITIES)))]
    stem = pick(rng, HOSPITAL_STEMS)
    email_user = f"{patient.first[0].lower()}{patient.last.lower().replace(chr(39), '')}"
    email_user += str(int(rng.integers(1, 99)))
    return Identity(
        patient=patient,
        birth_date=birth_date,
        mrn=f"{int(rng.integers(10**6, 10**8)):08d}",
        ssn=_ssn(rng),
        street=f"{int(rng.integers(2, 9800))} {pick(rng, STREETS)} {pick(rng, STREET_KINDS)}",
        city_line=f"{city}, {state} {zip3}{int(rng.integers(0, 100)):02d}",
        phone=_phone(rng),
        email=f"{email_user}@{pick(rng, EMAIL_DOMAINS)}",
        relative=relative,
        relative_role=role,
        relative_phone=_phone(rng),
        hospital=f"{stem} {pick(rng, HOSPITAL_KINDS)}",
        clinic=f"{city} {pick(rng, CLINIC_KINDS)}",
        clinic_phone=_phone(rng),
        clinic_fax=_phone(rng),
        attending=_person(rng, "unknown"),
        resident=_person(rng, "unknown"),
        radiologist=_person(rng, "unknown"),
        cardiologist=_person(rng, "unknown"),
        pcp=_person(rng, "unknown"),
        accession=f"ACC{int(rng.integers(10**7, 10**8))}",
    )


def format_date(d: date | datetime, style: int) -> str:
    """A date written one of several ways clinicians write it.

    Styles: 0 ``03/14/2022``, 1 ``2022-03-14``, 2 ``March 14, 2022``,
    3 ``14-Mar-2022``, 4 ``3/14/22``, 5 ``Mar 14, 2022``.
    """
    style %= 6
    if style == 0:
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == 1:
        return f"{d.year}-{d.month:02d}-{d.day:02d}"
    if style == 2:
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    if style == 3:
        return f"{d.day:02d}-{MONTHS[d.month - 1][:3]}-{d.year}"
    if style == 4:
        return f"{d.month}/{d.day}/{d.year % 100:02d}"
    return f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}"


def format_datetime(dt: datetime, style: int) -> str:
    """A date with a clock time, e.g. ``03/14/2022 08:15``."""
    return f"{format_date(dt, style)} {dt.hour:02d}:{dt.minute:02d}"
