"""The words of an admission H&P's history and exam: findings, negatives, history, differential.

Everything here is wording, drawn from the note's text stream; the facts
(which findings the patient has) come from :mod:`.cohort`. Four things make
the notes read like real ones rather than like their diagnosis' keywords:

* pertinent negatives, at rates that make every finding equally often
  mentioned whatever the diagnosis (:func:`.findings.negative_chance`);
* past episodes of *other* diagnoses and a family history (any diagnosis);
* a differential that names the true diagnosis among one or two others;
* abbreviations and the occasional misspelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm.data.synth.cohort import PatientFacts
from llm.data.synth.findings import (
    COMORBIDITY_WORDS,
    DIAGNOSIS_NAMES,
    DKA_DIABETES_WORDS,
    FAMILY_HISTORY,
    FAMILY_MEMBERS,
    MISSPELLING_CHANCE,
    PAST_EPISODE_NEEDS,
    PAST_EPISODES,
    SEPSIS_SOURCE_SIGNS,
    SEPSIS_SOURCE_SYMPTOMS,
    SIGN_SYSTEMS,
    SIGNS,
    SYMPTOMS,
    mention_rates,
    negative_chance,
)
from llm.data.synth.profiles import DIAGNOSES, PROFILES, Profile
from llm.data.synth.text import join_phrases, pick

DIFFERENTIAL_CHANCE = 0.3  # notes that state a differential (always with the true diagnosis)
PAST_EPISODE_CHANCE = 0.2  # per other diagnosis the patient may have had before
FAMILY_HISTORY_CHANCE = 0.5
CHRONIC_AFIB_SHARE = 0.07  # of patients without primary AF: irregular rhythm from chronic AF

POSITIVE_OPENERS = ("Also reports {x}.", "Endorses {x}.", "Also c/o {x}.", "+{x}.")
NEGATIVE_SENTENCES = (
    "Denies {x}.",
    "No {x}.",
    "Negative for {x}.",
    "Pt denies {x}.",
    "ROS negative for {x}.",
)
DIFFERENTIAL_SENTENCES = (
    " ED concern for {x}.",
    " Ddx on arrival included {x}.",
    " Being worked up for {x}.",
    " ED team considered {x}.",
)


def _source_share(profile: Profile) -> float:
    return 1.0 / len(profile.sources) if profile.sources else 0.0


def symptom_chances(profile: Profile) -> dict[str, float]:
    """Chance of each symptom under ``profile``, its sepsis sources included."""
    chances = dict(profile.symptoms)
    for source in profile.sources:
        key = SEPSIS_SOURCE_SYMPTOMS[source]
        chances[key] = min(1.0, chances.get(key, 0.0) + _source_share(profile))
    return chances


def sign_chances(profile: Profile) -> dict[str, float]:
    """Chance of each exam sign under ``profile``: sepsis sources and chronic AF included."""
    chances = dict(profile.signs)
    for source in profile.sources:
        key = SEPSIS_SOURCE_SIGNS[source]
        chances[key] = min(1.0, chances.get(key, 0.0) + _source_share(profile))
    rhythm = chances.get("irregular_rhythm", 0.0)
    chances["irregular_rhythm"] = max(rhythm, CHRONIC_AFIB_SHARE)
    return chances


SYMPTOM_MENTION_RATES = mention_rates([symptom_chances(PROFILES[d]) for d in DIAGNOSES])
SIGN_MENTION_RATES = mention_rates([sign_chances(PROFILES[d]) for d in DIAGNOSES])


@dataclass
class PresentationWriter:
    """Wording of one patient's presentation, drawn from the note's text stream."""

    facts: PatientFacts
    rng: np.random.Generator

    def symptom(self, key: str) -> str:
        """A symptom's words: a form or abbreviation, now and then misspelled."""
        s = SYMPTOMS[key]
        if s.misspellings and self.rng.random() < MISSPELLING_CHANCE:
            return pick(self.rng, s.misspellings)
        return pick(self.rng, s.forms)

    def complaint(self) -> str:
        """The chief complaint in a clinician's words (vague words stay as they are)."""
        plain = self.facts.chief_complaint
        match = [s for s in SYMPTOMS.values() if s.forms[0] == plain]
        words = self.symptom(match[0].key) if match else plain
        return words[0].upper() + words[1:]

    def denied_symptoms(self) -> list[str]:
        """The symptoms the patient lacks that the note denies (pertinent negatives)."""
        chances = symptom_chances(self.facts.profile)
        has = set(self.facts.symptoms)
        return [
            key
            for key, rate in SYMPTOM_MENTION_RATES.items()
            if key not in has and self.rng.random() < negative_chance(rate, chances.get(key, 0.0))
        ]

    def denied_signs(self) -> list[str]:
        """The exam signs the examiner notes as absent."""
        chances = sign_chances(self.facts.profile)
        has = set(self.facts.exam)
        return [
            key
            for key, rate in SIGN_MENTION_RATES.items()
            if key not in has and self.rng.random() < negative_chance(rate, chances.get(key, 0.0))
        ]

    def history_words(self) -> str:
        """``HTN, DM2, and CAD`` (the comorbidities as the HPI's opening line writes them)."""
        words = [pick(self.rng, COMORBIDITY_WORDS[c.key]) for c in self.facts.comorbidities]
        if self.facts.primary == "diabetic_ketoacidosis":
            words.insert(0, pick(self.rng, DKA_DIABETES_WORDS[self.facts.primary_code[0]]))
        return f"PMH of {join_phrases(words)}" if words else "an unremarkable PMH"

    def findings_sentences(self) -> str:
        """After the opening line: more positives, then the pertinent negatives."""
        rng = self.rng
        more = self.facts.symptoms[2:]
        parts = []
        if more:
            parts.append(pick(rng, POSITIVE_OPENERS).format(x=join_phrases(self.symptoms(more))))
        denied = self.denied_symptoms()
        rng.shuffle(denied)
        if denied:
            cut = int(rng.integers(1, len(denied) + 1)) if len(denied) > 3 else len(denied)
            for group in (denied[:cut], denied[cut:]):
                if group:
                    words = join_or(rng, self.symptoms(group))
                    parts.append(pick(rng, NEGATIVE_SENTENCES).format(x=words))
        return " ".join(parts)

    def symptoms(self, keys: list[str]) -> list[str]:
        return [self.symptom(k) for k in keys]

    def differential(self) -> str:
        """`` ED concern for PNA vs CHF exacerbation.``: the true diagnosis among others, or ''."""
        rng = self.rng
        if rng.random() >= DIFFERENTIAL_CHANCE:
            return ""
        others = [d for d in DIAGNOSES if d != self.facts.primary]
        picked = [others[i] for i in rng.choice(len(others), size=2, replace=False)]
        names = [self.facts.primary, *picked]
        rng.shuffle(names)
        words = [pick(rng, DIAGNOSIS_NAMES[d]) for d in names]
        listed = join_phrases(words) if rng.random() < 0.5 else " vs ".join(words)
        return pick(rng, DIFFERENTIAL_SENTENCES).format(x=listed)

    def past_history_lines(self) -> list[str]:
        """Past medical history items: comorbidities, past episodes of other diagnoses, family."""
        rng, f = self.rng, self.facts
        lines = [pick(rng, COMORBIDITY_WORDS[c.key]) for c in f.comorbidities]
        if f.primary == "diabetic_ketoacidosis":
            lines.insert(0, pick(rng, DKA_DIABETES_WORDS[f.primary_code[0]]))
        comorbid = {c.key for c in f.comorbidities}
        year = f.admit.year
        for d in DIAGNOSES:
            need = PAST_EPISODE_NEEDS.get(d)
            if d == f.primary or (need is not None and need not in comorbid):
                continue
            if rng.random() < PAST_EPISODE_CHANCE:
                when = str(year - int(rng.integers(1, 9)))
                lines.append(pick(rng, PAST_EPISODES[d]).format(year=when))
        if rng.random() < FAMILY_HISTORY_CHANCE:
            d = pick(rng, tuple(FAMILY_HISTORY))
            what = FAMILY_HISTORY[d].format(age=str(int(rng.integers(48, 70))))
            lines.append(f"FHx: {pick(rng, FAMILY_MEMBERS)} with {what}")
        return lines

    def exam_lines(self, side: str, level: str) -> list[str]:
        """``Lungs: crackles at the right base; no wheezes or egophony.``: one line per system."""
        rng = self.rng
        denied = self.denied_signs()
        lines = []
        for system in SIGN_SYSTEMS:
            present = [
                pick(rng, SIGNS[k].present).format(side=side, level=level)
                for k in self.facts.exam
                if SIGNS[k].system == system
            ]
            absent = [
                pick(rng, SIGNS[k].present).format(
                    side=pick(rng, ("right", "left")), level=pick(rng, ("lower", "upper"))
                )
                for k in denied
                if SIGNS[k].system == system
            ]
            groups = [", ".join(present)] if present else []
            if absent:
                groups.append("no " + join_or(rng, absent))
            if groups:
                lines.append(f"{system}: {'; '.join(groups)}.")
        return lines


def join_or(rng: np.random.Generator, items: list[str]) -> str:
    """``a, b, and c`` or ``a, b, or c`` (how a list of negatives reads)."""
    if len(items) < 2 or rng.random() < 0.5:
        return join_phrases(items)
    return " or ".join(items) if len(items) == 2 else ", ".join(items[:-1]) + f", or {items[-1]}"
