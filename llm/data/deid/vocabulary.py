"""Which capitalised words may be taken as names without context, and which may not.

The name lexicons (:mod:`llm.data.deid.lexicon`: the US lists ``first_names``
and ``surnames``, and the world lists ``world_first_names`` and
``world_surnames``) hold tens of thousands of spellings. Some of them are also
clinical terms (``Parkinson``, ``Bell``, ``Graves``, ``Lasix``) or common English
words (``Will``, ``Hope``, ``May``, ``Mark``): those count as names only with
context (a title, a field label, a relation word, a signature), which the
pattern recognizers of :mod:`llm.data.deid.recognizers` supply. Everything
else in the lexicons is taken as a name where it stands.
"""

from __future__ import annotations

import re
from functools import cache

from llm.data.deid.recognizers import NOT_NAME_WORDS, load_lexicon


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in text.split())


# Eponyms of diseases, signs, scales, scores, tests, procedures and devices that are names only
# with context; each part of a hyphenated one too (Guillain-Barre, Osgood-Schlatter, Swan-Ganz).
# Common first names and surnames (Thomas, Jones, Marie, Smith) are not here: they are
# eponyms only in a phrase (EPONYM_PARTNERS, :func:`eponym_spans`).
EPONYMS = _words(
    """addison alzheimer apgar asperger babinski baker barrett bell bence berger boerhaave bowen
    broca brugada budd chiari burkitt charcot chvostek colles conn crohn cushing dandy down duchenne
    dupuytren ebstein ehlers danlos epstein barr ewing fallot foley gilbert glasgow graves
    guillain hashimoto heimlich hirschsprung hodgkin holter homan huntington kaposi kawasaki
    kernig klinefelter korsakoff kussmaul lyme mallory weiss marfan meckel meniere murphy osler
    paget parkinson peyronie pick raynaud reiter reye rinne romberg schilling sjogren sjögren
    stevens johnson swan ganz tourette trendelenburg trousseau turner virchow von willebrand
    wegener weber wernicke whipple wilms wilson wolff white zenker kegel allen cheyne stokes
    doppler gram hartmann nissen roux billroth bankart lachman mcmurray phalen tinel
    finkelstein spurling hoffman hoffmann thompson valsalva heberden bouchard barre barré
    braden osgood schlatter brudzinski mcburney homans reynolds pfannenstiel kocher ménière
    behcet behçet buerger chagas fanconi gaucher goodpasture munchausen pompe prinzmetal
    takayasu waldenstrom waldenström kienbock kienböck scheuermann sudeck tietze quervain
    monteggia galeazzi lisfranc chopart maisonneuve tillaux segond creutzfeldt legg calve calvé
    perthes zollinger henoch schonlein schönlein sturge hippel peutz jeghers wiskott digeorge
    prader angelman rett patau fabry hurler lhermitte wallenberg chaddock parinaud brushfield
    lisch menkes eisenmenger kartagener pickwickian kerley westermark ghon pancoast krukenberg
    merkel dressler janeway duroziez quincke traube rovsing courvoisier kehr felty apert
    crouzon koplik nikolsky auspitz darier koebner köbner gottron muehrcke adson gaenslen
    yergason ortolani apley thessaly durkan froment wartenberg kanavel tzanck ziehl neelsen
    giemsa papanicolaou coombs mantoux schirmer snellen amsler hallpike epley semont crede
    credé naegele mcroberts zavanelli ritgen kielland dubowitz mallampati cormack lehane killip
    karnofsky barthel folstein spetzler schatzker gustilo gleason breslow ranson blatchford
    rockall caprini waterlow centor mcisaac hinchey truelove bazett fridericia sokolow hickman
    broviac groshong tenckhoff mahurkar penrose malecot pezzer coude coudé yankauer dobhoff
    sengstaken blakemore guedel ambu venturi bovie metzenbaum babcock debakey satinsky
    bookwalter weitlaner kerrison castroviejo ilizarov kirschner schanz pavlik maylard cherney
    shouldice bassini mcvay stoppa ramstedt fontan blalock taussig rastelli bentall senning
    jatene seldinger judkins amplatz mikulicz mitrofanoff latarjet lapidus ponseti girdlestone
    hardinge judet letournel langenbeck lopresti toupet roux-en-y jacksonian parkinsonian
    parkinsonism cushingoid addisonian""",
)
# Common names that are eponyms only in a phrase: before a disease, sign, scale, device...
# ("Jones fracture", "Bence Jones protein") or hyphenated with an eponym ("Charcot-Marie-Tooth").
EPONYM_PARTNERS = _words(
    """marie tooth jones jakob arnold walker ellison pugh child salter harris smith barton bennett
    hunter becker williams edwards lynch gardner noonan hunt hess ramsay todd lennox sachs
    lambert eaton gunn marcus holmes adie argyll robertson hutchinson pierre robin treacher
    collins terry lindsay roth austin flint graham steell wood wright thomas patrick barlow
    allis simmonds gordon oppenheim kennedy mayo miller macintosh levin salem blake pratt
    jackson glenn norwood ross heller ladd burch brooke turnbull keller harrington fisher
    martin clark rankin katz lawton morse norton tanner ballard finnegan wagner fontaine
    rutherford lyon dukes alvarado balthazar hampton osborn plummer vinson sheehan ogilvie
    fraumeni aldrich lindau churg strauss libman crigler najjar dubin sever still pott hill
    mobitz wenckebach beck lown ludwig gaenslen hawkins neer jobe speed ober mcdonald
    shirodkar bartholin skene douglas morison hesselbach spigelian richter littre amyand
    grey flint hoover bishop garden pauwels ishihara kasai tay corrigan fleischer kayser luque
    willi lauge steinmann niemann unterberger kock löffler loeffler""",
)
_TITLES = frozenset("mr mrs ms miss mx dr doctor prof nurse".split())  # noqa: SIM905

