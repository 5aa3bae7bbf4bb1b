"""Note templates of the held-out evaluation corpus (five styles), kept apart from the recognizers.

Nothing here was used to write or tune a recognizer. ``{slot}`` is filled by
:mod:`llm.data.deid.heldout.corpus` with a PHI value (its span recorded), a
clinical term to keep (its span recorded too) or plain text; ``[[term|kind]]``
is a clinical term written as is and recorded as one to keep. PHI sits where
real notes put it: letterheads, header tables, lists, signature lines and
inside sentences, in upper case, lower case and ``LAST, First`` order.
"""

from __future__ import annotations

NURSING_NOTES = (
    """NURSING PROGRESS NOTE
Pt: {pt_last_first}    MRN {mrn}    Rm 4{room}
Shift: {datetime1} to {datetime2}

Assessment: {age}-year-old {sex_word} with hx of {eponym1} and [[CHF|abbreviation]], A&O x3.
VS stable. [[SpO2|abbreviation]] 95% on 2 L/min NC. Glucose 182 [[mg/dL|unit]] at 0600,
covered per sliding scale with {drug1}. Pain 3/10, [[PRN|abbreviation]] {drug2} given x1.
Daughter {rel_first} at bedside most of shift, asked to be called at {phone1} with updates.
Pt states "call me {pt_first}". Family requests no visitors other than {rel_full}.
Belongings list signed; hearing aid serial {device} stored in drawer.

Plan: continue [[q4h|abbreviation]] neuro checks, fall precautions,
[[NPO|abbreviation]] after midnight.
-- {rn_full}, RN   {datetime3}""",
    """Nursing note {date1}
Patient {pt_full} ({pt_sex_short}, {age}) admitted to 6 West from ED.
Identity verified with two identifiers: name and DOB {dob}. Wristband MRN: {mrn}.
Home address confirmed: {street}, {city}, {state} {zip}. Lives with spouse {rel_full}.
Meds from home: {drug1} 20 [[mg|unit]] daily, {drug2} 5 [[mg|unit]] [[BID|abbreviation]].
Known {eponym1}; baseline tremor noted. Skin intact, [[Braden|eponym]] score 16.
Insurance card scanned: member ID {plan}.
Report given to oncoming RN {rn2_first} at 1900. Dr. {dr1_last} aware of K+ 3.1 [[mEq/L|unit]].
{rn_initial}, RN""",
    """FLOWSHEET COMMENT - {datetime1}
  * Pt {pt_first} {pt_last} resting, call light in reach
  * Spouse {rel_first} called from {phone2}, updated per pt permission
  * {drug1} held for SBP < 90; Dr. {dr1_full} notified via pager
  * [[Foley|eponym]] catheter draining clear yellow urine, 350 [[mL|unit]]
  * Transport to MRI arranged; pt's car (plate {plate}) still in visitor lot, son to move it
  * Fall risk per [[Morse|eponym]] scale: high
Signed: {rn_full} RN / {datetime2}""",
)

DISCHARGE_SUMMARIES = (
    """DISCHARGE SUMMARY

Patient name: {pt_full}          DOB: {dob}
MRN: {mrn}          Account #: {acct}
Admission date: {date1}          Discharge date: {date2}
Attending: {dr1_full}, MD          PCP: Dr. {dr2_full}

HOSPITAL COURSE: Mr./Ms. {pt_last} is a {age}-year-old with {eponym1}, [[COPD|abbreviation]]
and [[HTN|abbreviation]] admitted with acute hypoxic respiratory failure. Treated with {drug1}
and {drug2}; [[eGFR|abbreviation]] recovered to 48 [[mL/min/1.73m2|unit]].
Cardiology (Dr. {dr3_last}) saw the patient on {date3} and recommended outpatient echo.
Seen in consultation for {eponym2}. {pt_first} was ambulating independently by day 4.

DISCHARGE MEDICATIONS:
1. {drug1} 40 [[mg|unit]] PO daily
2. {drug2} 5 [[mg|unit]] PO [[BID|abbreviation]]
3. {drug3} as directed

FOLLOW-UP: Dr. {dr2_last} in 1 week, {phone1}. Fax discharge summary to {fax}.
Home health referral faxed {date4}; agency case ref {other_id}.

Dictated by: {dr1_full}, MD on {datetime1}
cc: {dr2_full}, MD""",
    """DISCHARGE SUMMARY ({date2})
===========================================
| Name        | {pt_last_first}
| DOB / Age   | {dob} / {age} y
| SSN         | {ssn}
| Health plan | {plan}
| Address     | {street}
|             | {city}, {state} {zip}
===========================================
Reason for admission: syncope. Hx of {eponym1}, [[DM2|abbreviation]] (HbA1c 8.2 [[%|unit]]).
The patient, a {age}-year-old retired teacher, was found by her neighbor {rel_full}.
Telemetry unremarkable. Pacemaker interrogated (device {device}), normal function.
Started {drug1}; {drug2} stopped. Discussed with Dr. {dr1_last} ({email_dr}).
Driver's license {license} retained by security, returned to family on {date3}.
Signed electronically by {dr1_full} {datetime1}""",
    """Discharge note - {pt_first} {pt_last} (MRN {mrn})
Admitted {date1}, discharged {date2} to home with family.
Primary dx: {eponym1}. Secondary: [[AKI|abbreviation]], resolved; Cr 1.1 [[mg/dL|unit]].
Patient instructions reviewed with patient and son {rel_full} (cell {phone2}).
Take {drug1} 1 tab every 12 hours; do not combine with {drug2}.
Follow up at the clinic at {street}, {city} on {date3}. Questions: {email_pt}.
Online after-visit summary: {url}
{dr1_full}, DO - hospitalist""",
)

