"""Shared model code: what more than one stage does to a model.

The layer under the four stages (:mod:`llm.train`, :mod:`llm.export`,
:mod:`eval`, :mod:`serving`) and over :mod:`llm.data` (docs/architecture.md).

* :mod:`~llm.models.loading`: local folders to models and tokenizers
  (safetensors only, never ``trust_remote_code``; QLoRA's capability probe).
* :mod:`~llm.models.checkpoint_import`: ``model import``, a GGUF file or a
  Hugging Face folder into a model folder; :mod:`~llm.models.training_template`
  makes its chat template ready for assistant-only loss.
* :mod:`~llm.models.bootstrap` with :mod:`~llm.models.tiny`,
  :mod:`~llm.models.tokenizer`, :mod:`~llm.models.corpus`,
  :mod:`~llm.models.multimodal` and :mod:`~llm.models.chat_template`:
  ``model init``, the tiny model built here.
* :mod:`~llm.models.chat_tokenize`: one chat to token ids and labels (training
  and the local and vLLM eval runners).
* :mod:`~llm.models.answer_scoring`: log-likelihoods of allowed answers.
* :mod:`~llm.models.openvino_ir`: an OpenVINO IR folder run with the OpenVINO runtime
  (logits, the same answer scores, greedy tokens).
* :mod:`~llm.models.safe_loading`: weights-only loading of DeepSpeed checkpoints.
* :mod:`~llm.models.manifest`: a model folder's manifest.
"""