# Drug names (generic and brand) that collide with name spellings or come up in notes.
DRUGS = _words(
    """lasix coumadin warfarin heparin eliquis apixaban xarelto rivaroxaban plavix clopidogrel
    aspirin tylenol advil motrin ibuprofen norco percocet dilaudid morphine zofran ondansetron
    protonix pantoprazole lipitor atorvastatin crestor zocor metformin glucophage insulin lantus
    humalog novolog januvia jardiance farxiga ozempic trulicity victoza lisinopril losartan
    metoprolol lopressor toprol coreg carvedilol norvasc amlodipine cardizem diltiazem digoxin
    lanoxin amiodarone synthroid levothyroxine prednisone solumedrol decadron dexamethasone
    keflex cipro levaquin zithromax augmentin vancomycin zosyn rocephin flagyl bactrim
    ativan xanax valium klonopin ambien haldol seroquel zyprexa risperdal abilify zoloft prozac
    lexapro celexa paxil wellbutrin effexor cymbalta neurontin gabapentin lyrica keppra
    dilantin depakote tegretol lamictal sinemet aricept namenda flomax proscar spiriva advair
    symbicort albuterol proventil ventolin xopenex singulair lovenox entresto aldactone
    spironolactone bumex torsemide hydralazine imdur nitroglycerin kcl potassium magnesium
    narcan naloxone suboxone methadone tramadol ultram oxycodone fentanyl ketorolac toradol
    benadryl claritin zyrtec allegra colace senna miralax dulcolax reglan famotidine pepcid"""
)

