"""Chat templates: a conversation -> prompt text, the way Hugging Face renders them.

The model's ``tokenizer.chat_template`` (Jinja) is rendered in an immutable
sandbox with HF's settings (``trim_blocks``, ``lstrip_blocks``,
``loopcontrols``) and helpers (``raise_exception``, ``strftime_now``, a
``tojson`` that keeps non-ASCII). Files without a template (the Gemma 3 270M
GGUF has none) get a built-in one picked from the vocabulary, written to give
the same text as llama.cpp's built-in formats (``llama_chat_apply_template``):

| vocabulary has      | built-in template | llama.cpp name |
|---------------------|-------------------|----------------|
| `<start_of_turn>`   | Gemma             | `gemma`        |
| `<|im_start|>` / other | ChatML         | `chatml`       |

The rendered text is meant to be encoded with ``parse_special=True``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from libp2pia.errors import TokenizerError

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

# Gemma: no system role (it is prepended to the first user turn), "assistant" is "model",
# contents trimmed. Same text as llama.cpp's LLM_CHAT_TEMPLATE_GEMMA, plus the BOS.
GEMMA_TEMPLATE = """{{ bos_token }}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- set ns.system = ns.system + (message['content'] | trim) -%}
    {%- else -%}
        {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
        {{ '<start_of_turn>' + role + '\n' }}
        {%- if ns.system and role != 'model' -%}
            {{ ns.system + '\n\n' }}
            {%- set ns.system = '' -%}
        {%- endif -%}
        {{ (message['content'] | trim) + '<end_of_turn>\n' }}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}"""

CHATML_TEMPLATE = """{%- for message in messages -%}
    {{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<|im_start|>assistant\n' }}
{%- endif -%}"""


def builtin_template(tok: Tokenizer) -> str:
    """The fallback template for a vocabulary whose GGUF carries none."""
    if "<start_of_turn>" in tok.token_id:
        return GEMMA_TEMPLATE
    return CHATML_TEMPLATE


def _raise_exception(message: str) -> None:
    raise TokenizerError(f"chat template refused the conversation: {message}")


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(source: str):
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise TokenizerError(f"chat template does not compile: {exc}") from exc


def render_chat(tok: Tokenizer, messages: list[Mapping[str, Any]],
                add_generation_prompt: bool = True, template: str | None = None,
                **kwargs: Any) -> str:
    """Prompt text for ``messages`` (``[{"role": ..., "content": ...}, ...]``)."""
    import jinja2

    for i, m in enumerate(messages):
        if "role" not in m or "content" not in m:
            raise TokenizerError(f"chat message {i} needs 'role' and 'content': {dict(m)!r}")
    source = template or tok.chat_template or builtin_template(tok)
    special = {name: (tok.tokens[tid] if tid is not None else "")
               for name, tid in (("bos_token", tok.bos_id), ("eos_token", tok.eos_id))}
    try:
        return _compile(source).render(messages=[dict(m) for m in messages],
                                       add_generation_prompt=add_generation_prompt,
                                       **{**special, **kwargs})
    except jinja2.TemplateError as exc:
        raise TokenizerError(f"chat template failed: {exc}") from exc