RADIOLOGY_REPORTS = (
    """RADIOLOGY REPORT
+--------------+--------------------------+------------+--------------+
| Patient      | {pt_last_first_upper}    | MRN        | {mrn}        |
| DOB          | {dob}                    | Exam date  | {date1}      |
| Referring    | {dr2_full}               | Accession  | {other_id}   |
+--------------+--------------------------+------------+--------------+

EXAM: CT head without contrast.
HISTORY: {age} yo with fall, on {drug1}. Known {eponym1}.
FINDINGS: No acute intracranial hemorrhage. Chronic small vessel ischemic change.
No hyperdense vessel. [[ASPECTS|abbreviation]] 10.
IMPRESSION: No acute intracranial abnormality.
Results called to Dr. {dr2_last} at {phone1} on {datetime1}, read back confirmed.

Images reviewed on workstation {ip}.
Radiologist: {dr1_full}, MD""",
    """XR CHEST 2 VIEWS   {datetime1}
{pt_full}   {pt_sex_short}   DOB {dob}   MRN#{mrn}
Ordered by {dr2_initial}

Comparison: {date2}. Clinical: cough, hx {eponym1}.
Lungs clear. Heart size normal. [[Kerley B|eponym]] lines absent.
Right subclavian port (serial {device}) tip at cavoatrial junction.

Read by {dr1_last_first} / transcribed {date3} / PACS {url}""",
    """MRI LUMBAR SPINE
Name: {pt_last_upper}, {pt_first_upper}     Age: {age}     Acct {acct}
Requested by: Dr. {dr2_last}, fax {fax}
Indication: low back pain, {eponym1}; on {drug1}.
Technique: sagittal and axial T1/T2; 10 [[mL|unit]] gadolinium.
Findings: L4-5 disc bulge with mild canal narrowing. No cord signal abnormality.
Impression: degenerative change as above; consider [[Schober|eponym]] test correlation.
Electronically signed: {dr1_full}, MD, {datetime1} from {ip}""",
)

PORTAL_MESSAGES = (
    """From: {pt_full} <{email_pt}>
To: Dr. {dr1_last}'s care team
Sent: {datetime1}
Subject: refill request

hi dr {dr1_last_lower}, this is {pt_first_lower}. i am almost out of {drug1} and my
{drug2} too. my pharmacy changed, new one is at {street}, {city}. my daughter {rel_first}
can pick it up, her number is {phone2}. also the [[HbA1c|abbreviation]] you ordered
on {date1}, is it back?
thanks, {pt_first}

---
Sent via patient portal {url} from {ip}""",
    """Message from patient ({date1}):
Hello, I am writing for my mother {pt_full} (DOB {dob}, MRN {mrn}). She is {age} now and
her {eponym1} is worse since the new dose of {drug1}. Dr. {dr2_full} told us to write here.
Can someone call me at {phone1}? I am {rel_full}, her son. Her Medicare number is {plan}.
Reply from {rn_full}, RN ({datetime2}): Called {rel_first} back, scheduled visit {date3}.""",
    """Subject: question about my device
Patient: {pt_last_first}
My insulin pump SN {device} alarmed twice last night (glucose 54 [[mg/dL|unit]]). I took
{drug1} as Dr. {dr1_last} said. I drove myself in today, plate {plate}, VIN {vin}, is
parking validated? You can also reach me at {email_pt}.
- {pt_first} {pt_last}
Staff note: ID verified by SSN last-4 not accepted; full SSN on file {ssn}. {rn_initial}""",
)