# Units, abbreviations and section-header words that are written capitalised.
CLINICAL_WORDS = _words(
    """history present illness chief complaint assessment plan impression diagnosis diagnoses
    medications medication allergies allergy exam examination physical review systems vitals
    vital signs labs laboratory results imaging radiology social surgical past family hpi ros
    pmh psh fh sh cc disposition discharge admission admitted course hospital procedure
    procedures findings recommendations subjective objective general constitutional heent neck
    chest lungs heart cardiovascular abdomen extremities skin neuro neurologic psych psychiatric
    musculoskeletal genitourinary gastrointestinal respiratory endocrine hematologic lymph
    pain fever cough dyspnea nausea vomiting diarrhea edema stable improved unchanged normal
    negative positive mild moderate severe acute chronic left right bilateral anterior posterior
    lateral medial upper lower blood pressure rate pulse temp temperature weight height
    daily twice nightly prn bid tid qid qd qhs po iv im sq sc mg mcg ml dl mmol meq units unit
    hour hours day days week weeks month months year years cm mm kg lb lbs bpm mmhg
    cbc bmp cmp ekg ecg echo ct mri cxr xray icu ed er or pacu picu nicu sicu micu ccu
    cad chf copd ckd esrd dm htn hld afib gerd uti dvt pe mi cva tia osa bph aki
    normal sinus rhythm saline lactated ringer ringers tablet tablets capsule dose doses
    continue start stop hold increase decrease resume restart return
    glucose creatinine hemoglobin hematocrit platelets platelet sodium chloride bicarbonate calcium
    albumin bilirubin troponin lactate lipase amylase ferritin inr ptt bnp tsh ldl hdl
    triglycerides cholesterol urinalysis culture cultures beta alpha gamma delta kappa lambda
    gen abd ext neuro cardiac pulm resp psych derm msk gu gi ent eyes ears nose mouth throat
    ventricular atrial ventricle atrium aortic mitral tricuspid pulmonic systolic diastolic
    ejection fraction length width volume size mass lesion nodule effusion cardiomegaly
    streptococcus staphylococcus pneumoniae aureus coli klebsiella pseudomonas candida
    enterococcus clostridium difficile influenza covid sars hepatitis hiv
    electronically dictated transcribed signed attested reviewed verified addendum
    pneumonia sepsis anemia diabetes hypertension asthma cancer carcinoma stroke
    morning evening afternoon tonight overnight
    procalcitonin anion lives accession ordering indication evaluate acquired interpretation
    confirmed summary brief secondary condition notable report home abnormal hyperlipidemia
    denies essential shortness type appointment regular obesity depression resting diet
    unspecified drinks electrocardiogram occasional full inpatient outpatient former diagnostic
    never registration feeling cellulitis escherichia abdominal endorses source hypothyroidism
    confusion visit atherosclerotic weakness irregularly trend paroxysmal urinary skilled
    dehydration lightheadedness fluid fluids tobacco current nicotine perihilar pulmonary
    supplemental encounter lobar incentive headache syncope transthoracic coronary replete
    hyperinflation nebulized titrate aggressive renal dense annual gastroenteritis infectious
    continuous fall falls prior emergent serial dementia fatigue urosepsis permanent focal
    inferior superior palpitations chills presyncope dyspnoea fevers altered decreased
    dizziness emesis oliguria irregular horizontal non medical regional community valley
    lead leads sinus tachycardia bradycardia fibrillation flutter murmur rales wheezes
    crackles tender soft distended alert oriented awake appears reports states notes"""
)

