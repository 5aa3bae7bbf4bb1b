"""The ``openvino`` backend's pieces that need no model: deltas, stop strings, messages, folders.

The backend on a real exported model, through the gateway and the ``openai`` client:
``tests/serving/test_live_openvino.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serving.backends.base import BackendSettings
from serving.backends.openvino_backend import (
    OpenVINOBackend,
    _Choice,
    check_ir_folder,
    text_messages,
)
from serving.errors import BackendUnavailableError, BadRequestError

# a toy detokeniser: token i is the i-th piece
PIECES = ["Pat", "ient", " st", "able", ".", "\n", "END", " more"]


def _decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids)


def _run(choice: _Choice, ids: list[int]) -> str:
    out = ""
    for token in ids:
        out += choice.add(token)
        if choice.stopped:
            break
    return out + choice.flush()


def test_deltas_add_up_to_the_decoded_text() -> None:
    assert _run(_Choice(_decode, ()), [0, 1, 2, 3, 4]) == "Patient stable."


def test_a_stop_string_ends_the_choice_and_is_not_sent() -> None:
    choice = _Choice(_decode, ("END",))
    assert _run(choice, [0, 1, 5, 6, 7]) == "Patient\n"
    assert choice.stopped


def test_a_stop_string_split_across_tokens_is_found_and_not_leaked() -> None:
    choice = _Choice(_decode, ("stable.",))
    sent = []
    for token in [0, 1, 2, 3, 4]:
        sent.append(choice.add(token))
        if choice.stopped:
            break
    assert "".join(sent) == "Patient "
    assert all("st" not in piece for piece in sent[2:])


def test_text_messages_joins_text_parts_and_refuses_images() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert text_messages([{"role": "user", "content": parts}]) == [
        {"role": "user", "content": "ab"}
    ]
    with pytest.raises(BadRequestError) as caught:
        text_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    assert caught.value.param == "messages[0].content[0]"


def test_a_folder_without_the_openvino_tokenizer_is_refused_with_the_command(
    tmp_path: Path,
) -> None:
    (tmp_path / "openvino_model.xml").write_text("<net/>")
    with pytest.raises(BackendUnavailableError, match=r"openvino_tokenizer\.xml.*compress make"):
        check_ir_folder(tmp_path)


def test_adapters_are_refused_at_start(tmp_path: Path) -> None:
    backend = OpenVINOBackend(BackendSettings("m", str(tmp_path), adapters={"a": tmp_path}))
    with pytest.raises(BackendUnavailableError, match="adapters are not served"):
        asyncio.run(backend.start())
