"""Chat messages as a model reads them: the model's own chat template, and images from data URLs.

OpenAI chat content is a string or a list of parts (``{"type": "text", ...}``,
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``).
Chat templates of Hugging Face multimodal models expect ``{"type": "image"}``
parts instead, with the pictures passed to the processor separately and in
order; :func:`split_images` does that conversion. Only ``data:`` URLs are
accepted: the gateway never fetches a URL (clinical images must not leave the
machine, and a fetch would let a client make the server call arbitrary hosts).

Every error is a :class:`~serving.errors.BadRequestError` whose ``param``
names the offending field (``messages[2].content[1].image_url``) and whose
message never repeats the content.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

from serving.backends.base import ChatMessage
from serving.errors import BadRequestError

ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
# A decoded image larger than this is refused before its pixels are read
# (PIL's own bomb guard only warns below twice its limit).
MAX_IMAGE_PIXELS = 4096 * 4096


def decode_image_data_url(url: str, *, param: str) -> Image.Image:
    """Decode a ``data:image/...;base64,...`` URL into an RGB image.

    Args:
        url: the URL of an ``image_url`` part.
        param: the request field it came from, named in errors.

    Returns:
        The image, converted to RGB and fully loaded.

    Raises:
        BadRequestError: not a base64 image data URL, undecodable base64, not
            an image PIL can read, or larger than :data:`MAX_IMAGE_PIXELS`.
    """
    if not url.startswith("data:"):
        raise BadRequestError(
            f"{param}: only data URLs (data:image/...;base64,...) are accepted; "
            "the server does not fetch remote images",
            param=param,
        )
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise BadRequestError(f"{param}: malformed data URL (no ',' before the data)", param=param)
    media_type, *flags = header.split(";")
    if not media_type.startswith("image/"):
        raise BadRequestError(
            f"{param}: data URL media type must be image/*, got {media_type[:40]!r}", param=param
        )
    if "base64" not in flags:
        raise BadRequestError(f"{param}: data URL must be base64-encoded (;base64,)", param=param)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            f"{param}: data URL payload is not valid base64", param=param
        ) from None
    try:
        image = Image.open(io.BytesIO(raw))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise BadRequestError(
                f"{param}: image is {width}x{height} pixels; at most {MAX_IMAGE_PIXELS} allowed",
                param=param,
            )
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise BadRequestError(
            f"{param}: data URL does not hold a readable image", param=param
        ) from None


def _image_url(part: dict[str, Any], param: str) -> str:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise BadRequestError(f"{param}.image_url: expected {{'url': 'data:...'}}", param=param)
    return url


def split_images(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], list[Image.Image]]:
    """Check chat messages and move their images out of the content.

    Args:
        messages: OpenAI chat messages.

    Returns:
        ``(messages, images)``: the messages with every ``image_url`` part
        replaced by ``{"type": "image"}`` (what chat templates expect), and the
        decoded images in the order they appear.

    Raises:
        BadRequestError: an empty conversation, a message without a known role
            or with content that is neither a string nor a list of text/image
            parts, or a bad image data URL; the field is named.
    """
    if not messages:
        raise BadRequestError("messages: at least one message is required", param="messages")
    converted: list[ChatMessage] = []
    images: list[Image.Image] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequestError(
                f"{where}.role: must be one of {', '.join(sorted(ROLES))}", param=f"{where}.role"
            )
        content = message.get("content")
        if content is None or isinstance(content, str):
            converted.append({**message, "content": content or ""})
            continue
        if not isinstance(content, list):
            raise BadRequestError(
                f"{where}.content: must be a string or a list of parts", param=f"{where}.content"
            )
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(content):
            param = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image_url" and isinstance(part, dict):
                images.append(decode_image_data_url(_image_url(part, param), param=param))
                parts.append({"type": "image"})
            else:
                raise BadRequestError(
                    f"{param}: expected a part of type 'text' (with text) or 'image_url'",
                    param=param,
                )
        converted.append({**message, "content": parts})
    return converted, images


def render_chat(template_owner: Any, messages: Sequence[ChatMessage]) -> str:
    """Render checked messages (see :func:`split_images`) with the model's chat template.

    Args:
        template_owner: the model's tokenizer or processor (whichever holds
            its ``chat_template``).
        messages: messages whose images are already ``{"type": "image"}`` parts.

    Returns:
        The prompt text, ending with the assistant's generation prompt; it
        already holds the special tokens (BOS, headers), so it is tokenised
        without adding more.

    Raises:
        BadRequestError: the model has no chat template.
    """
    if not getattr(template_owner, "chat_template", None):
        raise BadRequestError(
            "this model has no chat template; use /v1/completions with a plain prompt",
            param="messages",
        )
    text = template_owner.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=False
    )
    if not isinstance(text, str):
        raise TypeError(f"chat template rendered {type(text).__name__}, expected str")
    return text