REFERRAL_LETTERS = (
    """INTERNAL MEDICINE - OUTPATIENT OFFICE
{street_dr}, {city_dr}, {state} {zip_dr}
Tel {phone1}  |  Fax {fax}  |  {url}

{date1}

Dr. {dr2_full}
Department of Neurology

RE: {pt_full}, DOB {dob}, MRN {mrn}

Dear Dr. {dr2_last},

Thank you for seeing {pt_first}, a {age}-year-old with progressive tremor that I suspect
is {eponym1} rather than essential tremor. Current medications: {drug1}, {drug2}
and [[PRN|abbreviation]] {drug3}. [[MoCA|abbreviation]] 24/30 on {date2}.
{pt_last} lives at {street}, {city}, {state} {zip} with {rel_full}, who can be reached on
{phone2}. Insurance: member {plan}, group account {acct}.

Yours sincerely,

{dr1_full}, MD
License {license}  |  {email_dr}""",
    """REFERRAL - CARDIOLOGY
Date: {date1}
Patient: {pt_last_first}    Sex: {pt_sex_short}    Age: {age}
Address: {street}
         {city} {state} {zip}
Phone: {phone1}    E-mail: {email_pt}
SSN: {ssn}    Plan ID: {plan}

Reason: {age} y/o with [[AF|abbreviation]] on {drug1}, history of {eponym1}; syncope on {date2}.
Prior device: loop recorder {device}. Prior workup at outside hospital, records ref {other_id}.
Please see within 2 weeks.
Referring clinician: {dr1_full} (lic. {license}), fax back to {fax}""",
    """Dear colleague,

Re: {pt_first} {pt_last}  (born {dob})

I would be grateful if you could review this {age}-year-old gentleman whom I saw on {date1}.
He was diagnosed with {eponym1} in 2009 and more recently {eponym2}. His wife, {rel_full},
reports falls at home. Bloods: Na 131 [[mmol/L|unit]], [[TSH|abbreviation]] normal. He takes {drug1}
and {drug2}. He no longer drives (vehicle {plate} sold).
Patient portal: {url}  |  workers' comp claim {other_id}

Kind regards,
Dr. {dr1_full}
Outpatient Neurology, {city_dr}   tel. {phone2}""",
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "nursing_note": NURSING_NOTES,
    "discharge_summary": DISCHARGE_SUMMARIES,
    "radiology_report": RADIOLOGY_REPORTS,
    "portal_message": PORTAL_MESSAGES,
    "referral_letter": REFERRAL_LETTERS,
}
"""Templates by note style."""

DRUGS = (
    "metformin", "lisinopril", "atorvastatin", "apixaban", "Eliquis", "furosemide", "Lasix",
    "levothyroxine", "Synthroid", "carbidopa-levodopa", "Sinemet", "donepezil", "warfarin",
    "Coumadin", "insulin glargine", "Lantus", "amlodipine", "metoprolol", "tamsulosin",
    "oxycodone", "acetaminophen", "Tylenol", "gabapentin", "sertraline", "Zoloft",
    "prednisone", "rivaroxaban", "Xarelto", "pantoprazole", "Protonix", "ondansetron",
    "Zofran", "hydrochlorothiazide", "clopidogrel", "Plavix", "empagliflozin", "Jardiance",
)  # fmt: skip

EPONYMS = (
    "Parkinson's disease", "Alzheimer's disease", "Hashimoto's thyroiditis", "Crohn's disease",
    "Bell's palsy", "Graves' disease", "Cushing syndrome", "Addison's disease",
    "Hodgkin lymphoma", "Barrett's esophagus", "Sjogren syndrome", "Guillain-Barre syndrome",
    "Wilson disease", "Raynaud phenomenon", "Meniere's disease", "Paget's disease of bone",
    "Dupuytren contracture", "Wolff-Parkinson-White syndrome", "Charcot-Marie-Tooth disease",
    "Takotsubo cardiomyopathy", "Baker's cyst", "Osgood-Schlatter disease",
    "Lewy body dementia", "Huntington's disease", "Kawasaki disease", "Marfan syndrome",
)  # fmt: skip

CITIES = (
    "Millbrook", "Cedar Hollow", "Port Alder", "East Fennick", "Rockbridge", "Lake Tarrow",
    "Silver Ford", "North Quillen", "Harrow Springs", "Brackenfield", "Dunmore Heights",
    "West Larkin", "Oakvale", "Pine Barrow", "Stonehaven", "Glen Ashby", "Fairmoor",
    "Redwater", "Blue Ridge Falls", "Kestrel Bay",
)  # fmt: skip

STATES = ("MA", "NY", "CA", "TX", "OH", "WA", "GA", "MN", "AZ", "PA", "NC", "IL")

STREET_TYPES = ("Road", "Street", "Ave", "Lane", "Drive", "Blvd", "Court", "Way", "Terrace")
