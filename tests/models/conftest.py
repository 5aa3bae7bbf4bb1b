"""Fixtures of the model tests: hand-written notes, tokenizers (plain BPE and chat)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llm.models.chat_template import BOS_TOKEN, CHAT_TEMPLATE, EOT_TOKEN, PAD_TOKEN, SPECIAL_TOKENS
from llm.models.tokenizer import train_bpe_tokenizer
from tests.conftest import minimal_record

NOTES = (
    "CHIEF COMPLAINT: cough and fever. HPI: 71 year old with productive cough for 3 days, "
    "fevers to 39.1 C and pleuritic chest pain. EXAM: crackles over the right lower lung field. "
    "PLAN: ceftriaxone and azithromycin; repeat chest x-ray in 6 weeks.",
    "CHIEF COMPLAINT: shortness of breath. HPI: 80 year old with orthopnea, leg swelling and "
    "weight gain of 3 kg. EXAM: JVP elevated, bibasilar crackles, 2+ pitting edema. "
    "PLAN: IV furosemide, daily weights, strict intake and output.",
    "CHIEF COMPLAINT: palpitations. HPI: 66 year old with irregular heartbeat since yesterday. "
    "ECG: atrial fibrillation with rapid ventricular response, rate 132. "
    "PLAN: metoprolol for rate control; start apixaban after shared decision making.",
    "CHIEF COMPLAINT: nausea and vomiting. HPI: 24 year old with type 1 diabetes, missed insulin "
    "doses. LABS: glucose 471, bicarbonate 12, anion gap 24. "
    "PLAN: insulin infusion per protocol, replete potassium, hourly glucose checks.",
    "CHIEF COMPLAINT: chest pain. HPI: 58 year old with crushing substernal pain radiating to "
    "the left arm. ECG: ST elevation in leads II, III and aVF. Troponin 4.2. "
    "PLAN: aspirin, heparin, emergent cardiac catheterization.",
    "CHIEF COMPLAINT: confusion. HPI: 77 year old with fever and hypotension, lactate 4.1. "
    "EXAM: warm extremities, tachycardia to 118. "
    "PLAN: 30 mL/kg crystalline fluids, blood cultures, broad-spectrum antibiotics.",
)


def note_record(index: int, texts: list[str]) -> dict[str, object]:
    """A valid record of patient ``index`` whose encounter holds ``texts`` as notes."""
    record = minimal_record(f"P{index:06d}")
    encounter = record["encounters"][0]
    encounter["notes"] = [
        {"note_id": f"N{j}", "type": "progress_note", "text": text} for j, text in enumerate(texts)
    ]
    return record


@pytest.fixture
def note_records(tmp_path: Path) -> Path:
    """Eight patients, two or three notes each (the hand-written notes, rotated)."""
    path = tmp_path / "records.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(8):
            texts = [NOTES[(i + k) % len(NOTES)] for k in range(2 + i % 2)]
            fh.write(json.dumps(note_record(i, texts)) + "\n")
    return path


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the hand-written notes."""
    return train_bpe_tokenizer(list(NOTES) * 3, vocab_size=600, model_max_length=2048)


CHAT_CORPUS = [
    "system user assistant",
    "You are a clinical assistant. Answer with exactly one of: yes, no.",
    "Reply with the answer only.",
    "CHIEF COMPLAINT: cough and fever for three days. HISTORY: 71 year old woman with COPD.",
    "Chest radiograph shows right lower lobe consolidation consistent with pneumonia.",
    "Labs: WBC 14.2 K/uL, lactate 2.1 mmol/L. Vitals: heart rate 104, temperature 38.4 C.",
    "Summarize the brief hospital course. Will the patient be readmitted within 30 days?",
    "The patient was admitted, treated with antibiotics and discharged home in stable condition.",
]


@pytest.fixture(scope="session")
def chat_tokenizer() -> PreTrainedTokenizerFast:
    """A ~500-token byte-level BPE tokenizer with the project's chat template."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CHAT_CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        chat_template=CHAT_TEMPLATE,
        bos_token=BOS_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token=PAD_TOKEN,
    )
