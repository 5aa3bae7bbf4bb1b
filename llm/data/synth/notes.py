"""Clinical notes written from a patient's facts: admission H&P, discharge summary, visit notes.

Section headers follow the note conventions shared with the task renderers
(capitals ending in a colon, parsed by :mod:`llm.data.sections`); no other
line starts with capitals and a colon. The admission H&P describes the
evidence (:mod:`.presentation` words it) and names diagnosis categories only
as past episodes of other diagnoses, as family history, or in a differential
that lists the true one among others. Every identifier goes in
through :class:`~llm.data.synth.text.Phi`, so its span is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from llm.data.phi import PhiSpan
from llm.data.synth.cohort import PatientFacts, PriorEncounter
from llm.data.synth.findings import SYMPTOMS
from llm.data.synth.identities import Identity, Person, format_date, format_datetime
from llm.data.synth.labels import DISPOSITION_TEXT
from llm.data.synth.labs import DISCHARGE_PANEL, LAB_TESTS, format_lab, is_abnormal
from llm.data.synth.presentation import PresentationWriter
from llm.data.synth.text import NoteBuilder, Phi, join_phrases, pick

AGE_IS_PHI_ABOVE = 89  # HIPAA Safe Harbor: ages over 89 are identifiers

SEPSIS_SOURCE_COURSE = {
    "urinary": "urine culture grew Escherichia coli",
    "skin": "the left leg erythema receded on antibiotics",
    "abdominal": "ultrasound showed an inflamed gallbladder, drained percutaneously",
}


@dataclass
class NoteWriter:
    """Writes one patient's notes; holds their facts, identity and text stream."""

    facts: PatientFacts
    who: Identity
    rng: np.random.Generator

    # -- small pieces -------------------------------------------------------
    def name(self, person: Person) -> Phi:
        return Phi(person.full, "NAME")

    def date(self, d: date | datetime, style: int) -> Phi:
        return Phi(format_date(d, style), "DATE")

    def date_time(self, d: datetime, style: int) -> Phi:
        return Phi(format_datetime(d, style), "DATE")

    def age(self, on: datetime | None = None) -> str | Phi:
        """Age in years (on the index admission day unless ``on`` is given); PHI over 89."""
        age = int(self.facts.demographics["age"])
        if on is not None:
            born = self.who.birth_date
            age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        return Phi(str(age), "AGE") if age > AGE_IS_PHI_ABOVE else str(age)

    def noun(self) -> str:
        return {"female": "woman", "male": "man"}.get(
            str(self.facts.demographics["sex"]), "patient"
        )

    def pronoun(self) -> str:
        return {"female": "She", "male": "He"}.get(str(self.facts.demographics["sex"]), "They")

    def patient_ref(self, b: NoteBuilder) -> None:
        """``Mr. Smith``, ``Ms. Smith`` or the full name."""
        p = self.who.patient
        if self.rng.random() < 0.7:
            b.fill("{c} {last}", c=p.courtesy, last=Phi(p.last, "NAME"))
        else:
            b.fill("{full}", full=self.name(p))

    def header(self, b: NoteBuilder, title: str, when: datetime, place: str | None = None) -> None:
        """Hospital, title and the patient identification block (no section headers)."""
        style = int(self.rng.integers(6))
        b.line("{hosp}", hosp=Phi(place or self.who.hospital, "HOSPITAL"))
        b.line(title)
        b.line(
            "Patient: {name}    MRN {mrn}",
            name=self.name(self.who.patient),
            mrn=Phi(self.who.mrn, "MRN"),
        )
        b.line(
            "Date of birth: {dob}    Date of service: {when}",
            dob=self.date(self.who.birth_date, style),
            when=self.date(when, style + 1),
        )
        b.add("\n")

    def history(self) -> str:
        chronic = [c.text for c in self.facts.comorbidities]
        return (
            f"a history of {join_phrases(chronic)}"
            if chronic
            else "no significant past medical history"
        )

    def symptoms(self) -> list[str]:
        """The presenting symptoms in plain words (the discharge summary's wording)."""
        return [SYMPTOMS[k].forms[0] for k in self.facts.symptoms] + self.facts.vague_symptoms

    def vitals_text(self, v: dict[str, float]) -> str:
        o2 = (
            "on room air"
            if v["spo2"] >= 92
            else pick(self.rng, ("on 2 L nasal cannula", "on room air"))
        )
        return (
            f"T {v['temp_c']:.1f} C, HR {v['heart_rate']:.0f}, BP {v['sbp']:.0f}/{v['dbp']:.0f}, "
            f"RR {v['resp_rate']:.0f}, SpO2 {v['spo2']:.0f}% {o2}"
        )

    def labs_text(self, labs: dict[str, float]) -> str:
        shown = [k for k in labs if k in LAB_TESTS]
        return "; ".join(format_lab(k, labs[k]) for k in shown)

    def signature(self, b: NoteBuilder, person: Person, when: datetime) -> None:
        style = int(self.rng.integers(6))
        template = pick(
            self.rng,
            (
                "Electronically signed by Dr. {dr}, {when}",
                "Dr. {dr}, pager {phone}, {when}",
                "Signed: Dr. {dr} on {when}",
            ),
        )
        b.add("\n")
        b.line(
            template,
            dr=self.name(person),
            when=self.date_time(when, style),
            phone=Phi(self.who.clinic_phone, "PHONE"),
        )

    # -- notes --------------------------------------------------------------
    def admission_hp(self) -> tuple[str, list[PhiSpan]]:
        """The admission history and physical (``progress_note`` of the index encounter)."""
        f, b, rng = self.facts, NoteBuilder(), self.rng
        self.header(
            b,
            pick(
                rng,
                (
                    "Admission History and Physical",
                    "Internal Medicine Admission Note",
                    "Hospitalist H&P",
                ),
            ),
            f.admit,
        )
        b.line(
            "Attending: Dr. {att}    Resident: Dr. {res}",
            att=self.name(self.who.attending),
            res=self.name(self.who.resident),
        )
        words = PresentationWriter(f, rng)
        b.section(
            "CHIEF COMPLAINT",
            pick(rng, ('"{cc}"', "{cc}", "{cc} x2 days", "{cc} for 2 days", "{cc}, worsening")),
            cc=words.complaint(),
        )
        b.section("HISTORY OF PRESENT ILLNESS")
        self.patient_ref(b)
        presenting = words.symptoms(f.symptoms[:2]) + f.vague_symptoms
        b.fill(
            pick(
                rng,
                (
                    " is a {age}-year-old {noun} with {hx} who presents with {sx}.",
                    " is a {age} yo {noun} w/ {hx}, here with {sx}.",
                    ", a {age}-year-old {noun} with {hx}, came to the ED reporting {sx}.",
                ),
            ),
            age=self.age(),
            noun=self.noun(),
            hx=words.history_words(),
            sx=join_phrases(presenting),
        )
        if not f.degraded:
            b.fill(" " + words.findings_sentences() + words.differential())
        if f.priors:
            last = f.priors[-1]
            b.fill(
                " {They} was last seen on {when} for {why}.",
                They=self.pronoun(),
                when=self.date(last.start, int(rng.integers(6))),
                why=last.reason[2],
            )
        if rng.random() < 0.5:
            b.fill(
                " History obtained from the patient and {rel_role} {rel}, reachable at {phone}.",
                rel_role="his " + self.who.relative_role
                if f.demographics["sex"] == "male"
                else "her " + self.who.relative_role,
                rel=self.name(self.who.relative),
                phone=Phi(self.who.relative_phone, "PHONE"),
            )
        b.add("\n")
        b.section("PAST MEDICAL HISTORY")
        past = words.past_history_lines()
        if past:
            for item in past:
                b.line("- {item}", item=item[0].upper() + item[1:])
        else:
            b.line(
                pick(
                    rng, ("None.", "No chronic medical problems.", "Denies prior medical history.")
                )
            )
        b.section("SOCIAL HISTORY")
        b.fill("Lives alone" if f.lives_alone else f"Lives {f.household}")
        b.fill(
            " at {street}, {city}.",
            street=Phi(self.who.street, "ADDRESS"),
            city=Phi(self.who.city_line, "ADDRESS"),
        )
        tobacco = any(c.key == "tobacco" for c in f.comorbidities)
        b.line(
            " Current smoker, 1 pack per day."
            if tobacco
            else pick(
                rng, (" Never smoker.", " Former smoker, quit 10 years ago.", " Denies tobacco.")
            )
        )
        b.line(
            pick(
                rng,
                (
                    "Occasional alcohol; no illicit drug use.",
                    "No alcohol or drug use.",
                    "Drinks 1-2 beers on weekends.",
                ),
            )
        )
        b.section("PHYSICAL EXAM")
        b.line("Vitals: " + self.vitals_text(f.vitals_admit) + ".")
        if f.degraded:
            b.line(
                pick(rng, ("Notable for {ex}.", "Exam shows {ex}.", "On examination: {ex}.")),
                ex=join_phrases(f.vague_exam),
            )
            b.line(pick(rng, ("Alert; abdomen soft.", "Oriented; no focal neurologic deficit.")))
        else:
            side, level = (f.chest.consolidation or "right lower").split()
            for line in words.exam_lines(side, level):
                b.line("{exam}", exam=line)
        shown = {k: v for k, v in f.labs_admit.items() if k != "chloride"}
        b.line("Labs: " + self.labs_text(shown) + ".")
        b.section("ASSESSMENT AND PLAN")
        b.fill(
            "{age}-year-old {noun} admitted with the presentation above.",
            age=self.age(),
            noun=self.noun(),
        )
        b.add("\n")
        for item in f.plan:
            b.line("- " + item)
        b.line(
            "- "
            + pick(
                rng,
                ("DVT prophylaxis with subcutaneous heparin.", "Full code.", "Diet as tolerated."),
            )
        )
        self.signature(b, self.who.resident, f.admit + timedelta(hours=3))
        return b.text(), b.spans

    def discharge_summary(self) -> tuple[str, list[PhiSpan]]:
        """The discharge summary of the index admission; states every readmission-rule input."""
        f, b, rng = self.facts, NoteBuilder(), self.rng
        style = int(rng.integers(6))
        self.header(
            b,
            pick(
                rng,
                ("Discharge Summary", "Hospital Discharge Summary", "Inpatient Discharge Summary"),
            ),
            f.discharge,
        )
        b.line("Attending: Dr. {att}", att=self.name(self.who.attending))
        b.section("ADMISSION DATE", "{d}", d=self.date(f.admit, style))
        b.section("DISCHARGE DATE", "{d}", d=self.date(f.discharge, style))
        b.section("CHIEF COMPLAINT", "{cc}", cc=f.chief_complaint.capitalize())
        b.section("HISTORY OF PRESENT ILLNESS")
        self.patient_ref(b)
        b.fill(
            " is a {age}-year-old {noun} with {hx} who presented with {sx}.",
            age=self.age(),
            noun=self.noun(),
            hx=self.history(),
            sx=join_phrases(self.symptoms()),
        )
        n = f.prior_admissions_year
        if n == 0:
            b.fill(
                pick(
                    rng,
                    (
                        " No hospital admissions in the past 12 months.",
                        " No hospital admissions in the past year.",
                    ),
                )
            )
        else:
            b.fill(
                pick(
                    rng,
                    (
                        " {They} has had {n} hospital admission{s} in the past 12 months.",
                        " {They} was admitted {n} time{s} in the past year.",
                    ),
                ),
                They=self.pronoun(),
                n=str(n),
                s="" if n == 1 else "s",
            )
        b.fill(
            " {They} lives alone." if f.lives_alone else " {They} lives {h}.",
            They=self.pronoun(),
            h=f.household,
        )
        b.add("\n")
        b.section("BRIEF HOSPITAL COURSE")
        b.fill("The patient was admitted to the medicine service")
        b.fill(" and " + join_phrases(list(f.course)) + ".")
        if f.sepsis_source:
            b.fill(" The " + SEPSIS_SOURCE_COURSE[f.sepsis_source] + ".")
        key_labs = [k for k in f.profile.discriminating_labs if k in f.labs_admit]
        if key_labs:
            b.fill(
                " Notable admission results: "
                + "; ".join(format_lab(k, f.labs_admit[k]) for k in key_labs)
                + "."
            )
        b.fill(" Length of stay {los} days.", los=str(f.length_of_stay_days))
        b.add("\n")
        parts = []
        for key in DISCHARGE_PANEL:
            if key in f.labs_discharge:
                t = LAB_TESTS[key]
                flag = ""
                if is_abnormal(round(f.labs_discharge[key], t.decimals), t.ref_low, t.ref_high):
                    flag = " (low)" if f.labs_discharge[key] < t.ref_low else " (high)"
                parts.append(format_lab(key, f.labs_discharge[key]) + flag)
        b.line("Discharge labs: " + "; ".join(parts) + ".")
        b.section("DISCHARGE DIAGNOSIS")
        b.line("Primary: {d} ({c})", d=f.primary_code[1], c=f.primary_code[0])
        if f.comorbidities:
            b.line("Secondary:")
            for c in f.comorbidities:
                b.line("- {d} ({c})", d=c.description, c=c.code)
        else:
            b.line("Secondary: none")
        condition = (
            "Fair"
            if f.disposition == "against_medical_advice"
            else pick(rng, ("Stable", "Improved", "Good"))
        )
        b.section("DISCHARGE CONDITION", condition + ".")
        b.section("DISCHARGE DISPOSITION", DISPOSITION_TEXT[f.disposition])
        b.section("FOLLOW-UP")
        b.line(
            pick(
                rng,
                (
                    "Follow up with Dr. {pcp} at {clinic} within 7 days; phone {ph}, fax {fax}.",
                    "Appointment with Dr. {pcp}, {clinic}, in 1-2 weeks. Clinic phone {ph}; fax "
                    "{fax}.",
                ),
            ),
            pcp=self.name(self.who.pcp),
            clinic=Phi(self.who.clinic, "HOSPITAL"),
            ph=Phi(self.who.clinic_phone, "PHONE"),
            fax=Phi(self.who.clinic_fax, "FAX"),
        )
        b.line(
            "Patient contact: {ph}, {email}.",
            ph=Phi(self.who.phone, "PHONE"),
            email=Phi(self.who.email, "EMAIL"),
        )
        if rng.random() < 0.3:
            b.line(
                "Registration on file: SSN {ssn}; {street}, {city}.",
                ssn=Phi(self.who.ssn, "SSN"),
                street=Phi(self.who.street, "ADDRESS"),
                city=Phi(self.who.city_line, "ADDRESS"),
            )
        self.signature(b, self.who.attending, f.discharge)
        return b.text(), b.spans

    def visit_note(self, prior: PriorEncounter) -> tuple[str, list[PhiSpan]]:
        """A short note of an earlier visit (clinic, emergency department or admission)."""
        b, rng = NoteBuilder(), self.rng
        title, place = {
            "inpatient": ("Hospital Admission Note", self.who.hospital),
            "emergency": ("Emergency Department Note", self.who.hospital),
            "outpatient": ("Clinic Visit Note", self.who.clinic),
        }[prior.kind]
        self.header(b, title, prior.start, place=place)
        b.section(
            "CHIEF COMPLAINT",
            "{r}",
            r=prior.reason[2].removeprefix("a ").removeprefix("an ").capitalize(),
        )
        b.section("HISTORY OF PRESENT ILLNESS")
        self.patient_ref(b)
        b.fill(
            " is a {age}-year-old {noun} with {hx} seen for {why}.",
            age=self.age(on=prior.start),
            noun=self.noun(),
            hx=self.history(),
            why=prior.reason[2],
        )
        b.add("\n")
        b.section("PHYSICAL EXAM")
        b.line("Vitals: " + self.vitals_text(prior.vitals) + ".")
        b.section("ASSESSMENT AND PLAN")
        b.line(
            "{d} ({c}). {plan}",
            d=prior.reason[1],
            c=prior.reason[0],
            plan=pick(
                rng,
                (
                    "Return precautions reviewed.",
                    "Follow up in clinic in 4 weeks.",
                    "Continue current medications.",
                ),
            ),
        )
        self.signature(
            b, self.who.pcp if prior.kind == "outpatient" else self.who.attending, prior.end
        )
        return b.text(), b.spans