# Common English words that are also first names or surnames in the lexicons.
COMMON_WORDS = _words(
    """will hope grace may mark bill faith joy june april august summer autumn winter spring
    dawn eve rose lily ivy iris daisy violet holly heather jasmine amber ruby pearl crystal
    penny sandy rusty sunny sky star angel honey candy cherry olive ginger blossom destiny
    charity patience prudence constance mercy trinity harmony melody liberty justice
    frank earnest ernest rich sterling king prince duke earl baron major noble
    art bob jack jimmy joe mac max gene ray rod ben sue pat jean don lane dale glen glenn
    chase hunter miles price cash guy nick carol carl will wade reed reid ward page may
    long young old short small little large big brown black white green gray grey gold silver
    hall wall hill bush wood woods field fields brook brooks stone stones lake rivers river
    banks bank park parks church chapel cross street rock mills mill marsh moss pond
    bird birds fox wolf lamb hawk crane swan drake bear bull bass fish finch nightingale
    cook baker butler carpenter mason taylor tailor potter fisher hunter farmer miller
    barber porter walker turner weaver shepherd sawyer carter chandler fowler gardner
    bishop pope abbott dean knight sergeant marshall steward bailey
    day night noon moon sun rain snow frost storm cloud may sunday monday
    love lovely sweet bright fair good best well wells strong power powers hardy moody
    case rule rules bond bonds hart heart head foot hand arm leg back bone bones
    gay jolly merry happy blythe bliss glory honor honour
    lord lady judge hope care cares sharp sharpe
    more most much less few free hale hardy early late
    golden silva sale sales cheese bread wine beer
    can did do does done get got go going had has have here how if it its just let
    like make made man men new next now one only other our out over said same see seen
    so some such take than that them then there they this those through time too two
    under up us use very was way we were what when where which while who why with would
    you your also after again all an and any are as at be been before being both but by
    come could each even first for from give great he her him his however into is last
    life many me my no not of off on or own part people place right she should since
    still take their these thing think three to upon
    north south east west central general saint
    american english french german irish scottish welsh dutch african asian indian
    christian christmas easter"""
)


@cache
def protected_words() -> frozenset[str]:
    """Lower-case words that are names only with context: clinical terms and common words."""
    return EPONYMS | DRUGS | CLINICAL_WORDS | COMMON_WORDS | NOT_NAME_WORDS


@cache
def lexicon_names(kind: str) -> frozenset[str]:
    """Every spelling of one kind of name, from the US and the world lexicons.

    Args:
        kind: ``"first"`` or ``"last"``.

    Returns:
        The spellings as written in the lists (Title case, any script).
    """
    if kind == "first":
        names = (*load_lexicon("first_names"), *load_lexicon("world_first_names"))
    elif kind == "last":
        names = (*load_lexicon("surnames"), *load_lexicon("world_surnames"))
    else:
        raise ValueError(f"kind must be 'first' or 'last', not {kind!r}")
    return frozenset(names)


@cache
def context_free_names(kind: str) -> frozenset[str]:
    """Lexicon spellings that count as names without context.

    Spellings that are protected words (:func:`protected_words`) or shorter
    than three letters are left out: they need a title, label or relation.

    Args:
        kind: ``"first"`` or ``"last"``.
    """
    protected = protected_words()
    return frozenset(n for n in lexicon_names(kind) if len(n) >= 3 and n.lower() not in protected)


@cache
def common_english() -> frozenset[str]:
    """Ordinary English words, lower case (``long``, ``king``, ``rose``): about 7,100 of them.

    The words of Zipf frequency >= 4.0 in wordfreq's English list
    (``lexicon/english_common.txt``, built by ``scripts/build_common_words.py``).
    A name found in a patient's notes is looked for in lower case too, unless it
    is one of these.
    """
    return frozenset(load_lexicon("english_common"))


def is_protected(word: str) -> bool:
    """Whether a word (any case) is a clinical term or common word (see :func:`protected_words`).

    A hyphenated word is protected when it is as a whole (``Guillain-Barre``) or when each of
    its parts is a protected word or an eponym's partner and one at least is an eponym
    (``Charcot-Marie-Tooth``, ``Wolff-Parkinson-White``, not ``Jean-Marie``); a possessive
    ``'s`` is left out (``Crohn's``).
    """
    protected = protected_words()
    key = re.sub(r"['’]s?$", "", word.lower().strip(".,;:'’()"))
    if key in protected:
        return True
    parts = [p for p in key.split("-") if p]
    return (
        len(parts) > 1
        and any(p in EPONYMS for p in parts)
        and all(p in protected or p in EPONYM_PARTNERS or p in ("en", "y") for p in parts)
    )


