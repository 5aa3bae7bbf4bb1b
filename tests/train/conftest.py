"""Fixtures of the training tests: a tiny byte-level BPE chat tokenizer and a tiny Llama."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from llm.models.chat_template import BOS_TOKEN, CHAT_TEMPLATE, EOT_TOKEN, PAD_TOKEN, SPECIAL_TOKENS
from llm.train.attention import SDPA_VARLEN, register_varlen_sdpa

CORPUS = [
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
    bpe.train_from_iterator(CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        chat_template=CHAT_TEMPLATE,
        bos_token=BOS_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token=PAD_TOKEN,
    )


def tiny_llama(vocab_size: int, attn_implementation: str, *, use_cache: bool = False) -> Any:
    """A randomly initialised 2-layer Llama in float32 eval mode (fixed seed)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=vocab_size,
        use_cache=use_cache,
    )
    model = LlamaForCausalLM(config)
    if attn_implementation == SDPA_VARLEN:
        register_varlen_sdpa()
    model.set_attn_implementation(attn_implementation)
    assert model.config._attn_implementation == attn_implementation
    return model.float().eval()
