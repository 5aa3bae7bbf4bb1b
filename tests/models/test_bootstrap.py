"""``model init`` end to end: files, offline reload, falling loss, determinism, generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from llm.data.build import build_task_datasets, read_patient_splits
from llm.errors import BadInputError
from llm.models.bootstrap import InitOptions, init_base_model
from llm.models.chat_template import EOT_TOKEN
from llm.models.corpus import read_note_corpus
from llm.models.manifest import prepare_model_folder

FAST = {"steps": 10, "block_size": 32, "batch_size": 4, "learning_rate": 3e-3, "threads": 1}


def _init(records: Path, out: Path, seed: int = 0) -> dict[str, object]:
    options = InitOptions(seed=seed, include_eval_patients=True, **FAST)  # type: ignore[arg-type]
    return init_base_model(read_note_corpus(records), out, options)


class ForceTokenAt(LogitsProcessor):
    """Forces ``token`` as the ``at``-th generated token (to test that generation stops there)."""

    def __init__(self, prompt_length: int, at: int, token: int) -> None:
        self.position = prompt_length + at - 1
        self.token = token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] == self.position:
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.token] = 0.0
        return scores


@pytest.mark.slow
def test_init_writes_a_real_base_model_that_reloads_offline(
    note_records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-clinical"
    manifest = _init(note_records, out)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "manifest.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth"))]

    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    counts = on_disk["counts"]
    assert (counts["read"], counts["used"], counts["rejected"]) == (8, 8, 0)
    assert counts["train_patients"] + counts["held_out_patients"] == 8
    assert counts["train_tokens"] == counts["train_blocks"] * 32 + counts["train_tokens_in_tail"]
    run = on_disk["pretraining"]
    assert run["final_loss"] < run["initial_loss"]
    assert run["held_out_perplexity_after"] < run["held_out_perplexity_before"]
    assert len(on_disk["records_sha256"]) == 64
    assert on_disk["libraries"]["transformers"] != "not installed"
    assert on_disk["started"] <= on_disk["finished"]

    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) == on_disk["model"]["parameters"]
    eot = tokenizer.convert_tokens_to_ids(EOT_TOKEN)
    assert eot in model.generation_config.eos_token_id

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Chief complaint?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    length = prompt["input_ids"].shape[1]
    free = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert length < free.shape[1] <= length + 6
    forced = model.generate(
        **prompt,
        max_new_tokens=20,
        do_sample=False,
        logits_processor=LogitsProcessorList([ForceTokenAt(length, 3, eot)]),
    )
    # generation stops at the first <|eot_id|> by itself (generation_config's eos list)
    generated = forced[0, length:].tolist()
    assert generated[-1] == eot
    assert eot not in generated[:-1]
    assert len(generated) <= 3


@pytest.mark.slow
def test_same_seed_same_model_other_seed_other_model(note_records: Path, tmp_path: Path) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _init(note_records, first, seed=0)
    _init(note_records, again, seed=0)
    _init(note_records, other, seed=1)
    assert (first / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    weights_a = load_file(str(first / "model.safetensors"))
    weights_b = load_file(str(again / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    weights_c = load_file(str(other / "model.safetensors"))
    assert not all(
        weights_c[k].shape == weights_a[k].shape and torch.equal(weights_a[k], weights_c[k])
        for k in weights_a
    )


def test_evaluation_patients_of_a_dataset_build_are_left_out(
    note_records: Path, tmp_path: Path
) -> None:
    build = tmp_path / "datasets"
    build.mkdir()
    splits = {"train": ["P000000"], "validation": ["P000001"], "test": ["P000002", "P404"]}
    (build / "patient_splits.json").write_text(json.dumps(splits), encoding="utf-8")
    corpus = read_note_corpus(note_records)
    options = InitOptions(**FAST, exclude_eval_patients_of=build)  # type: ignore[arg-type]
    manifest = init_base_model(corpus, tmp_path / "m", options)
    counts = manifest["counts"]
    assert counts["excluded_eval_patients"] == 2  # P404 is not in the records
    assert counts["train_patients"] + counts["held_out_patients"] == 8 - 2
    assert not {"P000001", "P000002"} & set(corpus.documents)
    assert manifest["args"]["exclude_eval_patients_of"] == str(build)
    with pytest.raises(BadInputError, match=r"patient_splits\.json: not found"):
        init_base_model(
            read_note_corpus(note_records),
            tmp_path / "m2",
            InitOptions(**FAST, exclude_eval_patients_of=tmp_path),  # type: ignore[arg-type]
        )


def test_by_default_the_default_builds_evaluation_patients_are_left_out(
    note_records: Path, tmp_path: Path
) -> None:
    # The same patients `data build` with its default split puts in validation/test.
    build_task_datasets(note_records, ["diagnosis"], tmp_path / "datasets")
    splits = read_patient_splits(tmp_path / "datasets")
    held = splits["validation"] | splits["test"]
    assert held
    corpus = read_note_corpus(note_records)
    manifest = init_base_model(corpus, tmp_path / "m", InitOptions(**FAST))  # type: ignore[arg-type]
    assert set(corpus.documents) == splits["train"]
    assert manifest["counts"]["excluded_eval_patients"] == len(held)
    assert "default `data build` split" in manifest["eval_patients"]
    assert manifest["args"]["include_eval_patients"] is False


def test_including_evaluation_patients_is_an_explicit_choice(
    note_records: Path, tmp_path: Path
) -> None:
    corpus = read_note_corpus(note_records)
    options = InitOptions(**FAST, include_eval_patients=True)  # type: ignore[arg-type]
    manifest = init_base_model(corpus, tmp_path / "m", options)
    assert manifest["counts"]["excluded_eval_patients"] == 0
    assert manifest["eval_patients"].startswith("included")
    both = InitOptions(**FAST, include_eval_patients=True, exclude_eval_patients_of=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="contradict"):
        init_base_model(read_note_corpus(note_records), tmp_path / "m2", both)


def test_too_little_text_for_one_block_is_bad_input(note_records: Path, tmp_path: Path) -> None:
    options = InitOptions(steps=1, block_size=2048, threads=1)
    with pytest.raises(BadInputError, match="fewer than one block of 2048"):
        init_base_model(read_note_corpus(note_records), tmp_path / "m", options)
    with pytest.raises(BadInputError, match="exceeds the model's context"):
        init_base_model(
            read_note_corpus(note_records), tmp_path / "m", InitOptions(block_size=4096)
        )
    assert not (tmp_path / "m").exists()


def test_output_folder_is_never_mixed_with_other_files(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(BadInputError, match="not empty and was not written by this command"):
        prepare_model_folder(foreign, "base_model")
    assert (foreign / "notes.txt").exists()

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "manifest.json").write_text(json.dumps({"kind": "base_model"}), encoding="utf-8")
    (earlier / "model-00002-of-00002.safetensors").write_bytes(b"stale shard")
    prepare_model_folder(earlier, "base_model")
    assert not list(earlier.glob("*.safetensors"))
    with pytest.raises(BadInputError):
        prepare_model_folder(earlier, "vision_language_model")
    prepare_model_folder(tmp_path / "new" / "folder", "base_model")
    assert (tmp_path / "new" / "folder").is_dir()