# an eponym followed by what it names: "Braden scale", "Charcot-Marie-Tooth disease", "Foley
# catheter", "Murphy's sign"; a name in such a phrase is a clinical term, never PHI
_EPONYM_HEAD = (
    r"(?:['’]s?)?[ \t]+(?:disease|syndrome|palsy|sign|signs|scale|score|test|tests|maneuver"
    r"|manoeuvre|reflex|triad|phenomenon|procedure|operation|repair|fundoplication|catheter|tube"
    r"|drain|bag|criteria|classification|grade|stage|staging|fracture|ulcer|lymphoma|sarcoma"
    r"|tumou?r|disorder|deformity|contracture|aneurysm|diverticulum|node|nodes|point|incision"
    r"|position|pouch|anastomosis|encephalopathy|psychosis|aphasia|area|virus|coma|index"
    r"|protein|proteins|gastric|bypass|limb|loop|mask|valve|blade|collar|splint|lamp|stain"
    r"|criterion|rule|rules|law|pentad|tetrad|lesion|lesions|nodule|nodules|spots?|line|lines"
    r"|cells?|body|bodies|angina|hernia|paralysis|neuropathy|neuralgia|cyst|ring|rings"
    r"|positive|negative|pump|filter|clamp|forceps|retractor|scissors|respirations?|breathing"
    r"|rhythm|block|waves?|ratio|sarcoma|leukemia|hypothesis|reaction|response)\b"
)


_PARTNER_HEAD = re.compile(
    r"[ \t]+(?:disease|syndrome|sign|test|fracture|criteria|score|scale|protein|procedure"
    r"|operation|repair|catheter|tube|drain|classification|maneuver|manoeuvre|reflex|palsy"
    r"|paralysis|angina|hernia|nodes?|point|incision|blade|collar|mask|pouch|triad|pentad"
    r"|phenomenon|anomaly|deformity|contracture)\b",
    re.IGNORECASE,
)


@cache
def _eponym_phrase() -> re.Pattern[str]:
    names = {w for w in EPONYMS | EPONYM_PARTNERS if len(w) >= 3 and re.fullmatch(r"[^\W\d]+", w)}
    word = "|".join(sorted(names, key=len, reverse=True))
    # one eponym or several joined by hyphens or spaces, "en" and "y" inside (Roux-en-Y)
    chain = rf"(?:{word})(?:(?:[ \t]*-[ \t]*|[ \t]+)(?:{word}|en|y)\b)*"
    return re.compile(rf"(?<![\w\-])(?P<eponym>{chain})(?={_EPONYM_HEAD})", re.IGNORECASE)


def eponym_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of eponyms in use: an eponym before its disease, sign, scale, device...

    ``Braden scale``, ``Guillain-Barre syndrome``, ``Charcot-Marie-Tooth disease``, ``Foley
    catheter``, ``Crohn's``. A NAME detection inside one of these spans is a clinical term.

    Args:
        text: the note.

    Returns:
        ``(start, end)`` of the eponym words (the term after them excluded), in text order.
    """
    spans = []
    for m in _eponym_phrase().finditer(text):
        words = re.split(r"[\s\-]+", m.group().lower())
        before = re.findall(r"[A-Za-z]+", text[max(0, m.start() - 8) : m.start()])
        if before and before[-1].lower() in _TITLES:
            continue  # "Dr. Murphy's test results": a person
        if all(w not in EPONYMS for w in words):
            # a common name before a word that also follows people ("Jones negative for flu",
            # "Mr. Smith's fracture") is a person: partners need an unambiguous term, no 's
            head = _PARTNER_HEAD.match(text, m.end())
            if head is None:
                continue  # "Smith's fracture" may be the patient's; "Smith fracture" is an eponym
        spans.append(m.span())
    return spans
