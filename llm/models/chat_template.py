"""The chat format of the models this project builds.

Llama-3 style headers, so that real Llama-3 checkpoints and the tiny model
built here read conversations the same way. Assistant turns are wrapped in
``{% generation %}`` blocks: ``tokenizer.apply_chat_template(...,
return_assistant_tokens_mask=True)`` then marks exactly the assistant's tokens,
its closing ``<|eot_id|>`` included (the model must learn to stop), which is
what assistant-only loss trains on.

Message content is either a string or a list of parts
``{"type": "text", "text": ...}`` / ``{"type": "image", ...}``; an image part
becomes the :data:`IMAGE_TOKEN` placeholder that the multimodal model expands.
"""

from __future__ import annotations

BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"  # ends a document in pretraining
EOT_TOKEN = "<|eot_id|>"  # ends a chat turn; generation stops here
PAD_TOKEN = "<|pad|>"
HEADER_START = "<|start_header_id|>"
HEADER_END = "<|end_header_id|>"
IMAGE_TOKEN = "<image>"

SPECIAL_TOKENS: tuple[str, ...] = (
    BOS_TOKEN,
    EOS_TOKEN,
    EOT_TOKEN,
    PAD_TOKEN,
    HEADER_START,
    HEADER_END,
    IMAGE_TOKEN,
)

# Jinja, rendered by transformers. `content` is normalised to text first so
# that string and list-of-parts messages give identical token streams.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['content'] is string %}"
    "{%- set content = message['content'] %}"
    "{%- else %}"
    "{%- set content = namespace(text='') %}"
    "{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{%- set content.text = content.text + '<image>' %}"
    "{%- elif part['type'] == 'text' %}{%- set content.text = content.text + part['text'] %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- set content = content.text %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- content | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{%- else %}"
    "{{- content | trim + '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
